// The start page: who you are and the pages your policy opens, one card each.
import { h, pageHeader, replace } from '../dom.js';

const BLURBS = {
  datasets: 'The datasets you may use, their labels, and a preview of their rows.',
  jobs: 'Your jobs, their progress and their logs as they run.',
  submit: 'Run a Python or JavaScript file over a dataset, with a dry run first.',
  quota: 'What you may use at once and per day, and what you use now.',
  certificate: 'A short-lived client certificate, made in this browser.',
  audit: 'Search every decision, open an event in its chain, export what you found.',
  lineage: 'A job’s inputs, output and the rules that allowed them, as they were.',
  policy: 'The serving version, its latest reload and what that reload changed.',
  can_i: 'Ask what the policy decides for a user or a group, and why.',
  usage: 'Engine slots, the pending queue and everyone’s usage against their limits.',
  certificates: 'Client certificates issued to people; revoke one.',
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
