// Rules that span keys, checked after each key has its own type: a start-up that would only fail
// at the first login fails here instead, naming the key.
import { relative, resolve, isAbsolute } from 'node:path';
import { durationSeconds } from './duration.js';
import type { Config } from './schema.js';

/** Returns one message per broken rule; `where(path)` says where a key was set. */
export function crossKeyProblems(config: Config, where: (path: string) => string): string[] {
  const problems: string[] = [];
  const { ldap, oidc, tokens, store } = config;
  if (store.url !== '' && !/^postgres(ql)?:\/\/[^/?#\s]+\/[^/?#\s]+(\?sslmode=(disable|require|verify-full))?$/.test(store.url)) {
    problems.push(`${where('store.url')}: expected empty (the embedded SQLite store) or postgres://user@host[:port]/database[?sslmode=require|verify-full]`);
  }
  if (store.password_file !== '' && store.url === '') problems.push(`${where('store.password_file')}: only with a postgres:// store.url`);

  if (ldap.url !== '') {
    if (!/^ldaps?:\/\/[^/]+\/?$/.test(ldap.url)) problems.push(`${where('ldap.url')}: expected ldap://host[:port] or ldaps://host[:port], got ${JSON.stringify(ldap.url)}`);
    if (ldap.start_tls && ldap.url.startsWith('ldaps:')) problems.push(`${where('ldap.start_tls')}: StartTLS is for ldap:// URLs; ${ldap.url} is TLS already`);
    // Passwords in the clear over the network: only acceptable to a directory on this machine.
    if (ldap.url.startsWith('ldap:') && !ldap.start_tls && !/^ldap:\/\/(127\.[0-9.]+|localhost|\[::1\])(:\d+)?\/?$/.test(ldap.url)) {
      problems.push(`${where('ldap.start_tls')}: must be true for ${ldap.url} (passwords would cross the network unencrypted); or use ldaps://`);
    }
    if (ldap.user_base === '') problems.push(`${where('ldap.user_base')}: required when ldap.url is set (where to search for users)`);
    if (!ldap.user_filter.includes('{username}')) problems.push(`${where('ldap.user_filter')}: must contain {username}`);
    if (ldap.bind_password !== '' && ldap.bind_password_file !== '') problems.push(`${where('ldap.bind_password_file')}: set ldap.bind_password or ldap.bind_password_file, not both`);
  }
  if (oidc.issuer !== '') {
    if (!/^https?:\/\//.test(oidc.issuer)) problems.push(`${where('oidc.issuer')}: expected an https:// URL`);
    if (oidc.client_id === '') problems.push(`${where('oidc.client_id')}: required when oidc.issuer is set`);
  }
  if (oidc.client_secret !== '' && oidc.client_secret_file !== '') problems.push(`${where('oidc.client_secret_file')}: set oidc.client_secret or oidc.client_secret_file, not both`);
  if (config.server.peer_url !== '' && !/^https:\/\/[^/]+\/?$/.test(config.server.peer_url)) {
    problems.push(`${where('server.peer_url')}: expected https://host[:port], got ${JSON.stringify(config.server.peer_url)}`);
  }
  if (config.server.public_url !== '' && !/^https:\/\/[^/]+\/?$/.test(config.server.public_url)) {
    problems.push(`${where('server.public_url')}: expected https://host[:port], got ${JSON.stringify(config.server.public_url)}`);
  }
  const { slurm } = config;
  if (slurm.url !== '') {
    if (!/^https?:\/\/[^/?#\s]+\/?$/.test(slurm.url)) problems.push(`${where('slurm.url')}: expected http://host[:port] or https://host[:port], got ${JSON.stringify(slurm.url)}`);
    if (slurm.jwt_key_file === '') problems.push(`${where('slurm.jwt_key_file')}: required when slurm.url is set (Slurm's JWT key, to mint each person's token)`);
  }
  // Slurm tokens are minted per request: minutes, never a credential that outlives a session.
  if (slurm.max_uid < slurm.min_uid) problems.push(`${where('slurm.max_uid')}: must not be below slurm.min_uid (${slurm.min_uid}), got ${slurm.max_uid}`);
  if (slurm.jobs_dir !== '' && config.data.root !== '' && isInside(slurm.jobs_dir, config.data.root)) problems.push(`${where('slurm.jobs_dir')}: must not be inside data.root (the people's accounts reach it; the data root must stay closed to them)`);
  for (const key of ['install_dir', 'node'] as const) {
    if (slurm[key] !== '' && !isAbsolute(slurm[key])) problems.push(`${where(`slurm.${key}`)}: expected an absolute path on the nodes, got ${JSON.stringify(slurm[key])}`);
  }
  const slurmTtl = durationSeconds(slurm.token_ttl);
  if (slurmTtl < 30 || slurmTtl > 3600) problems.push(`${where('slurm.token_ttl')}: must be from 30s to 1h, got ${JSON.stringify(slurm.token_ttl)}`);
  // A refresh window shorter than one access token would end every login before its first refresh.
  if (durationSeconds(tokens.refresh_ttl) < durationSeconds(tokens.access_ttl)) {
    problems.push(`${where('tokens.refresh_ttl')}: must be at least tokens.access_ttl (${tokens.access_ttl})`);
  }
  return problems;
}

/** Whether `path` is `root` or inside it (as written; both resolved). */
function isInside(path: string, root: string): boolean {
  const rel = relative(resolve(root), resolve(path));
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}
