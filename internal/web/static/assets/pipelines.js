// The pipelines list: every pipeline the user may view, each stage's latest execution at a
// glance (icon, word and colour), the latest change and how long ago; live.
import {coalesce, events, get} from './api.js';
import {badge, chip, h, paths, replace, revision, time} from './dom.js';

export async function pipelinesPage(view, ctx) {
  const body = h('div', {'aria-busy': 'true'});
  view.append(h('h1', null, 'Pipelines'), body);
  let last = new Map(); // pipeline → latest execution status, to announce changes

  const refresh = coalesce(async () => {
    const {pipelines} = await get('/overview');
    body.removeAttribute('aria-busy');
    if (!pipelines.length) {
      replace(body, h('p', {class: 'empty'}, 'No pipelines yet. Apply one with ', h('code', null, 'conveyor pipeline apply -f pipeline.yaml'), '.'));
      return;
    }
    const next = new Map();
    for (const p of pipelines) {
      const st = p.latest ? p.latest.status : '';
      next.set(p.name, st);
      if (last.has(p.name) && last.get(p.name) !== st) ctx.announce(`${p.name}: ${st || 'not run'}`);
    }
    last = next;
    replace(body, h('div', {class: 'table-wrap'}, h('table', {id: 'pipelines'},
      h('caption', {class: 'sr-only'}, 'Pipelines, their stages and latest executions'),
      h('thead', null, h('tr', null, h('th', {scope: 'col'}, 'Pipeline'), h('th', {scope: 'col'}, 'Stages (latest execution in each)'),
        h('th', {scope: 'col'}, 'Latest execution'), h('th', {scope: 'col', class: 'hide-narrow'}, 'Source revision'), h('th', {scope: 'col'}, 'Last change'))),
      h('tbody', null, pipelines.map((p) => h('tr', {'data-pipeline': p.name},
        h('td', null, h('a', {href: paths.pipeline(p.name)}, p.name), h('div', {class: 'muted small'}, 'version ', p.version)),
        h('td', null, h('div', {class: 'chips'}, p.stages.map((s) => chip(s.status, s.name, s.execution ? paths.execution(s.execution) : null)))),
        h('td', null, p.latest ? h('a', {href: paths.execution(p.latest.id), class: 'plain'}, badge(p.latest.status)) : h('span', {class: 'muted'}, 'never run')),
        h('td', {class: 'hide-narrow'}, p.latest ? revision(p.latest.revision) : null),
        h('td', null, time(p.latest ? p.latest.updatedAt : p.createdAt),
          h('div', {class: 'muted small'}, p.latest ? `${p.latest.trigger.type}${p.latest.trigger.user ? ' by ' + p.latest.trigger.user : ''}` : 'created'))))))));
  });
  await refresh();
  const close = events('', refresh, refresh);
  const tick = setInterval(() => view.querySelectorAll('time').forEach(updateAgo), 30000);
  return () => { close(); clearInterval(tick); };
}

function updateAgo(t) {
  const when = new Date(t.getAttribute('datetime'));
  t.replaceWith(time(when));
}
