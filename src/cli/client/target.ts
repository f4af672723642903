// Which gateway the CLI talks to, which CA it trusts there, and under which name its login is kept.
// The order is fixed (README "Which gateway", the Python client follows it too); the first source
// that names a URL wins:
//   1. --url (and --ca)                    explicit on the command line
//   2. --context NAME                      a context named on the command line
//   3. GATEHOUSE_URL (and GATEHOUSE_CA)    the environment
//   4. GATEHOUSE_CONTEXT                   a context named in the environment
//   5. the current context                 gatehouse config use-context
//   6. ./gatehouse.yaml, else https://127.0.0.1:8443
// The CA is the first one named in the same order (a context's only with its own URL), else, when the
// URL is the local gateway's (or none was named), the local certs/ca.crt; else the one `gatehouse cert`
// saved for that gateway.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { localGateway } from '../../config/lean.js';
import { UsageError } from '../fail.js';
import type { Target } from './api.js';
import { type Context, namedContext, readContexts } from './contexts.js';
import { savedCaFile } from './credentials.js';

export interface TargetOptions {
  url?: string | undefined;
  ca?: string | undefined;
  context?: string | undefined;
  config?: string | undefined;
}

/** One place a URL and a CA can come from, named as an error message should name it. */
interface Source {
  url: string | undefined;
  ca: string | undefined;
  /** How to name it: `--ca`, `context "prod"`. */
  caWhere: string;
  context?: string;
}

export function resolveTarget(options: TargetOptions, env: NodeJS.ProcessEnv = process.env): Target {
  const sources: (() => Source | undefined)[] = [
    () => ({ url: options.url, ca: options.ca, caWhere: '--ca' }),
    () => (options.context === undefined ? undefined : fromContext(options.context, '--context')),
    () => ({ url: env.GATEHOUSE_URL || undefined, ca: env.GATEHOUSE_CA || undefined, caWhere: 'GATEHOUSE_CA' }),
    () => (env.GATEHOUSE_CONTEXT ? fromContext(env.GATEHOUSE_CONTEXT, 'GATEHOUSE_CONTEXT') : undefined),
    () => currentContext(),
  ];
  let caFile: string | undefined;
  let caWhere = '';
  const offer = (file: string | undefined, where: string) => {
    if (caFile === undefined && file !== undefined) [caFile, caWhere] = [file, where];
  };
  let chosen: Source | undefined;
  for (const next of sources) {
    const source = next();
    if (source === undefined) continue;
    offer(source.ca, source.caWhere);
    if (source.url !== undefined) {
      chosen = source;
      break;
    }
  }
  // GATEHOUSE_CA also serves a URL named above it (--url, --context without a CA of its own).
  offer(env.GATEHOUSE_CA || undefined, 'GATEHOUSE_CA');
  let url = chosen?.url;
  if (url === undefined || (chosen?.context === undefined && caFile === undefined)) {
    // The gateway of this machine's gatehouse.yaml, and its CA; never a context's (it names its own
    // gateway). Not read when the URL and the CA are both known already: it could change neither.
    const local = localDefaults(options.config);
    const named = url;
    url ??= local?.url ?? 'https://127.0.0.1:8443';
    // The local CA vouches for the local gateway only: a URL named for another gateway does not
    // inherit it (it falls to the CA saved for that gateway, or the system's).
    if (named === undefined || sameOrigin(named, local?.url)) offer(local?.caFile, 'the local certs/ca.crt');
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new UsageError(`${chosen?.context !== undefined ? `context "${chosen.context}": ` : ''}${url} is not a URL (expected https://host:port)`);
  }
  if (parsed.protocol !== 'https:') throw new UsageError(`${url}: the gateway speaks HTTPS only`);
  const context = chosen?.context;
  // Last, the CA `gatehouse cert` saved for this gateway in the user's own config folder, so calls
  // work from any folder, not only beside the gateway's certs/.
  if (caFile === undefined) {
    caFile = savedCaFile(parsed.origin, context);
    caWhere = 'saved by gatehouse cert';
  }
  let ca: string | undefined;
  if (caFile !== undefined) {
    try {
      ca = readFileSync(caFile, 'utf8');
    } catch {
      throw new UsageError(`cannot read the CA file ${caFile} (${caWhere})`);
    }
  }
  return { url: parsed.origin, ca, caFile, context, caSource: caFile === undefined ? undefined : caWhere };
}

function sameOrigin(a: string, b: string | undefined): boolean {
  if (b === undefined) return false;
  try {
    return new URL(a).origin === new URL(b).origin;
  } catch {
    return false;
  }
}

function fromContext(name: string, where: string): Source {
  return source(name, namedContext(readContexts(), name, where));
}

/** The current context, when there is one still defined (a deleted one is no longer current). */
function currentContext(): Source | undefined {
  const all = readContexts();
  const name = all.current;
  const context = name === null ? undefined : all.contexts[name];
  return name === null || context === undefined ? undefined : source(name, context);
}

const source = (name: string, c: Context): Source => ({ url: c.url, ca: c.ca, caWhere: `context "${name}"`, context: name });

function localDefaults(configPath: string | undefined): { url: string; caFile: string | undefined } | undefined {
  try {
    // The four keys the client needs, without the server's whole configuration loader.
    const local = localGateway(configPath);
    if (local === null) return undefined;
    const caFile = join(local.certsDir, 'ca.crt');
    return { url: local.url, caFile: existsSync(caFile) ? caFile : undefined };
  } catch {
    return undefined; // a broken local config is not the client's concern: fall back to the default
  }
}
