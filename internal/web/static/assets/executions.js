// Execution history (with filters) and one execution's detail: every action's resolved
// configuration, variables, and input and output artifacts to download.
import {coalesce, events, get, post} from './api.js';
import {badge, duration, enc, h, kv, paths, replace, revision, revisionOf, short, time} from './dom.js';
import {confirm, field, radios} from './dialog.js';

const STATUSES = ['InProgress', 'Stopping', 'Stopped', 'Succeeded', 'Failed', 'Superseded', 'Cancelled'];
const TERMINAL = ['Succeeded', 'Failed', 'Stopped', 'Superseded', 'Cancelled'];

export async function historyPage(view, ctx) {
  const [name] = ctx.params;
  const def = await get('/pipelines/' + enc(name));
  const status = h('select', {id: 'f-status', name: 'status'}, h('option', {value: ''}, 'Any status'),
    STATUSES.map((s) => h('option', {value: s, selected: ctx.query.get('status') === s}, s)));
  const stage = h('select', {id: 'f-stage', name: 'succeededInStage'}, h('option', {value: ''}, 'Any'),
    def.pipeline.stages.map((s) => h('option', {value: s.name, selected: ctx.query.get('succeededInStage') === s.name}, s.name)));
  const rows = h('tbody');
  const more = h('button', {type: 'button', hidden: true}, 'Older executions');
  const count = h('p', {class: 'muted small', 'aria-live': 'polite'});
  let cursor = '';

  async function page(reset) {
    const q = new URLSearchParams({limit: '25'});
    if (status.value) q.set('status', status.value);
    if (stage.value) q.set('succeededInStage', stage.value);
    if (!reset && cursor) q.set('cursor', cursor);
    const ans = await get('/pipelines/' + enc(name) + '/executions?' + q);
    if (reset) rows.replaceChildren();
    for (const e of ans.executions) rows.append(row(e));
    cursor = ans.nextCursor || '';
    more.hidden = !cursor;
    count.textContent = rows.childElementCount + ' execution' + (rows.childElementCount === 1 ? '' : 's') + ' shown';
  }
  function filter() {
    const q = new URLSearchParams();
    if (status.value) q.set('status', status.value);
    if (stage.value) q.set('succeededInStage', stage.value);
    history.replaceState(null, '', location.pathname + (q.toString() ? '?' + q : ''));
    page(true);
  }
  status.addEventListener('change', filter);
  stage.addEventListener('change', filter);
  more.addEventListener('click', () => page(false));

  view.append(h('h1', null, name, ': execution history'),
    h('p', null, h('a', {href: paths.pipeline(name)}, '← Pipeline')),
    h('form', {class: 'bar', role: 'search', 'aria-label': 'Filter executions', onsubmit: (ev) => ev.preventDefault()},
      h('label', {for: 'f-status', class: 'inline'}, 'Status'), status,
      h('label', {for: 'f-stage', class: 'inline'}, 'Succeeded in stage'), stage),
    h('div', {class: 'table-wrap'}, h('table', {id: 'executions'},
      h('thead', null, h('tr', null, ['Execution', 'Status', 'Source revision', 'Trigger', 'Started', 'Duration'].map((t) => h('th', {scope: 'col'}, t)))),
      rows)),
    count, more);
  await page(true);
}

function row(e) {
  return h('tr', {'data-execution': e.id},
    h('td', null, h('a', {href: paths.execution(e.id)}, h('code', null, short(e.id))), e.type === 'Rollback' ? h('span', {class: 'muted small'}, ' rollback') : null),
    h('td', null, badge(e.status)),
    h('td', null, revision(revisionOf(e))),
    h('td', null, e.trigger.type, e.trigger.user ? ' by ' + e.trigger.user : (e.trigger.detail ? ' — ' + e.trigger.detail : '')),
    h('td', null, time(e.createdAt)),
    h('td', null, duration(e.createdAt, TERMINAL.includes(e.status) ? e.finishedAt || e.updatedAt : null)));
}

