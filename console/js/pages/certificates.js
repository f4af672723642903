// Certificates issued (GET /v1/certs?all=1): serial, subject, expiry, revoked; and for whoever may,
// a revoke button that asks first (DELETE /v1/certs/:serial, with the CSRF token).
import { api } from '../api.js';
import { badge, formatTime, h, notice, pageHeader, replace } from '../dom.js';
import { confirmDialog, mono, table } from '../admin-ui.js';

export async function render(main, ctx) {
  const status = h('div', { 'aria-live': 'polite' });
  const list = h('div');
  const showAll = h('input', { type: 'checkbox', id: 'show-ended' });

  async function revoke(c) {
    const yes = await confirmDialog({ title: 'Revoke this certificate?', message: `Certificate ${c.serial} of ${c.user} stops working at once, everywhere; this cannot be undone.`, danger: 'Revoke' });
    if (!yes) return;
    try {
      const r = await api(`/v1/certs/${encodeURIComponent(c.serial)}`, { method: 'DELETE' });
      replace(status, notice('ok', `Certificate ${r.serial} of ${c.user} revoked at ${formatTime(r.revoked_at)}.`));
    } catch (err) {
      replace(status, notice('error', err.message));
    }
    await draw();
  }

  async function draw() {
    let certs;
    try {
      certs = (await api('/v1/certs?all=1')).certificates;
    } catch (err) {
      replace(list, notice('error', err.message));
      return;
    }
    const shown = showAll.checked ? certs : certs.filter((c) => !c.revoked && !c.expired);
    replace(
      list,
      table(
        [
          { label: 'Serial', cell: (c) => mono(c.serial) },
          { label: 'Subject', cell: (c) => c.subject },
          { label: 'Issued', cell: (c) => formatTime(c.not_before) },
          { label: 'Expires', cell: (c) => formatTime(c.not_after) },
          { label: 'State', cell: (c) => (c.revoked ? h('span', badge('revoked', 'deny'), h('span.muted.small', ` by ${c.revoked_by ?? '?'}, ${formatTime(c.revoked_at)}`)) : c.expired ? badge('expired', 'cancelled') : badge('valid', 'ok')) },
          {
            label: 'Action',
            cell: (c) => (ctx.can('revoke_certificate') && !c.revoked && !c.expired ? h('button.button.button-small.button-danger', { type: 'button', dataset: { serial: c.serial }, 'aria-label': `Revoke certificate ${c.serial} of ${c.user}`, onclick: () => revoke(c) }, 'Revoke') : '—'),
          },
        ],
        shown,
        { caption: 'Client certificates issued', empty: showAll.checked ? 'No certificate has been issued.' : 'No certificate is valid now.' },
      ),
      h('p.muted.small', `${certs.length} issued in all; ${certs.filter((c) => !c.revoked && !c.expired).length} valid now.`),
    );
  }

  showAll.addEventListener('change', draw);
  replace(main, pageHeader('Certificates', 'Client certificates the gateway issued to people, newest first. Revoking one ends it at once.'), h('p.toggle', showAll, h('label', { for: 'show-ended' }, ' Show revoked and expired ones too')), status, list);
  await draw();
}
