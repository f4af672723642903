// `gatehouse config set-context | use-context | get-contexts | current-context | delete-context`:
// named gateways, as kubectl's. Only the local contexts.json changes; nothing is sent anywhere.
import { accessSync, constants } from 'node:fs';
import { resolve } from 'node:path';
import { checkContextName, type Contexts, isContextName, namedContext, readContexts, writeContexts } from './client/contexts.js';
import { forgetContextLogin, loadLogin } from './client/credentials.js';
import { UsageError } from './fail.js';
import { isStructured, structured } from './output.js';
import { printLine } from './safe-text.js';
import { table } from './table.js';

export function setContext(name: string, o: { url?: string | undefined; ca?: string | undefined }): number {
  checkContextName(name);
  const all = readContexts();
  const before = all.contexts[name];
  const url = o.url ?? before?.url;
  if (url === undefined) throw new UsageError(`context ${name} is new: --url https://host:port is needed`);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new UsageError(`--url ${url} is not a URL (expected https://host:port)`);
  }
  if (parsed.protocol !== 'https:') throw new UsageError(`--url ${url}: the gateway speaks HTTPS only`);
  let ca = before?.ca;
  if (o.ca !== undefined) {
    // Kept as an absolute path: the context is used from any folder.
    ca = o.ca === '' ? undefined : resolve(o.ca);
    if (ca !== undefined) {
      try {
        accessSync(ca, constants.R_OK);
      } catch {
        throw new UsageError(`cannot read the CA file ${ca} (--ca)`);
      }
    }
  }
  all.contexts[name] = { url: parsed.origin, ...(ca === undefined ? {} : { ca }) };
  writeContexts(all);
  const view = { name, url: parsed.origin, ca: ca ?? null, current: all.current === name, created: before === undefined };
  printLine(isStructured() ? structured(view) : `context ${name} ${before === undefined ? 'created' : 'updated'}: ${parsed.origin}${ca ? `, CA ${ca}` : ''}${all.current === name ? '' : ` (gatehouse config use-context ${name} makes it the default)`}`);
  return 0;
}

export function useContext(name: string): number {
  const all = readContexts();
  namedContext(all, name, 'gatehouse config get-contexts lists them');
  all.current = name;
  writeContexts(all);
  printLine(isStructured() ? structured({ current: name }) : `switched to context ${name}`);
  return 0;
}

export function deleteContext(name: string): number {
  const all = readContexts();
  namedContext(all, name, 'gatehouse config get-contexts lists them');
  delete all.contexts[name];
  const wasCurrent = all.current === name;
  if (wasCurrent) all.current = null;
  writeContexts(all);
  // Its saved login goes with it: a context made again later under the name is not logged in.
  const forgot = forgetContextLogin(name);
  printLine(isStructured() ? structured({ deleted: name, was_current: wasCurrent, login_forgotten: forgot }) : `deleted context ${name}${wasCurrent ? '; no context is current now' : ''}${forgot ? ' and its saved login (gatehouse logout first revokes it at the gateway)' : ''}`);
  return 0;
}

export function currentContext(): number {
  const { current, contexts } = readContexts();
  if (current === null || contexts[current] === undefined) {
    if (isStructured()) printLine(structured({ current: null }));
    else process.stderr.write('no current context (gatehouse config use-context NAME sets one)\n');
    return 1;
  }
  printLine(isStructured() ? structured({ current, ...contexts[current] }) : current);
  return 0;
}

/** One name a line, for the completion scripts; nothing (and exit 0) when there are none or the file is unreadable. */
export function contextNames(): number {
  let names: string[] = [];
  try {
    // A name set-context would refuse (a hand-edited or planted file) is never offered: bash's
    // compgen -W expands $(...) in its word list.
    names = Object.keys(readContexts().contexts).filter(isContextName).sort();
  } catch {
    // completion must never print an error into the user's line
  }
  if (names.length > 0) process.stdout.write(`${names.join('\n')}\n`);
  return 0;
}

export function getContexts(): number {
  const all = readContexts();
  const rows = listed(all);
  if (isStructured()) printLine(structured({ current: all.current !== null && all.contexts[all.current] ? all.current : null, contexts: rows }));
  else if (rows.length === 0) printLine('no contexts (gatehouse config set-context NAME --url URL [--ca FILE] makes one)');
  else printLine(table(['current', 'name', 'url', 'ca', 'logged in as'], rows.map((r) => [r.current ? '*' : '', r.name, r.url, r.ca ?? '-', r.user ?? '-'])));
  return 0;
}

function listed(all: Contexts) {
  return Object.entries(all.contexts)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, c]) => ({ name, current: all.current === name, url: c.url, ca: c.ca ?? null, user: loadLogin({ url: c.url, context: name })?.user ?? null }));
}
