// What every Gatehouse HTTP server does alike: request ids, one log line per request,
// and errors turned into the `{error, message, ...}` body of the public contract.
import { AjvCompiler } from '@fastify/ajv-compiler';
import { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions, LogController } from 'fastify';
import { type ErrorBody, GatehouseError } from '../wire/index.js';
import { lingerAfterEarlyAnswer } from './linger.js';
import { scrubUrl } from './logging.js';
import { acceptableRequestId, describeRefusedId, timeOrderedId } from './request-id.js';

/** Set on the raw request when the caller's X-Request-Id was replaced by ours: what may be logged about it. */
const REPLACED_ID = Symbol('gatehouse.replacedRequestId');
type MarkedRequest = { [REPLACED_ID]?: ReturnType<typeof describeRefusedId> };

/**
 * Unknown fields are refused, not silently dropped; the first problem is the one reported.
 * validateSchema: our route schemas (built with typebox, typed) are checked against JSON Schema's
 * meta-schema while the test suites run (vitest's VITEST, inherited by the servers they start), not on
 * every start: compiling the meta-schema was a third of the engine's CPU between its go and listening
 * under `up` (150-300 ms per server at load 10). Ajv's strict mode still refuses an unknown keyword
 * at every start.
 */
const AJV_OPTIONS = { removeAdditional: false, useDefaults: true, allErrors: false, validateSchema: process.env.VITEST !== undefined } as const;

/**
 * Two validators: query strings, params and headers arrive as text, so their numbers and booleans
 * are read from it (`?limit=5`, a lone value as a one-item array); a JSON body carries its own
 * types and is taken as sent (`"cores": "4"`, `true` or `[4]` where 4 is expected are refused).
 */
function validatorFactory(): ValidatorFactory {
  const pool = AjvCompiler();
  const factory = (externalSchemas: Parameters<typeof pool>[0], ajvOptions?: object) => {
    const text = pool(externalSchemas, { ...ajvOptions, customOptions: { ...AJV_OPTIONS, coerceTypes: 'array' } }) as unknown as RouteCompiler;
    const body = pool(externalSchemas, { ...ajvOptions, customOptions: { ...AJV_OPTIONS, coerceTypes: false } }) as unknown as RouteCompiler;
    return (route: RouteSchema) => (route.httpPart === 'body' ? body : text)(route);
  };
  // @fastify/ajv-compiler's types describe the Ajv compile it wraps; fastify calls it with the route.
  return factory as unknown as ValidatorFactory;
}

type ValidatorFactory = NonNullable<NonNullable<FastifyServerOptions['schemaController']>['compilersFactory']>['buildValidator'];
type RouteSchema = { schema: unknown; method: string; url: string; httpPart?: string };
type RouteCompiler = (route: RouteSchema) => unknown;

/** Server options for request ids and validation; spread into the fastify() call. */
export function serverOptions(): Pick<FastifyServerOptions, 'genReqId' | 'requestIdHeader' | 'logController' | 'schemaController'> {
  return {
    // A caller's X-Request-Id is kept when it is a UUID, or short, plain and not shaped like a
    // credential (request-id.ts), so one id follows a request across services; otherwise ours
    // replaces it (answered, logged and recorded), and installPlumbing logs that it did.
    requestIdHeader: false,
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      if (acceptableRequestId(given)) return given;
      if (given !== undefined) (req as MarkedRequest)[REPLACED_ID] = describeRefusedId(given);
      return timeOrderedId();
    },
    // Fastify's own two lines per request are off: installPlumbing writes one, with what we need.
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: 'request_id' }),
    schemaController: { compilersFactory: { buildValidator: validatorFactory() } },
  };
}

