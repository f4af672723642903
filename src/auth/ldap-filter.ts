// Building LDAP search filters from configured templates (RFC 4515) and reading names out of DNs (RFC 4514).

/**
 * Escapes a value for an RFC 4515 filter: `\`, `*`, `(`, `)` and NUL become `\XX`, so the value can only
 * ever be compared, never change the filter's structure. Other ASCII control characters are escaped too,
 * so logged filters stay readable.
 *
 * Non-ASCII characters stay literal UTF-8, which RFC 4515 allows: ldapts 8 decodes each `\XX` of a string
 * filter as one Latin-1 character, so an escaped `é` (`\c3\a9`) would reach the directory double-encoded.
 */
export function escapeFilterValue(value: string): string {
  return value.replace(/[\\*()\x00-\x1f\x7f]/g, (c) => `\\${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** Replaces each `{name}` of the template with the escaped value; unknown placeholders stay as they are. */
export function fillFilter(template: string, values: Record<string, string>): string {
  return template.replace(/\{([a-z_]+)\}/g, (whole, name: string) => {
    const value = values[name];
    return value === undefined ? whole : escapeFilterValue(value);
  });
}

/**
 * The value of a DN's first RDN: `cn=analysts,ou=groups,dc=example,dc=org` → `analysts`.
 * Handles RFC 4514 escapes (`\,`, `\2C`); a multi-valued RDN (`cn=a+uid=b`) gives its first value.
 * Returns undefined for something that is not a DN.
 */
export function firstRdnValue(dn: string): string | undefined {
  const eq = dn.indexOf('=');
  if (eq <= 0) return undefined;
  const bytes: number[] = [];
  const text = dn.slice(eq + 1);
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (c === ',' || c === '+') break;
    if (c === '\\') {
      const hex = text.slice(i + 1, i + 3);
      if (/^[0-9A-Fa-f]{2}$/.test(hex)) {
        bytes.push(Number.parseInt(hex, 16));
        i += 2;
      } else if (i + 1 < text.length) {
        bytes.push(...Buffer.from(text[i + 1] as string, 'utf8'));
        i += 1;
      }
      continue;
    }
    // A code point outside the BMP is two UTF-16 units: take both at once.
    const cp = text.codePointAt(i) as number;
    if (cp > 0xffff) i += 1;
    bytes.push(...Buffer.from(String.fromCodePoint(cp), 'utf8'));
  }
  const value = Buffer.from(bytes).toString('utf8').trim();
  return value === '' ? undefined : value;
}
