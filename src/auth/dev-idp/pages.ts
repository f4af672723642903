// DEVELOPMENT ONLY: the HTML of the development provider's pages. Every page carries the banner and
// "Development provider" in its title, so nobody mistakes it for the company's sign-in.

export function escapeHtml(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** No scripts, no outside resources, not framable: these pages only post forms to themselves. */
export const PAGE_HEADERS = {
  'content-type': 'text/html; charset=utf-8',
  'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
  'x-frame-options': 'DENY',
  'cache-control': 'no-store',
  'referrer-policy': 'no-referrer',
} as const;

const STYLE = `body{font-family:system-ui,sans-serif;margin:0;background:#f4f4f4}
.banner{background:#b00020;color:#fff;padding:.6em 1em;font-weight:600;text-align:center}
main{max-width:26em;margin:2em auto;background:#fff;padding:1.5em 2em;border-radius:4px;box-shadow:0 1px 3px rgba(0,0,0,.2)}
label{display:block;margin:.8em 0 .2em}input[type=text],input[type=password]{width:100%;box-sizing:border-box;padding:.5em;font-size:1em}
button{margin-top:1em;padding:.5em 1.2em;font-size:1em}.error{color:#b00020}code{font-size:1.4em}`;

export function page(title: string, body: string): string {
  return `<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>${escapeHtml(title)} · Gatehouse development provider</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>${STYLE}</style></head>
<body>
<div class="banner">DEVELOPMENT ONLY: Gatehouse development provider with demo users. Not a real sign-in.</div>
<main>
<h1>${escapeHtml(title)}</h1>
${body}
</main>
</body>
</html>`;
}

export function loginPage(action: string, options: { client: string; username?: string; error?: string }): string {
  return page(
    'Sign in',
    `<p>Sign in to <strong>${escapeHtml(options.client)}</strong> with a demo user from dev_idp.users_file.</p>
${options.error ? `<p class="error">${escapeHtml(options.error)}</p>` : ''}
<form method="post" action="${escapeHtml(action)}" id="login">
<label for="username">Username</label>
<input type="text" id="username" name="username" autocomplete="username" autofocus required value="${escapeHtml(options.username ?? '')}">
<label for="password">Password</label>
<input type="password" id="password" name="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form>`,
  );
}

export function consentPage(confirmAction: string, abortAction: string, options: { client: string; user: string; scopes: string[] }): string {
  const scopes = options.scopes.map((s) => `<li>${escapeHtml(s)}</li>`).join('');
  return page(
    'Allow access?',
    `<p>Signed in as <strong>${escapeHtml(options.user)}</strong>.</p>
<p><strong>${escapeHtml(options.client)}</strong> asks for:</p>
<ul>${scopes || '<li>no new scopes</li>'}</ul>
<form method="post" action="${escapeHtml(confirmAction)}" id="consent"><button type="submit">Allow</button></form>
<form method="post" action="${escapeHtml(abortAction)}" id="deny"><button type="submit">Deny</button></form>`,
  );
}

/** oidc-provider hands over its own form (with its xsrf field); we wrap it and add the button. */
export function deviceInputPage(form: string, error?: string): string {
  return page(
    'Connect a device',
    `<p>Enter the code the command line shows you.</p>
${error ? `<p class="error">${escapeHtml(error)}</p>` : ''}
${form}
<button type="submit" form="op.deviceInputForm">Continue</button>`,
  );
}

export function deviceConfirmPage(form: string, client: string, userCode: string): string {
  return page(
    'Confirm the device',
    `<p><strong>${escapeHtml(client)}</strong> asks to sign you in on a device showing this code:</p>
<p><code>${escapeHtml(userCode)}</code></p>
<p>If you did not start this, or the code differs, choose Abort.</p>
${form}
<button type="submit" form="op.deviceConfirmForm">Continue</button>
<button type="submit" form="op.deviceConfirmForm" name="abort" value="yes">Abort</button>`,
  );
}

export function deviceSuccessPage(): string {
  return page('Signed in', '<p>The device is signed in. You can close this page and return to the command line.</p>');
}

export function errorPage(error: string, description?: string): string {
  return page('Sign-in failed', `<p class="error">${escapeHtml(error)}</p>${description ? `<p>${escapeHtml(description)}</p>` : ''}`);
}