export function installPlumbing(app: FastifyInstance): void {
  // Every route declares its input: a route without a querystring schema (and a body schema
  // where it takes a body) fails at start-up instead of accepting whatever comes.
  app.addHook('onRoute', (route) => {
    const methods = [route.method].flat();
    const missing = [
      !route.schema?.querystring && 'querystring',
      methods.some((m) => ['POST', 'PUT', 'PATCH'].includes(m)) && !route.schema?.body && 'body',
    ].filter(Boolean);
    if (missing.length > 0) throw new Error(`route ${methods.join(',')} ${route.url} declares no ${missing.join(' or ')} schema`);
  });

  app.addHook('onRequest', async (request) => {
    const replaced = (request.raw as MarkedRequest)[REPLACED_ID];
    if (replaced) request.log.info({ caller_request_id: replaced }, "the caller's X-Request-Id was replaced by ours (not a UUID, or long, or shaped like a credential)");
  });

  app.addHook('onSend', async (request, reply) => {
    reply.header('x-request-id', request.id);
    lingerAfterEarlyAnswer(request.raw, reply.raw);
  });

  app.addHook('onResponse', async (request, reply) => {
    request.log.info(
      {
        method: request.method,
        url: scrubUrl(request.url),
        route: request.routeOptions.url ?? null,
        status: reply.statusCode,
        duration_ms: Math.round(reply.elapsedTime * 100) / 100,
        ip: request.ip,
      },
      'request',
    );
  });

  app.setNotFoundHandler((request, reply) => {
    send(reply, new GatehouseError('not_found', `no route ${request.method} ${request.url.split('?')[0]}`));
  });

  app.setErrorHandler((error: FastifyError, request, reply) => {
    send(reply, toGatehouseError(error, request));
  });
}

type ValidationProblem = { instancePath?: string; message?: string; params?: unknown };

/** The first problem a validator found, worded as every route's refusal is: `body.resources.cores must be ...`. */
function validationError(context: string | undefined, problems: readonly ValidationProblem[]): GatehouseError {
  const first = problems[0];
  const params = (first?.params ?? {}) as Record<string, unknown>;
  const base = (first?.instancePath ?? '').slice(1).replaceAll('/', '.');
  const leaf = (params.missingProperty ?? params.additionalProperty) as string | undefined;
  const field = [context, base, leaf].filter((p) => p).join('.');
  const what = params.additionalProperty ? 'is not a known field' : (first?.message ?? 'is invalid');
  return new GatehouseError('invalid_request', `${field} ${what}`, { field });
}

/**
 * A JSON body's check outside a route (the engine's job channel), compiled with the routes' own body
 * options (nothing coerced, unknown fields refused, defaults filled in): null when `body` passes, else
 * the refusal the route would answer. Like a route's, it fills in the schema's defaults in `body`.
 */
export function bodyValidator(schema: object): (body: unknown) => GatehouseError | null {
  const compile = AjvCompiler()({}, { customOptions: { ...AJV_OPTIONS, coerceTypes: false } }) as unknown as (route: RouteSchema) => ((v: unknown) => boolean) & { errors?: ValidationProblem[] | null };
  const check = compile({ schema, method: 'POST', url: '(channel)', httpPart: 'body' });
  return (body) => (check(body) ? null : validationError('body', check.errors ?? []));
}

function send(reply: FastifyReply, error: GatehouseError): void {
  const body: ErrorBody = error.toBody();
  // A refusal that says when to ask again says it in the header HTTP clients read too.
  if (error.status === 429 && typeof body.retry_after === 'number') void reply.header('retry-after', String(body.retry_after));
  void reply.code(error.status).type('application/json').send(body);
}

function toGatehouseError(error: FastifyError, request: FastifyRequest): GatehouseError {
  if (error instanceof GatehouseError) return error;
  if (error.validation) return validationError(error.validationContext === 'querystring' ? 'query' : error.validationContext, error.validation);
  if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    return new GatehouseError('payload_too_large', 'request body is larger than the limit (server.body_limit_bytes)');
  }
  const status = error.statusCode ?? 500;
  if (status >= 400 && status < 500) return new GatehouseError('invalid_request', error.message, { status });
  request.log.error({ err: error }, 'unhandled error');
  return new GatehouseError('internal', `internal error (request id ${request.id})`);
}
