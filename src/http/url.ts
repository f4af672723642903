/** The https URL that reaches a listener: wildcard binds become loopback, IPv6 gets brackets. */
export function httpsUrl(host: string, port: number): string {
  if (host === '0.0.0.0') return `https://127.0.0.1:${port}`;
  if (host === '::') return `https://[::1]:${port}`;
  return `https://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** A name or address that only this machine can reach (127.0.0.0/8, ::1, localhost), bracketed or not. */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}
