// A usable access token for the saved login: refreshed (and the rotated refresh token saved) when
// it is about to expire, so a user logs in once per tokens.refresh_ttl, not once per access token.
import { ApiError, call, type Target } from './api.js';
import { loadLogin, type SavedLogin, saveLogin } from './credentials.js';
import { UsageError } from '../fail.js';

const REFRESH_MARGIN_MS = 30_000;

interface TokenAnswer {
  access_token: string;
  refresh_token: string;
  expires_in: number;
}

export function savedFrom(answer: TokenAnswer, who: { user: string; auth_method: string }): SavedLogin {
  return { ...who, access_token: answer.access_token, refresh_token: answer.refresh_token, expires_at: new Date(Date.now() + answer.expires_in * 1000).toISOString() };
}

/** The gateway, and the context that named it: `https://gw:8443 (context prod)`. */
export const where = (target: Target) => `${target.url}${target.context === undefined ? '' : ` (context ${target.context})`}`;

export async function accessToken(target: Target): Promise<string> {
  const login = loadLogin(target);
  if (!login) throw new UsageError(`not logged in to ${where(target)}: run gatehouse login --sso (or --ldap)`);
  if (Date.parse(login.expires_at) - REFRESH_MARGIN_MS > Date.now()) return login.access_token;
  try {
    const answer = await call<TokenAnswer>(target, 'POST', '/v1/auth/token', { body: { grant_type: 'refresh_token', refresh_token: login.refresh_token } });
    saveLogin(target, savedFrom(answer, login));
    return answer.access_token;
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) throw new UsageError(`your login to ${target.url} has ended (${err.message}): run gatehouse login again`);
    throw err;
  }
}
