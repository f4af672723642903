// The console on the gateway: GET /console/ and its files (public: they are the same for everyone and
// carry no data; left out of /openapi.json, which documents the API), and GET /v1/console/capabilities (the caller's own, so any signed-in person).
import { join } from 'node:path';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import Type from 'typebox';
import { NoQuery } from '../http/index.js';
import { type Authorizer, identityOf } from '../identity/index.js';
import { PACKAGE_ROOT } from '../version.js';
import { GatehouseError } from '../wire/index.js';
import { capabilitiesOf } from './capabilities.js';
import { CONSOLE_HEADERS } from './security-headers.js';
import { readConsoleFiles } from './static-files.js';

export interface ConsoleDeps {
  authorizer: Authorizer;
  /** Where the files are (console/ in the package by default; tests may point elsewhere). */
  dir?: string;
}

const FileParams = Type.Object({ '*': Type.String({ maxLength: 256 }) }, { additionalProperties: false });
const CapabilitiesResponse = Type.Object({
  user: Type.String(),
  groups: Type.Array(Type.String()),
  policy_version: Type.String(),
  pages: Type.Array(Type.String()),
  buttons: Type.Array(Type.String()),
  rules: Type.Record(Type.String(), Type.String()),
});

export function installConsole(server: FastifyInstance, deps: ConsoleDeps): void {
  const app = server.withTypeProvider<TypeBoxTypeProvider>();
  const files = readConsoleFiles(deps.dir ?? join(PACKAGE_ROOT, 'console'));
  const pub = { public: true };

  app.get('/console', { config: pub, schema: { hide: true, summary: 'The web console (redirects to /console/)', querystring: Type.Object({}) } }, async (_request, reply) => reply.redirect('/console/', 302));

  app.get('/console/*', { config: pub, schema: { hide: true, summary: 'The web console: its page, scripts and stylesheet', params: FileParams, querystring: Type.Record(Type.String(), Type.String()) } }, async (request, reply) => {
    // Every address under /console/ without a file of its own is the console's one page, whose
    // script routes on the fragment; a missing script or stylesheet is a 404.
    const name = request.params['*'];
    const file = files.get(name === '' ? 'index.html' : name);
    if (!file) {
      if (/\.(js|css|svg|png|ico)$/.test(name)) throw new GatehouseError('not_found', 'no such console file');
    }
    const served = file ?? files.get('index.html');
    if (!served) throw new GatehouseError('not_found', 'the console is not installed (console/ is missing)');
    reply.headers(CONSOLE_HEADERS).type(served.type);
    return reply.send(served.body);
  });

  app.get('/v1/console/capabilities', { config: { authorize: { own: "the caller's own pages and buttons, each decided on the serving policy" } }, schema: { summary: 'Which console pages and buttons the caller’s policy opens (the API still decides every request)', querystring: NoQuery, response: { 200: CapabilitiesResponse } } }, async (request) => capabilitiesOf(identityOf(request), deps.authorizer));
}
