// The console's start: who is signed in (GET /v1/whoami), what their policy opens
// (GET /v1/console/capabilities), then the page the address names. Signed out: the sign-in page.
import { api, ApiError } from './api.js';
import { h, notice, pageHeader, replace } from './dom.js';
import { findPage, visibleSections } from './registry.js';
import { renderSignIn } from './pages/signin.js';
import { renderHome } from './pages/home.js';
import { signOut } from './session.js';

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const who = document.getElementById('who');
const toggle = document.getElementById('nav-toggle');

let ctx = null;
let stopPage = null;
let renderCount = 0;

async function start() {
  let me;
  try {
    me = await api('/v1/whoami');
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return showSignIn();
    return fatal(err);
  }
  let capabilities;
  try {
    capabilities = await api('/v1/console/capabilities');
  } catch (err) {
    return fatal(err);
  }
  ctx = {
    me,
    capabilities,
    can: (button) => capabilities.buttons.includes(button),
    navigate: (hash) => {
      if (location.hash === hash) route();
      else location.hash = hash;
    },
  };
  drawChrome();
  route();
}

function drawChrome() {
  const sections = visibleSections(ctx.capabilities);
  replace(
    nav,
    sections.map((s) =>
      h('div.nav-section', h('h2.nav-title', s.title), h('ul', s.pages.map((p) => h('li', h('a', { href: `#/${p.name}`, dataset: { page: p.name } }, p.title))))),
    ),
  );
  nav.hidden = false;
  toggle.hidden = false;
  replace(
    who,
    h('span.who-name', { title: `groups: ${ctx.me.groups.join(', ') || 'none'}` }, ctx.me.user),
    h('button.button.button-quiet', { type: 'button', id: 'sign-out', onclick: () => signOut() }, 'Sign out'),
  );
}

async function route() {
  // #/page or #/page/detail (a job's id), either with ?query (the auditor's search, a lineage's job):
  // the page, and what it is to show. The query is the page's own (admin-ui.js hashQuery).
  const [path = ''] = location.hash.replace(/^#\/?/, '').split('?');
  const [name = '', ...rest] = path.split('/');
  ctx.params = rest.map((p) => decodeURIComponent(p));
  stopPage?.();
  stopPage = null;
  const mine = ++renderCount;
  closeNav();
  for (const a of nav.querySelectorAll('a')) {
    if (a.dataset.page === name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const page = name === '' ? undefined : findPage(name);
  const allowed = page && ctx.capabilities.pages.includes(page.name);
  replace(main);
  try {
    if (name === '') {
      document.title = 'Gatehouse';
      renderHome(main, ctx, visibleSections(ctx.capabilities));
      return;
    }
    if (!allowed) {
      document.title = 'Not available · Gatehouse';
      replace(main, pageHeader('Not available'), notice('warn', 'This page is not open to you: your policy does not grant what it needs. ', h('a', { href: '#/' }, 'Back to the start')));
      return;
    }
    document.title = `${page.title} · Gatehouse`;
    const module = await page.load();
    if (mine !== renderCount) return; // the person moved on meanwhile
    const stop = await module.render(main, ctx);
    if (mine !== renderCount) stop?.();
    else stopPage = typeof stop === 'function' ? stop : null;
  } catch (err) {
    if (mine === renderCount) replace(main, pageHeader('Something went wrong'), notice('error', err.message ?? String(err)));
  }
  if (mine === renderCount) main.focus({ preventScroll: true });
}

function showSignIn() {
  stopPage?.();
  stopPage = null;
  ctx = null;
  nav.hidden = true;
  toggle.hidden = true;
  replace(who);
  replace(nav);
  document.title = 'Sign in · Gatehouse';
  renderSignIn(main, { signedIn: () => start() });
}

function fatal(err) {
  replace(main, pageHeader('The gateway did not answer'), notice('error', err.message ?? String(err)), h('p', h('button.button', { type: 'button', onclick: () => start() }, 'Try again')));
}

function closeNav() {
  document.body.classList.remove('nav-open');
  toggle.setAttribute('aria-expanded', 'false');
}

toggle.addEventListener('click', () => {
  const open = document.body.classList.toggle('nav-open');
  toggle.setAttribute('aria-expanded', String(open));
});
window.addEventListener('hashchange', () => ctx && route());
// A call answered 401 (the login ended, here or elsewhere): back to the sign-in page.
window.addEventListener('gatehouse:signed-out', () => ctx && showSignIn());
start();
