// Small helpers to build the DOM, show statuses and format times. No framework: pages build
// their nodes with h() and replace them when data changes.

// h makes an element: h('a', {href: '/x', class: 'y', onclick: fn}, 'text', child, [more]).
// Attributes true are set empty, false/null/undefined are left out; on* functions listen.
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === false || v === null || v === undefined) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

// replace puts children in place of el's.
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// Status icons: 16×16 strokes in currentColor, so colour is never the only sign.
const ICONS = {
  ok: 'M3 8.5l3.2 3.2L13 4.8',
  bad: 'M4 4l8 8M12 4l-8 8',
  run: 'M8 2.5a5.5 5.5 0 1 1-5.5 5.5',
  wait: 'M5.5 3.5v9M10.5 3.5v9',
  stop: 'M4 4h8v8H4z',
  none: 'M8 2.5a5.5 5.5 0 1 0 0 11a5.5 5.5 0 1 0 0-11',
  skip: 'M3 4l5 4-5 4M8 4l5 4-5 4',
  cancel: 'M3.5 8h9',
};

// STATUS maps every execution, stage and action status to its look and word.
const STATUS = {
  Succeeded: ['ok', 'ok'], Failed: ['bad', 'bad'], InProgress: ['run', 'run', 'In progress'],
  Stopping: ['warn', 'run'], Stopped: ['warn', 'stop'], Abandoned: ['warn', 'stop'],
  Waiting: ['wait', 'wait'], Superseded: ['none', 'cancel'], Cancelled: ['none', 'cancel'],
  Skipped: ['none', 'skip'], '': ['none', 'none', 'Not started'],
};

export function statusClass(status) { return 's-' + (STATUS[status || ''] || STATUS[''])[0]; }
export function statusWord(status) { const s = STATUS[status || '']; return (s && s[2]) || status || 'Not started'; }

export function icon(name) {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 16 16');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  const p = document.createElementNS(ns, 'path');
  p.setAttribute('d', ICONS[name] || ICONS.none);
  p.setAttribute('fill', 'none');
  p.setAttribute('stroke', 'currentColor');
  p.setAttribute('stroke-width', '2');
  p.setAttribute('stroke-linecap', 'round');
  p.setAttribute('stroke-linejoin', 'round');
  svg.append(p);
  return svg;
}

// badge shows a status: icon, word and colour.
export function badge(status, extra) {
  const s = STATUS[status || ''] || ['none', 'none'];
  return h('span', {class: 'status s-' + s[0], 'data-status': status || 'NotStarted'}, icon(s[1]), statusWord(status), extra || null);
}

// chip is a small status mark with a label (a stage in the pipeline list).
export function chip(status, label, href) {
  const s = STATUS[status || ''] || ['none', 'none'];
  const props = {class: 'chip s-' + s[0], title: label + ': ' + statusWord(status), 'data-status': status || 'NotStarted'};
  const kids = [icon(s[1]), label, h('span', {class: 'sr-only'}, ': ' + statusWord(status))];
  return href ? h('a', {...props, href}, kids) : h('span', props, kids);
}

// Times.

export function ago(t, now = Date.now()) {
  if (!t) return '';
  const s = Math.round((now - new Date(t).getTime()) / 1000);
  if (s < 5) return 'just now';
  if (s < 60) return s + ' s ago';
  if (s < 3600) return Math.floor(s / 60) + ' min ago';
  if (s < 86400) return Math.floor(s / 3600) + ' h ago';
  return Math.floor(s / 86400) + ' d ago';
}

export function time(t) {
  if (!t) return '';
  const d = new Date(t);
  return h('time', {datetime: d.toISOString(), title: d.toLocaleString()}, ago(t));
}

export function duration(start, end) {
  if (!start) return '';
  const ms = (end ? new Date(end) : new Date()) - new Date(start);
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return s + 's';
  if (s < 3600) return Math.floor(s / 60) + 'm ' + (s % 60) + 's';
  return Math.floor(s / 3600) + 'h ' + Math.floor((s % 3600) / 60) + 'm';
}

export function short(id) { return id ? id.slice(-8) : ''; }

// Paths of the UI's pages.
export const enc = encodeURIComponent;
export const paths = {
  pipeline: (name) => '/pipelines/' + enc(name),
  history: (name) => '/pipelines/' + enc(name) + '/history',
  definition: (name) => '/pipelines/' + enc(name) + '/definition',
  execution: (id) => '/executions/' + enc(id),
  log: (id, stage, action) => '/executions/' + enc(id) + '/logs/' + enc(stage) + '/' + enc(action),
  artifact: (id, name) => '/api/v1/executions/' + enc(id) + '/artifacts/' + enc(name),
};

// kv renders a definition list of [key, value] pairs (values may be nodes).
export function kv(pairs) {
  return h('dl', {class: 'kv'}, pairs.filter((p) => p[1] !== undefined && p[1] !== null && p[1] !== '').map(([k, v]) => [h('dt', null, k), h('dd', null, v)]));
}

// revision renders a source revision: commit, message, author.
export function revision(r) {
  if (!r) return null;
  return h('div', {class: 'rev', 'data-commit': r.commit},
    h('code', {title: r.commit}, r.commit.slice(0, 8)), ' ', r.message ? r.message.split('\n')[0] : '',
    r.author ? h('span', {class: 'muted'}, ' — ', r.author) : null);
}

// revisionOf finds the revision an execution runs on: the first action that published a CommitId.
export function revisionOf(e) {
  for (const s of (e && e.stages) || []) {
    for (const a of s.actions || []) {
      const o = a.outputs || {};
      if (o.CommitId) return {commit: o.CommitId, message: o.CommitMessage || '', author: o.AuthorName || ''};
    }
  }
  return null;
}
