// Certificate: a short-lived client certificate for tools that speak mTLS. The key is made here with
// WebCrypto and never sent; the gateway signs the request (POST /v1/certs) for the signed-in person,
// for no longer than their login lasts, and the person saves the three files.
import { api } from '../api.js';
import { field, formatTime, h, notice, pageHeader, replace } from '../dom.js';
import { createKeyAndCsr } from '../csr.js';

const LIFETIMES = [
  ['', 'As long as the gateway allows'],
  ['3600', '1 hour'],
  ['900', '15 minutes'],
];

export function render(main, ctx) {
  const ttl = h('select', { name: 'ttl' }, LIFETIMES.map(([v, t]) => h('option', { value: v }, t)));
  const out = h('div#certificate-result', { 'aria-live': 'polite' });
  const button = h('button.button.button-primary', { type: 'submit' }, 'Create key and certificate');
  const form = h(
    'form.panel',
    { 'aria-label': 'New certificate' },
    h('h2', 'A new certificate'),
    h('p', 'A key pair is made in this browser; only its public half goes to the gateway, which signs a certificate naming ', h('strong', ctx.me.user), '. It stops working when it expires, when you sign out, or when it is revoked.'),
    field('Lifetime', ttl, 'Never longer than the gateway’s certs.client_ttl, nor than this sign-in.'),
    h('div.form-actions', button),
  );
  replace(main, pageHeader('Certificate', 'A short-lived client certificate for curl, Python or any tool that speaks mutual TLS.'), form, out);
  let urls = [];
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    button.disabled = true;
    button.textContent = 'Making the key…';
    for (const u of urls) URL.revokeObjectURL(u);
    urls = [];
    try {
      const { csrPem, keyPem } = await createKeyAndCsr(ctx.me.user);
      button.textContent = 'Asking the gateway…';
      const cert = await api('/v1/certs', { method: 'POST', body: { csr: csrPem, ...(ttl.value ? { ttl_s: Number(ttl.value) } : {}) } });
      const file = (text, name, label) => {
        const url = URL.createObjectURL(new Blob([text], { type: 'application/x-pem-file' }));
        urls.push(url);
        return h('a.button', { href: url, download: name }, label);
      };
      replace(
        out,
        h(
          'section.panel',
          h('h2', 'Your certificate'),
          notice('ok', `Signed: serial ${cert.serial}, valid until ${formatTime(cert.expires_at)}.`),
          h('div.form-actions.downloads', file(cert.certificate, `${ctx.me.user}.crt`, 'Download certificate'), file(keyPem, `${ctx.me.user}.key`, 'Download private key'), file(cert.ca, 'gatehouse-ca.crt', 'Download CA')),
          notice('warn', 'The private key exists only in this page: save it now, keep it private (chmod 600). Leaving the page forgets it.'),
          h('h3', 'Use it'),
          h('pre.log', `curl --cert ${ctx.me.user}.crt --key ${ctx.me.user}.key --cacert gatehouse-ca.crt ${location.origin}/v1/whoami`),
        ),
      );
    } catch (err) {
      replace(out, notice('error', `No certificate: ${err.message}`));
    } finally {
      button.disabled = false;
      button.textContent = 'Create key and certificate';
    }
  });
  return () => {
    for (const u of urls) URL.revokeObjectURL(u);
  };
}