export async function executionPage(view, ctx) {
  const [id] = ctx.params;
  const me = ctx.me;
  const body = h('div');
  view.append(body);
  let e = null;

  let opened = new Set(); // the actions whose details are open: a re-draw keeps them open
  const draw = () => {
    if (body.firstChild) opened = new Set([...body.querySelectorAll('details[open]')].map((d) => d.dataset.action));
    const op = me.can('operator', e.pipeline);
    replace(body,
      h('h1', null, 'Execution ', h('code', {title: e.id}, short(e.id)), badge(e.status)),
      h('p', null, h('a', {href: paths.pipeline(e.pipeline)}, '← ', e.pipeline), ' · ', h('a', {href: paths.history(e.pipeline)}, 'history')),
      h('div', {class: 'section'}, kv([
        ['ID', h('code', null, e.id)], ['Pipeline', [e.pipeline, ' version ', e.pipelineVersion]], ['Mode', e.mode], ['Type', e.type],
        ['Trigger', [e.trigger.type, e.trigger.user ? ' by ' + e.trigger.user : '', e.trigger.detail && !e.trigger.user ? ' — ' + e.trigger.detail : '']],
        ['Started', [time(e.createdAt), ' (', new Date(e.createdAt).toLocaleString(), ')']],
        ['Duration', duration(e.createdAt, TERMINAL.includes(e.status) ? e.finishedAt || e.updatedAt : null)],
        ['Source revision', revision(revisionOf(e))],
        ['Message', e.message],
        ['Stop', e.stop ? [e.stop.mode, e.stop.reason ? ': ' + e.stop.reason : ''] : null],
      ]),
      op && !TERMINAL.includes(e.status) && e.status !== 'Stopping'
        ? h('button', {type: 'button', class: 'danger', id: 'stop', onclick: stop}, 'Stop execution') : null),
      e.hold ? h('div', {class: 'section', id: 'hold', role: 'status'},
        h('p', null, e.hold.decision ? '' : '⏸ ', e.hold.reason),
        e.hold.decision ? h('p', null, e.hold.decision.approved ? 'Allowed' : 'Refused', ' by ', e.hold.decision.by, ' ', time(e.hold.decision.at),
          e.hold.decision.comment ? ': “' + e.hold.decision.comment + '”' : '')
          : me.can('approver', e.pipeline) && !TERMINAL.includes(e.status) ? h('p', null,
            h('button', {type: 'button', id: 'allow', onclick: () => allow(true)}, 'Allow it to run'), ' ',
            h('button', {type: 'button', class: 'danger', id: 'refuse', onclick: () => allow(false)}, 'Refuse')) : null) : null,
      h('h2', null, 'Variables'),
      Object.keys(e.variables || {}).length ? h('div', {class: 'section'}, kv(Object.entries(e.variables).map(([k, v]) => [k, h('code', null, v)]))) : h('p', {class: 'muted'}, 'No pipeline variables.'),
      e.outputs && Object.keys(e.outputs).length ? [h('h2', null, 'Output variables'), h('div', {class: 'section'},
        kv(Object.entries(e.outputs).flatMap(([ns, vars]) => Object.entries(vars).map(([k, v]) => [ns + '.' + k, h('code', null, v)]))))] : null,
      h('h2', null, 'Stages'),
      e.stages.map((s) => stageSection(s, op)));
  };

  function stageSection(s, op) {
    return h('section', {class: 'section', 'data-stage': s.name, 'aria-labelledby': 'es-' + s.name},
      h('div', {class: 'stage-head'}, h('h3', {id: 'es-' + s.name}, s.name), badge(s.status),
        s.attempt > 1 ? h('span', {class: 'muted small'}, 'entry ', s.attempt) : null,
        op && (s.status === 'Failed' || s.status === 'Stopped') && ['Failed', 'Stopped'].includes(e.status)
          ? h('button', {type: 'button', class: 'small', onclick: () => retry(s.name)}, 'Retry stage') : null),
      s.actions.map((a) => h('details', {class: 'group', 'data-action': s.name + '.' + a.name, open: opened.has(s.name + '.' + a.name) || (!body.firstChild && a.status === 'Failed')},
        h('summary', null, a.name, ' ', badge(a.status), a.attempt > 1 ? h('span', {class: 'muted small'}, ' attempt ', a.attempt) : null,
          a.startedAt ? h('span', {class: 'muted small'}, ' ', duration(a.startedAt, a.finishedAt)) : null),
        kv([
          ['Logs', a.attempt > 0 && !a.decision && !a.approvals ? h('a', {href: paths.log(e.id, s.name, a.name)}, 'Read the log') : null],
          ['Waiting', a.waiting ? 'for a worker: ' + a.waiting : a.waitingFor ? 'for ' + a.waitingFor : null],
          ['Summary', a.summary], ['Message', a.message], ['Failure', a.failure],
          ['Decision', a.decision ? [a.decision.approved ? 'Approved' : 'Rejected', ' by ', a.decision.by, a.decision.comment ? ': “' + a.decision.comment + '”' : ''] : null],
          ['Input artifacts', artifacts(a.inputArtifacts)],
          ['Output artifacts', artifacts(a.outputArtifacts)],
          ['Output variables', a.outputs && Object.keys(a.outputs).length ? kv(Object.entries(a.outputs).map(([k, v]) => [k, h('code', null, v)])) : null],
          ['Environment', a.environment && Object.keys(a.environment).length ? kv(Object.entries(a.environment).map(([k, v]) => [k, h('code', null, v)])) : null],
          ['Resolved configuration', a.configuration ? h('pre', null, JSON.stringify(a.configuration, null, 2)) : null],
        ]))));
  }

  function artifacts(names) {
    if (!names || !names.length) return null;
    const has = (n) => e.artifacts && e.artifacts[n];
    return h('ul', {class: 'plain-list'}, names.map((n) => h('li', null,
      has(n) ? h('a', {href: paths.artifact(e.id, n), download: n + '.tar.zst'}, 'Download ', n) : h('span', {class: 'muted'}, n, ' (not produced yet)'))));
  }

  function stop() {
    return confirm({
      title: 'Stop execution ' + short(e.id), submit: 'Stop', danger: true,
      body: [radios('mode', 'In-progress actions', [['wait', 'Stop and wait: let them finish'], ['abandon', 'Stop and abandon: kill them']]),
        ...field('reason', 'Reason (optional)', 'text')],
      act: (form) => post('/executions/' + enc(e.id) + '/stop', {abandon: form.elements.mode.value === 'abandon', reason: form.elements.reason.value}),
    }).then((r) => { if (r) { ctx.announce('Stopping'); refresh(); } });
  }

  function allow(ok) {
    return confirm({
      title: (ok ? 'Allow ' : 'Refuse ') + 'execution ' + short(e.id), submit: ok ? 'Allow' : 'Refuse', danger: !ok,
      body: field('comment', 'Comment (optional)', 'text'),
      act: (form) => post('/executions/' + enc(e.id) + '/allow', {allowed: ok, comment: form.elements.comment.value}),
    }).then((r) => { if (r) { ctx.announce(ok ? 'Allowed' : 'Refused'); refresh(); } });
  }

  function retry(stage) {
    return confirm({
      title: 'Retry stage ' + stage, submit: 'Retry',
      body: radios('mode', 'Actions to run', [['FAILED_ACTIONS', 'Failed actions only'], ['ALL_ACTIONS', 'All actions of the stage']]),
      act: (form) => post('/executions/' + enc(e.id) + '/stages/' + enc(stage) + '/retry', {mode: form.elements.mode.value}),
    }).then((r) => { if (r) { ctx.announce('Retrying ' + stage); refresh(); } });
  }

  const refresh = coalesce(async () => {
    const before = e && e.status;
    e = await get('/executions/' + enc(id));
    draw();
    if (before && before !== e.status) ctx.announce('Execution ' + e.status);
  });
  await refresh();
  return events(e.pipeline, (x) => { if (x.id === id) refresh(); }, refresh);
}
