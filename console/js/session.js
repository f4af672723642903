// Signing out ends the login on the gateway (POST /v1/auth/logout with the CSRF token): its tokens,
// this session and the certificates issued under it stop working, wherever they are.
import { api } from './api.js';

export async function signOut() {
  try {
    await api('/v1/auth/logout', { method: 'POST', body: {} });
  } finally {
    location.replace('/console/#/signed-out');
    location.reload();
  }
}
