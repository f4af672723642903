// Issue 15, point 14 on the way in: text a directory or an IdP hands us about a person (group names)
// reaches the audit trail, whoami and policy decisions. A group name carrying a character a
// terminal or a browser acts on (C0 and C1 controls, DEL, bidi embeddings, overrides, isolates and
// marks, line separators) is dropped, not mangled: it cannot be named in a policy line anyway, and
// a name that shows as something else ("admins" reversed, a cursor move) must never reach a viewer.
// Tried in-process (cleanGroups) and end to end: a real slapd whose groups carry such names, a
// real LDAP login, whoami and the trail.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanGroups } from '../../src/identity/index.js';
import { type IdentityApp, startIdentityApp } from '../support/identity-app.js';
import { GROUPS, PEOPLE, passwordOf, type Slapd, startSlapd } from '../support/slapd.js';

/** Every character a terminal would act on, by code point (what src/cli/safe-text.ts escapes). */
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

/** One hostile group name per class of character; each must be dropped. */
const HOSTILE: Record<string, string> = {
  esc: 'ops\u001b[2Jadmins',
  del: 'ops\u007fadmins',
  c1_csi: 'ops\u009b31madmins',
  c1_first: 'ops\u0080x',
  c1_last: 'ops\u009fx',
  c1_osc: 'ops\u009d0;title\u009c',
  lre: 'ops\u202aadmins',
  rle: 'ops\u202badmins',
  pdf: 'ops\u202cadmins',
  lro: 'ops\u202dadmins',
  rlo: 'snimda\u202eops', // shows as "opsadmins" reversed: a name that reads as another
  lri: 'ops\u2066admins',
  rli: 'ops\u2067admins',
  fsi: 'ops\u2068admins',
  pdi: 'ops\u2069admins',
  alm: 'ops\u061cadmins',
  lrm: 'ops\u200eadmins',
  rlm: 'ops\u200fadmins',
  line_separator: 'ops\u2028admins',
  paragraph_separator: 'ops\u2029admins',
};
/** Names that must stay: inner spaces (Active Directory), letters beyond ASCII, punctuation a policy line takes. */
const KEPT = ['Domain Admins', 'Équipe données', 'データ', 'ops-team_2.0', 'analysts'];

describe('cleanGroups', () => {
  for (const [what, name] of Object.entries(HOSTILE)) {
    it(`drops a group name with ${what} (U+${name.match(CONTROL)![0].charCodeAt(0).toString(16).padStart(4, '0')})`, () => {
      expect(cleanGroups([name, 'analysts'])).toEqual(['analysts']);
      expect(cleanGroups([` ${name} `])).toEqual([]);
    });
  }

  it('keeps ordinary names, trimmed, sorted and once each; drops empty, comma and over-long ones', () => {
    expect(cleanGroups([...KEPT, ' analysts ', 'a,b', '', '   ', 'x'.repeat(257), 'y'.repeat(256)])).toEqual([...KEPT, 'y'.repeat(256)].sort());
  });
});

describe('hostile group names from a real directory', () => {
  let slapd: Slapd;
  let app: IdentityApp;
  const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
  // Each hostile name as a groupOfNames with alice as member (memberOf on alice follows), plus one
  // ordinary group beyond ASCII that must come through.
  const names = [...Object.values(HOSTILE), 'Équipe données'];
  // The name is the group's DN (memberOf lists DNs; the gateway reads the first RDN's value), with
  // RFC 4514's specials escaped and every control character kept raw, as a directory may hold them.
  const dnValue = (cn: string) => cn.replace(/[,+"\\<>;=#]/g, '\\$&');
  const ldif = names.map((cn) => [`dn:: ${b64(`cn=${dnValue(cn)},${GROUPS}`)}`, 'objectClass: groupOfNames', `cn:: ${b64(cn)}`, `member: uid=alice,${PEOPLE}`, ''].join('\n')).join('\n');

  beforeAll(async () => {
    slapd = await startSlapd({ extraLdif: `\n${ldif}` });
    app = await startIdentityApp({
      config: { ldap: { url: slapd.url, start_tls: true, ca_file: slapd.caFile, bind_dn: slapd.bindDn, bind_password: slapd.bindPassword, user_base: PEOPLE, group_base: GROUPS } },
    });
  }, 90_000);
  afterAll(async () => {
    await app?.close();
    await slapd?.stop();
  });

  it('an LDAP login whose groups carry controls: whoami and the trail show only the clean names', async () => {
    const login = await app.call('/v1/auth/ldap', { method: 'POST', body: JSON.stringify({ username: 'alice', password: passwordOf('alice') }), headers: { 'content-type': 'application/json' } });
    expect(login.status, login.body).toBe(200);
    const token = login.json<{ access_token: string }>().access_token;
    const me = await app.call('/v1/whoami', { headers: { authorization: `Bearer ${token}` } });
    expect(me.status, me.body).toBe(200);
    const groups = me.json<{ groups: string[] }>().groups;
    // The directory really sent them: the clean one beside them came through.
    expect(groups).toContain('Équipe données');
    expect(groups.filter((g) => CONTROL.test(g))).toEqual([]);
    expect(groups.filter((g) => g.includes('admins') || g.startsWith('ops'))).toEqual([]);
    const logged = app.events().filter((e) => e.action === 'auth.login' && e.actor.user === 'alice');
    expect(logged.length).toBeGreaterThan(0);
    for (const e of logged) {
      expect(e.actor.groups).toContain('Équipe données');
      expect(JSON.stringify(e)).not.toMatch(CONTROL);
    }
  });
});
