// Signing in: SSO through the company's provider (code + PKCE, run by the gateway; the browser comes
// back with the session cookie) and/or the directory form, whichever GET /v1/auth/methods offers.
import { api, ApiError } from '../api.js';
import { field, h, notice, replace } from '../dom.js';

export async function renderSignIn(main, { signedIn }) {
  const card = h('section.signin-card', { 'aria-labelledby': 'signin-title' });
  replace(main, h('div.signin', card));
  let methods;
  try {
    methods = await api('/v1/auth/methods');
  } catch (err) {
    replace(card, h('h1#signin-title', 'Sign in'), notice('error', `The gateway did not say how to sign in: ${err.message}`));
    return;
  }
  const parts = [h('h1#signin-title', 'Sign in to Gatehouse'), h('p.lead', 'Your datasets, jobs and quota, under your organisation’s policy.')];
  if (location.hash === '#/signed-out') parts.push(notice('ok', 'You are signed out. Your login has ended on the gateway.'));
  if (methods.oidc) {
    parts.push(h('a.button.button-primary.button-block#sso', { href: `${methods.oidc_login}?return_to=${encodeURIComponent('/console/')}` }, 'Sign in with single sign-on'));
  }
  if (methods.oidc && methods.ldap) parts.push(h('p.divider', h('span', 'or with your directory account')));
  if (methods.ldap) parts.push(ldapForm(signedIn));
  if (!methods.oidc && !methods.ldap) parts.push(notice('warn', 'No sign-in is configured on this gateway (oidc.issuer, dev_idp or ldap.url).'));
  replace(card, parts);
}

function ldapForm(signedIn) {
  const username = h('input', { name: 'username', autocomplete: 'username', required: true, maxlength: 256, spellcheck: 'false', autocapitalize: 'none' });
  const password = h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true, maxlength: 1024 });
  const message = h('div.form-message');
  const submit = h('button.button.button-block', { type: 'submit' }, 'Sign in');
  const form = h('form#ldap-form', { novalidate: true, 'aria-label': 'Directory sign-in' }, field('Username', username), field('Password', password), message, submit);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    replace(message);
    if (!username.value.trim() || !password.value) {
      replace(message, notice('error', 'Enter your username and your password.'));
      (username.value.trim() ? password : username).focus();
      return;
    }
    submit.disabled = true;
    submit.textContent = 'Signing in…';
    try {
      await api('/v1/auth/ldap/session', { method: 'POST', body: { username: username.value.trim(), password: password.value } });
      password.value = '';
      history.replaceState(null, '', '/console/#/');
      signedIn();
    } catch (err) {
      const text = err instanceof ApiError && err.status === 401 ? 'Wrong username or password.' : err.message;
      replace(message, notice('error', text));
      password.value = '';
      password.focus();
    } finally {
      submit.disabled = false;
      submit.textContent = 'Sign in';
    }
  });
  return form;
}
