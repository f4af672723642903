// The headers every console file goes out with. The console's own scripts and stylesheet only
// (no inline script or style, no eval, no other origin), never inside another site's frame, never
// sniffed into another type, and no Referer leaving with a job id or dataset name in the path.
export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "font-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  // The LDAP form is sent by script; SSO is a link. A form that posts elsewhere is a planted one.
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

export const CONSOLE_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': CONTENT_SECURITY_POLICY,
  'x-frame-options': 'DENY',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'permissions-policy': 'camera=(), microphone=(), geolocation=()',
  // The files change with a deploy; a browser revalidates them, and no page keeps a person's data.
  'cache-control': 'no-cache',
};
