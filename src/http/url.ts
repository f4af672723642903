/** The https URL that reaches a listener: wildcard binds become loopback, IPv6 gets brackets. */
export function httpsUrl(host: string, port: number): string {
  if (host === '0.0.0.0') return `https://127.0.0.1:${port}`;
  if (host === '::') return `https://[::1]:${port}`;
  return `https://${host.includes(':') ? `[${host}]` : host}:${port}`;
}
