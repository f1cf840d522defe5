// The pipeline view, drawn as CodePipeline's console draws it: stages left to right joined by
// transitions (disable/enable with a reason on the arrow), each stage with the latest
// execution in it, its source revision, and its actions as cards grouped by runOrder.
// Live: every committed execution state of the pipeline reaches the page through the event
// stream and the view is read again, so nothing needs a refresh.
import {coalesce, events, get, post, put} from './api.js';
import {badge, duration, enc, h, paths, replace, revision, revisionOf, short, statusClass, time} from './dom.js';
import {confirm, field, radios} from './dialog.js';

const TERMINAL = ['Succeeded', 'Failed', 'Stopped', 'Superseded', 'Cancelled'];

export async function pipelinePage(view, ctx) {
  const [name] = ctx.params;
  const api = '/pipelines/' + enc(name);
  const me = ctx.me;
  let def = null; // GET /pipelines/{name}: the latest version's declaration
  let state = null; // GET /pipelines/{name}/state
  const execs = new Map(); // execution ID → the execution, as last read or streamed
  let statuses = null; // "Stage.Action" → status, to announce changes

  const head = h('div');
  const board = h('ol', {class: 'pipeline', id: 'pipeline', 'aria-label': 'Stages of ' + name});
  const error = h('p', {class: 'error', role: 'alert'});
  view.append(head, error, board);

  let stale = true; // whether executions still running may have changed unseen (the stream was down)
  async function load() {
    const s = await get(api + '/state');
    if (!def || def.version !== s.version) def = await get(api);
    const want = new Set();
    for (const st of s.stages) {
      if (st.latestExecution) want.add(st.latestExecution.id);
      for (const id of st.inboundExecutions) want.add(id);
    }
    // The stream brings every change of the executions seen: read only new ones, and, after
    // the stream was down, those still running.
    const read = [...want].filter((id) => !execs.has(id) || (stale && !TERMINAL.includes(execs.get(id).status)));
    stale = false;
    await Promise.all(read.map(async (id) => execs.set(id, await get('/executions/' + enc(id)))));
    state = s;
    draw();
  }
  const refresh = coalesce(async () => {
    try { await load(); error.textContent = ''; } catch (err) { error.textContent = err.message; }
  });

  // act runs a change, then reads the view again (the event stream would too, but a
  // transition toggle changes no execution).
  const after = (msg) => (result) => { if (result) { ctx.announce(msg); refresh(); } return result; };

  function startDialog() {
    const vars = def.pipeline.variables || [];
    return confirm({
      title: 'Release change: start ' + name,
      submit: 'Start',
      body: [h('p', null, 'Starts a new execution of version ', def.version, ' with the latest source revisions.'),
        vars.length ? h('fieldset', null, h('legend', null, 'Variables'),
          vars.map((v) => [field('var-' + v.name, v.name + (v.description ? ' — ' + v.description : ''), 'text', v.default || '')])) : null],
      act: async (form) => {
        const variables = {};
        for (const v of vars) {
          const value = form.elements['var-' + v.name].value;
          if (value !== (v.default || '')) variables[v.name] = value;
        }
        const e = await post(api + '/executions', {variables});
        execs.set(e.id, e);
        return e;
      },
    }).then((e) => after(e && 'Started execution ' + short(e.id))(e));
  }

  function stopDialog(e) {
    return confirm({
      title: 'Stop execution ' + short(e.id), submit: 'Stop', danger: true,
      body: [radios('mode', 'In-progress actions', [['wait', 'Stop and wait: let them finish'], ['abandon', 'Stop and abandon: kill them']]),
        ...field('reason', 'Reason (optional)', 'text')],
      act: (form) => post('/executions/' + enc(e.id) + '/stop', {abandon: form.elements.mode.value === 'abandon', reason: form.elements.reason.value}),
    }).then(after('Stopping execution ' + short(e.id)));
  }

  function retryDialog(e, stage) {
    return confirm({
      title: 'Retry stage ' + stage, submit: 'Retry',
      body: [h('p', null, 'Runs stage ', stage, ' of execution ', short(e.id), ' again.'),
        radios('mode', 'Actions to run', [['FAILED_ACTIONS', 'Failed actions only'], ['ALL_ACTIONS', 'All actions of the stage']])],
      act: (form) => post('/executions/' + enc(e.id) + '/stages/' + enc(stage) + '/retry', {mode: form.elements.mode.value}),
    }).then(after('Retrying stage ' + stage));
  }

  async function rollbackDialog(stage, current) {
    const {executions} = await get(api + '/executions?limit=20&succeededInStage=' + enc(stage));
    const targets = executions.filter((e) => e.id !== current);
    return confirm({
      title: 'Roll back stage ' + stage, submit: 'Roll back', danger: true,
      body: targets.length
        ? [h('p', null, 'Runs stage ', stage, ' again with the artifacts and variables of an earlier execution that succeeded in it.'),
          ...field('target', 'Execution to roll back to', targets.map((e) => [e.id, short(e.id) + ' — ' + new Date(e.createdAt).toLocaleString() + (revisionOf(e) ? ' — ' + revisionOf(e).commit.slice(0, 8) : '')]), targets[0].id)]
        : [h('p', null, 'No earlier execution succeeded in stage ', stage, ': there is nothing to roll back to.')],
      act: (form) => {
        if (!targets.length) throw new Error('nothing to roll back to');
        return post(api + '/stages/' + enc(stage) + '/rollback', {targetExecutionId: form.elements.target.value});
      },
    }).then(after('Rolling back stage ' + stage));
  }

  function transitionDialog(stage, enabled) {
    return confirm({
      title: (enabled ? 'Disable' : 'Enable') + ' the transition into ' + stage,
      submit: enabled ? 'Disable' : 'Enable', danger: enabled,
      body: enabled
        ? [h('p', null, 'Executions will wait before ', stage, ' until the transition is enabled again.'), ...field('reason', 'Reason', 'text')]
        : [h('p', null, 'The execution waiting before ', stage, ', if any, enters it.')],
      act: (form) => put(api + '/stages/' + enc(stage) + '/transition', enabled ? {enabled: false, reason: form.elements.reason.value} : {enabled: true}),
    }).then(after('Transition into ' + stage + (enabled ? ' disabled' : ' enabled')));
  }

  function approvalDialog(e, stage, action, token) {
    return confirm({
      title: 'Review ' + stage + '.' + action, submit: 'Approve',
      body: [h('p', null, 'Execution ', short(e.id), revisionOf(e) ? [' at ', h('code', null, revisionOf(e).commit.slice(0, 8))] : null, '.'),
        radios('decision', 'Decision', [['approve', 'Approve'], ['reject', 'Reject']]),
        ...field('comment', 'Comment', 'textarea')],
      act: (form) => post('/executions/' + enc(e.id) + '/stages/' + enc(stage) + '/actions/' + enc(action) + '/approval',
        {approved: form.elements.decision.value === 'approve', comment: form.elements.comment.value, token}),
    }).then(after(stage + '.' + action + ' decided'));
  }

  function drawHead() {
    const newest = [...execs.values()].sort((a, b) => (b.seq || 0) - (a.seq || 0))[0];
    replace(head,
      h('h1', null, name, h('span', {class: 'muted small'}, 'version ', def.version), newest ? badge(newest.status) : null),
      h('div', {class: 'bar'},
        h('a', {href: paths.history(name)}, 'Execution history'),
        h('a', {href: paths.definition(name)}, 'Definition and versions'),
        h('span', {class: 'grow'}),
        me.can('operator', name) ? h('button', {type: 'button', class: 'primary', 'data-k': 'start', id: 'start', onclick: startDialog}, 'Release change') : null));
  }

  function drawTransition(st) {
    const t = st.transition;
    return h('li', {class: 'transition' + (t.enabled ? '' : ' disabled'), 'data-transition': st.name, 'aria-label': 'Transition into ' + st.name + (t.enabled ? ', enabled' : ', disabled')},
      h('div', {class: 'arrow', 'aria-hidden': 'true'}),
      t.enabled ? null : h('div', {class: 'reason'}, h('strong', null, 'Disabled'), t.reason ? [': ', t.reason] : null, t.by ? h('div', {class: 'muted'}, 'by ', t.by) : null),
      me.can('operator', name) ? h('button', {type: 'button', class: 'small', 'data-k': 'tr-' + st.name,
        'aria-label': (t.enabled ? 'Disable' : 'Enable') + ' the transition into ' + st.name,
        onclick: () => transitionDialog(st.name, t.enabled)}, t.enabled ? 'Disable' : 'Enable') : null);
  }

  function drawAction(st, pa, sa, e) {
    const status = sa ? sa.status : '';
    const key = st.name + '.' + pa.name;
    const logs = e && sa && sa.attempt > 0 && pa.category !== 'Approval';
    const tests = sa && sa.tests;
    return h('li', {class: 'action ' + statusClass(status), 'data-action': key, 'data-status': status || 'NotStarted'},
      h('div', {class: 'action-head'},
        h('span', {class: 'action-name'}, logs ? h('a', {href: paths.log(e.id, st.name, pa.name), 'data-k': 'log-' + key}, pa.name) : pa.name),
        badge(status)),
      h('div', {class: 'action-meta'},
        h('span', null, pa.category, '/', pa.provider),
        sa && sa.startedAt ? h('span', null, h('span', {class: 'sr-only'}, 'ran for '), duration(sa.startedAt, sa.finishedAt)) : null,
        sa && sa.attempt > 1 ? h('span', null, 'attempt ', sa.attempt) : null),
      sa && sa.summary && sa.approved === undefined ? h('div', {class: 'action-summary'}, sa.summary) : null,
      tests ? h('div', {class: 'action-summary'}, `tests: ${tests.passed ?? 0} passed, ${tests.failed ?? 0} failed`) : null,
      sa && sa.message && status !== 'Succeeded' ? h('div', {class: 'action-message'}, sa.message) : null,
      sa && sa.waiting ? h('div', {class: 'action-waiting', 'data-waiting-worker': key}, 'Waiting for a worker: ', sa.waiting) : null,
      sa && sa.approved !== undefined ? h('div', {class: 'action-summary'}, sa.approved ? 'Approved' : 'Rejected', ' by ', sa.decidedBy, sa.comment ? ': “' + sa.comment + '”' : '') : null,
      sa && sa.externalUrl ? h('div', {class: 'action-summary'}, h('a', {href: sa.externalUrl, rel: 'noopener noreferrer', target: '_blank'}, 'Details')) : null,
      e && pa.category === 'Approval' && status === 'InProgress' && !TERMINAL.includes(e.status)
        ? h('div', {class: 'action-buttons'}, h('span', {class: 'muted small'}, 'Waiting for approval'),
          me.can('approver', name) ? h('button', {type: 'button', class: 'small primary', 'data-k': 'review-' + key, 'data-review': key,
            onclick: () => approvalDialog(e, st.name, pa.name, sa.token)}, 'Review') : null)
        : null);
  }

  function drawStage(ps, st) {
    const latest = st.latestExecution;
    const e = latest ? execs.get(latest.id) : null;
    const status = latest ? latest.status : '';
    const sas = new Map(st.actions.map((a) => [a.name, a]));
    const groups = new Map();
    for (const pa of ps.actions) {
      const order = pa.runOrder || 1;
      if (!groups.has(order)) groups.set(order, []);
      groups.get(order).push(pa);
    }
    const orders = [...groups.keys()].sort((a, b) => a - b);
    const waiting = st.inboundExecutions.map((id) => execs.get(id)).filter(Boolean);
    const op = me.can('operator', name);
    return h('li', {class: 'stage ' + statusClass(status), 'data-stage': st.name, 'data-status': status || 'NotStarted', 'aria-labelledby': 'stage-' + st.name},
      h('div', {class: 'stage-head'}, h('h3', {id: 'stage-' + st.name}, st.name), badge(status)),
      e ? h('div', {class: 'stage-exec'}, 'Execution ', h('a', {href: paths.execution(e.id), 'data-k': 'exec-' + st.name}, short(e.id)), ' ', time(e.updatedAt)) : h('div', {class: 'stage-exec muted'}, 'No execution yet'),
      e ? revision(revisionOf(e)) : null,
      waiting.map((w) => h('div', {class: 'waiting', 'data-waiting': w.id}, badge('Waiting'), ' Execution ', h('a', {href: paths.execution(w.id)}, short(w.id)),
        st.transition.enabled ? ' waits for the stage to be free' : ' waits: the transition is disabled', revision(revisionOf(w)))),
      e && op ? h('div', {class: 'stage-buttons'},
        (status === 'Failed' || status === 'Stopped') && ['Failed', 'Stopped'].includes(e.status)
          ? h('button', {type: 'button', class: 'small', 'data-k': 'retry-' + st.name, onclick: () => retryDialog(e, st.name)}, 'Retry') : null,
        (status === 'InProgress' || status === 'Stopping') && !TERMINAL.includes(e.status) && e.status !== 'Stopping'
          ? h('button', {type: 'button', class: 'small danger', 'data-k': 'stop-' + st.name, onclick: () => stopDialog(e)}, 'Stop execution') : null,
        h('button', {type: 'button', class: 'small', 'data-k': 'rollback-' + st.name, onclick: () => rollbackDialog(st.name, e.id)}, 'Roll back')) : null,
      orders.map((o) => h('div', {class: 'group'},
        orders.length > 1 ? h('div', {class: 'group-label'}, 'Run order ', o) : null,
        h('ol', {class: 'plain-list', 'aria-label': st.name + (orders.length > 1 ? ', run order ' + o : '') + ' actions'},
          groups.get(o).map((pa) => drawAction(st, pa, sas.get(pa.name), e))))));
  }

  function draw() {
    // Re-drawing must not lose the keyboard's place: focus goes back to the same control.
    const focused = document.activeElement && document.activeElement.closest('[data-k]');
    const k = focused && view.contains(focused) ? focused.getAttribute('data-k') : null;
    drawHead();
    const stages = def.pipeline.stages;
    const byName = new Map(state.stages.map((s) => [s.name, s]));
    const items = [];
    stages.forEach((ps, i) => {
      const st = byName.get(ps.name);
      if (!st) return;
      if (i > 0) items.push(drawTransition(st));
      items.push(drawStage(ps, st));
    });
    replace(board, items);
    if (k) view.querySelector(`[data-k="${CSS.escape(k)}"]`)?.focus();
    const now = new Map();
    for (const st of state.stages) for (const a of st.actions) now.set(st.name + '.' + a.name, a.status);
    if (statuses) for (const [key, s] of now) if (statuses.get(key) !== s) ctx.announce(key + ': ' + (s || 'not started'));
    statuses = now;
  }

  await load();
  const reread = () => { stale = true; refresh(); };
  const close = events(name, (e) => { execs.set(e.id, e); refresh(); }, reread, reread);
  const tick = setInterval(() => { if (state) draw(); }, 15000); // durations and "ago" move on
  // A queued job changes no execution when a worker comes or goes, or once it has waited long
  // enough for the reason to show: while one is queued, the state is read again now and then.
  const queuedTick = setInterval(() => {
    if (state && state.stages.some((st) => st.actions.some((a) => a.queued))) refresh();
  }, 5000);
  return () => { close(); clearInterval(tick); clearInterval(queuedTick); };
}
