// Which gateway the CLI talks to, and which CA it trusts: --url / GATEHOUSE_URL and --ca / GATEHOUSE_CA,
// else what the local gatehouse.yaml says (the machine `npm start` runs on), else the documented
// default; the CA, else the one `gatehouse cert` saved for that gateway under the config folder.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../../config/index.js';
import { httpsUrl } from '../../http/index.js';
import { UsageError } from '../fail.js';
import { savedCaFile } from './credentials.js';
import type { Target } from './api.js';

export function resolveTarget(options: { url?: string | undefined; ca?: string | undefined; config?: string | undefined }, env = process.env): Target {
  let url = options.url ?? env.GATEHOUSE_URL;
  let caFile = options.ca ?? env.GATEHOUSE_CA;
  if (!url || !caFile) {
    const local = localDefaults(options.config);
    url ??= local?.url ?? 'https://127.0.0.1:8443';
    caFile ??= local?.caFile;
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new UsageError(`--url ${url} is not a URL (expected https://host:port)`);
  }
  if (parsed.protocol !== 'https:') throw new UsageError(`--url ${url}: the gateway speaks HTTPS only`);
  // Last, the CA `gatehouse cert` saved for this gateway in the user's own config folder, so calls
  // work from any folder, not only beside the gateway's certs/.
  caFile ??= savedCaFile(parsed.origin);
  let ca: string | undefined;
  if (caFile) {
    try {
      ca = readFileSync(caFile, 'utf8');
    } catch {
      throw new UsageError(`cannot read the CA file ${caFile} (--ca or GATEHOUSE_CA)`);
    }
  }
  return { url: parsed.origin, ca, caFile };
}

function localDefaults(configPath: string | undefined): { url: string; caFile: string | undefined } | undefined {
  try {
    const { config, file } = loadConfig({ path: configPath });
    if (!file) return undefined;
    const url = config.server.public_url || httpsUrl(config.server.host, config.server.port);
    const caFile = join(config.certs.dir, 'ca.crt');
    return { url, caFile: existsSync(caFile) ? caFile : undefined };
  } catch {
    return undefined; // a broken local config is not the client's concern: fall back to the default
  }
}
