// "Can I?": a user or a group, an action and an object → the decision, the deciding rule and the
// chain of roles that led to it (POST /v1/policy/explain, decided and recorded by the gateway).
import { api } from '../api.js';
import { badge, field, h, notice, pageHeader, replace } from '../dom.js';

/** A group is asked about as a member of it with no other groups (the policy decides on groups, not on who). */
const GROUP_MEMBER = 'someone';

export function canIBox() {
  const kind = h('select', { name: 'who-kind' }, h('option', { value: 'user' }, 'User'), h('option', { value: 'group' }, 'Group'));
  const who = h('input', { name: 'who', required: true, autocomplete: 'off', spellcheck: false, placeholder: 'alice' });
  const action = h('select', { name: 'action' }, ['read', 'write', 'admin'].map((a) => h('option', { value: a }, a)));
  const object = h('input', { name: 'object', required: true, autocomplete: 'off', spellcheck: false, placeholder: 'dataset:customers' });
  const out = h('div.can-i-answer', { 'aria-live': 'polite' });

  async function ask(ev) {
    ev.preventDefault();
    const group = kind.value === 'group';
    const body = group ? { user: GROUP_MEMBER, groups: [who.value.trim()], action: action.value, object: object.value.trim() } : { user: who.value.trim(), action: action.value, object: object.value.trim() };
    replace(out, h('p.muted', 'Asking the serving policy…'));
    let x;
    try {
      x = await api('/v1/policy/explain', { method: 'POST', body });
    } catch (err) {
      replace(out, notice('error', err.message, err.body?.field ? ` (${err.body.field})` : ''));
      return;
    }
    const subject = group ? `a member of group ${who.value.trim()}` : `user ${x.user}`;
    // A group is asked about through a stand-in member: its words name the group, not the stand-in.
    const words = (text) => (group ? text.replaceAll(`user:${GROUP_MEMBER}`, `group:${who.value.trim()}`) : text);
    const groups = group ? '' : x.groups_source === 'last-login' ? ` with the groups of their latest login: ${x.groups.join(', ') || 'none'}` : x.groups_source === 'none' ? ' (never seen logging in: no groups)' : '';
    replace(
      out,
      h(
        `div.notice.notice-${x.decision.allowed ? 'ok' : 'error'}#can-i-result`,
        { role: 'status' },
        h('strong', x.decision.allowed ? 'Allowed' : 'Denied'),
        ` — ${subject}${groups} ${x.decision.allowed ? 'may' : 'may not'} ${x.action} ${x.object}.`,
        x.deciding ? h('span.rule', `${x.deciding.line}: ${x.deciding.rule}`) : h('p', words(x.decision.reason)),
        x.deciding ? h('p.chain', h('span.muted', 'Role chain: '), x.deciding.subject_chain.map((s, i) => [i ? ' → ' : '', h('code', words(s))]), h('span.muted', ' · object: '), x.deciding.object_chain.map((s, i) => [i ? ' → ' : '', h('code', s)])) : null,
      ),
      x.matched.length > 1 ? h('details', h('summary', `${x.matched.length} rules matched`), h('ul.plain', x.matched.map((m) => h('li', badge(m.effect === 'none' ? 'no effect' : m.effect, m.effect), ' ', h('code', m.line), ` ${m.rule}`)))) : null,
      x.deciding ? h('p.muted.small', words(x.summary)) : null,
    );
  }

  return h(
    'section.panel#can-i',
    { 'aria-labelledby': 'can-i-title' },
    h('h2#can-i-title', 'Can I?'),
    h('form', { onsubmit: ask }, h('div.form-grid', field('Who', kind), field('Name', who, 'a user name, or a directory group'), field('Action', action), field('Object', object, 'dataset:…, policy:files, audit:events, job:…, cert:…')), h('div.form-actions', h('button.button.button-primary', { type: 'submit', id: 'can-i-ask' }, 'Ask'))),
    out,
  );
}

export function render(main) {
  replace(main, pageHeader('Can I?', 'Ask the serving policy what it decides for a user or a group, and why.'), canIBox());
}
