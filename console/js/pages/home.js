// The start page: who you are and the pages your policy opens, one card each.
import { h, pageHeader, replace } from '../dom.js';

const BLURBS = {
  datasets: 'The datasets you may use, their labels, and a preview of their rows.',
  jobs: 'Your jobs, their progress and their logs as they run.',
  submit: 'Run a Python or JavaScript file over a dataset, with a dry run first.',
  quota: 'What you may use at once and per day, and what you use now.',
  certificate: 'A short-lived client certificate, made in this browser.',
};

export function renderHome(main, ctx, sections) {
  replace(
    main,
    pageHeader(`Hello, ${ctx.me.user}`, `Signed in ${ctx.me.auth_method === 'ldap' ? 'with your directory account' : 'through single sign-on'}; groups: ${ctx.me.groups.join(', ') || 'none'}.`),
    sections.map((s) =>
      h('section.home-section', h('h2', s.title), h('ul.cards', s.pages.map((p) => h('li.card', h('a.card-link', { href: `#/${p.name}` }, h('h3', p.title), BLURBS[p.name] ? h('p', BLURBS[p.name]) : null))))),
    ),
  );
}
