// The last line of defence against a secret in the trail: refuse an event whose details carry a
// field named like one, or a value shaped like a JWT or a PEM key. Rooms must not send them at all.
const SECRET_FIELD = /pass(word)?|secret|token|cookie|private|authorization|csr|^key$|code_verifier|device_code/i;
const SECRET_VALUE = /^eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*\.|-----BEGIN [A-Z ]*PRIVATE KEY-----/; // a JWS/JWE: a base64url JSON header first

export class AuditSecretError extends Error {
  override readonly name = 'AuditSecretError';
}

export function assertNoSecrets(value: unknown, path = 'event'): void {
  if (typeof value === 'string') {
    if (SECRET_VALUE.test(value)) throw new AuditSecretError(`${path} looks like a token or a private key`);
    return;
  }
  if (Array.isArray(value)) {
    value.forEach((v, i) => assertNoSecrets(v, `${path}[${i}]`));
    return;
  }
  if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      if (SECRET_FIELD.test(k) && v !== null && v !== undefined && v !== false) throw new AuditSecretError(`${path}.${k} is a secret field`);
      assertNoSecrets(v, `${path}.${k}`);
    }
  }
}
