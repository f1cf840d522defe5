// The audit log, for global admins: who did what, when, from where, with what outcome.
import {get} from './api.js';
import {h, replace} from './dom.js';

export async function auditPage(view, ctx) {
  view.append(h('h1', null, 'Audit log'));
  if (!ctx.me.admin) {
    view.append(h('p', {class: 'error', role: 'alert'}, 'The audit log is for admins (the admin role granted globally).'));
    return;
  }
  const actor = h('input', {id: 'a-actor', name: 'actor', value: ctx.query.get('actor') || ''});
  const pipeline = h('input', {id: 'a-pipeline', name: 'pipeline', value: ctx.query.get('pipeline') || ''});
  const rows = h('tbody');
  const more = h('button', {type: 'button', hidden: true}, 'Older entries');
  const verdict = h('p', {'aria-live': 'polite'});
  const error = h('p', {class: 'error', role: 'alert'});
  let before = '';

  async function page(reset) {
    const q = new URLSearchParams({limit: '50'});
    if (actor.value) q.set('actor', actor.value);
    if (pipeline.value) q.set('pipeline', pipeline.value);
    if (!reset && before) q.set('before', before);
    try {
      const ans = await get('/audit?' + q);
      if (reset) rows.replaceChildren();
      for (const e of ans.entries) rows.append(row(e));
      before = ans.nextBefore ? String(ans.nextBefore) : '';
      more.hidden = !before;
      error.textContent = '';
    } catch (err) {
      error.textContent = err.message;
    }
  }
  async function verify() {
    try {
      const v = await get('/audit/verify');
      replace(verdict, v.ok ? `The chain is intact: ${v.entries} entries verified.` : `The chain is broken at entry ${v.broken.seq}: ${v.broken.problem} (${v.broken.detail}).`);
      verdict.className = v.ok ? '' : 'error';
    } catch (err) {
      replace(verdict, err.message);
      verdict.className = 'error';
    }
  }
  more.addEventListener('click', () => page(false));
  view.append(
    h('form', {class: 'bar', role: 'search', 'aria-label': 'Filter the audit log', onsubmit: (ev) => { ev.preventDefault(); page(true); }},
      h('label', {for: 'a-actor', class: 'inline'}, 'Actor'), actor,
      h('label', {for: 'a-pipeline', class: 'inline'}, 'Pipeline'), pipeline,
      h('button', {type: 'submit'}, 'Filter'),
      h('span', {class: 'grow'}),
      h('button', {type: 'button', onclick: verify}, 'Verify the chain')),
    verdict, error,
    h('div', {class: 'table-wrap'}, h('table', {id: 'audit'},
      h('thead', null, h('tr', null, ['#', 'Time', 'Actor', 'Action', 'Target', 'Outcome', 'Details'].map((t) => h('th', {scope: 'col'}, t)))),
      rows)),
    more);
  await page(true);
}

function row(e) {
  const details = e.details && Object.keys(e.details).length ? JSON.stringify(e.details, null, 1) : '';
  return h('tr', {'data-action': e.action},
    h('td', null, e.seq),
    h('td', null, h('time', {datetime: e.time}, new Date(e.time).toLocaleString())),
    h('td', null, e.actor, e.source ? h('div', {class: 'muted small'}, e.source) : null),
    h('td', null, h('code', null, e.action)),
    h('td', null, e.target),
    h('td', {class: e.outcome === 'ok' ? '' : 'error'}, e.outcome),
    h('td', null, details ? h('details', null, h('summary', null, 'details'), h('pre', null, details)) : null));
}
