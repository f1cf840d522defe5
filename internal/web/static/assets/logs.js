// An action's log: followed live while the action runs, ANSI colours shown, searchable,
// every line linkable (#L12). Secrets come masked from the server: the page never sees them.
import {coalesce, events, get} from './api.js';
import {badge, enc, h, paths, replace, short} from './dom.js';

export async function logPage(view, ctx) {
  const [id, stage, action] = ctx.params;
  const attempt = ctx.query.get('attempt');
  const base = '/api/v1/executions/' + enc(id) + '/stages/' + enc(stage) + '/actions/' + enc(action) + '/log';
  const status = h('span', {id: 'log-status'});
  const state = h('span', {class: 'muted small', id: 'log-state', 'aria-live': 'polite'}, 'Connecting…');
  const search = h('input', {id: 'log-search', type: 'search', placeholder: 'Search the log', autocomplete: 'off'});
  const only = h('input', {id: 'log-only', type: 'checkbox'});
  const follow = h('input', {id: 'log-follow', type: 'checkbox', checked: true});
  const wrap = h('input', {id: 'log-wrap', type: 'checkbox'});
  const hits = h('span', {class: 'muted small', 'aria-live': 'polite', id: 'log-hits'});
  const list = h('ol', {class: 'log', id: 'log', 'aria-label': 'Log of ' + stage + '.' + action, tabindex: '0'});
  const error = h('p', {class: 'error', role: 'alert'});

  view.append(
    h('h1', null, stage, '.', action, status),
    h('p', null, h('a', {href: paths.execution(id)}, '← Execution ', short(id)), ' · ',
      h('a', {href: base + (attempt ? '?attempt=' + enc(attempt) : ''), download: stage + '.' + action + '.log'}, 'Download'), ' · ', state),
    h('form', {class: 'bar', role: 'search', onsubmit: (ev) => { ev.preventDefault(); next(); }},
      h('label', {for: 'log-search', class: 'sr-only'}, 'Search the log'), search, hits,
      h('label', {class: 'inline'}, only, 'Matching lines only'),
      h('label', {class: 'inline'}, follow, 'Follow'),
      h('label', {class: 'inline'}, wrap, 'Wrap lines')),
    error, list);

  // The execution's status for the header, kept live.
  let pipeline = '';
  const readStatus = coalesce(async () => {
    const e = await get('/executions/' + enc(id));
    pipeline = e.pipeline;
    const a = e.stages.find((s) => s.name === stage)?.actions.find((x) => x.name === action);
    replace(status, badge(a ? a.status : ''), a && a.attempt > 1 ? h('span', {class: 'muted small'}, ' attempt ', attempt || a.attempt) : null);
  });
  await readStatus();
  const closeEvents = events(pipeline, (e) => { if (e.id === id) readStatus(); });

  // Lines: the text so far is cut into lines; the last one may still grow.
  const sgr = {fg: '', bg: '', b: false, i: false, u: false, d: false};
  let partial = '';
  let n = 0;
  let current = null; // the <li> of the unfinished last line

  function addText(text) {
    const atEnd = list.scrollTop + list.clientHeight >= list.scrollHeight - 4;
    const parts = (partial + text).split('\n');
    partial = parts.pop();
    for (const line of parts) setLine(line, true);
    if (partial) setLine(partial, false);
    if (follow.checked && atEnd) list.scrollTop = list.scrollHeight;
    if (search.value) mark();
  }

  // setLine writes line as the current line; done finishes it.
  function setLine(line, done) {
    if (!current) {
      n++;
      current = h('li', {id: 'L' + n}, h('a', {class: 'ln', href: '#L' + n, 'aria-label': 'Line ' + n}, n), h('span', {class: 'tx'}));
      list.append(current);
      if (location.hash === '#L' + n) select(current);
    }
    const saved = {...sgr};
    replace(current.lastChild, ansi(line, sgr));
    current.dataset.text = stripAnsi(line);
    if (done) current = null;
    else Object.assign(sgr, saved); // drawn again from its start when it grows
  }

  function select(li) {
    list.querySelectorAll('li.sel').forEach((x) => x.classList.remove('sel'));
    li.classList.add('sel');
    li.scrollIntoView({block: 'center'});
    follow.checked = false;
  }
  list.addEventListener('click', (ev) => {
    const a = ev.target.closest('a.ln');
    if (!a) return;
    ev.preventDefault();
    history.replaceState(null, '', location.pathname + location.search + a.getAttribute('href'));
    select(a.parentElement);
  });

  // Search: matches marked, counted, and stepped through with Enter.
  let found = [];
  let at = -1;
  function mark() {
    const q = search.value.toLowerCase();
    found = [];
    for (const li of list.children) {
      const hit = q !== '' && li.dataset.text.toLowerCase().includes(q);
      li.classList.toggle('hit', hit);
      li.classList.toggle('hide', only.checked && q !== '' && !hit);
      const tx = li.lastChild;
      const old = tx.querySelector('mark');
      if (old) { old.replaceWith(...old.childNodes); tx.normalize(); }
      if (hit) { found.push(li); highlight(tx, q); }
    }
    hits.textContent = q ? found.length + ' matching line' + (found.length === 1 ? '' : 's') : '';
  }
  function next() {
    if (!found.length) return;
    at = (at + 1) % found.length;
    select(found[at]);
    hits.textContent = (at + 1) + ' of ' + found.length + ' matching lines';
  }
  search.addEventListener('input', () => { at = -1; mark(); });
  only.addEventListener('change', mark);
  wrap.addEventListener('change', () => list.classList.toggle('wrap', wrap.checked));

  // The live tail: the server streams the log's chunks, then an end event.
  const src = new EventSource(base + '?follow=true' + (attempt ? '&attempt=' + enc(attempt) : ''));
  src.addEventListener('open', () => { state.textContent = 'Following live'; });
  src.addEventListener('log', (ev) => addText(ev.data));
  src.addEventListener('end', () => {
    src.close();
    if (partial) setLine(partial, true);
    partial = '';
    state.textContent = n ? 'End of the log: ' + n + ' lines' : 'The log is empty';
    readStatus();
  });
  src.addEventListener('error', async () => {
    if (src.readyState !== EventSource.CLOSED) { state.textContent = 'Reconnecting…'; return; }
    try { await get(base.replace('/api/v1', '')); } catch (err) { error.textContent = err.message; }
    state.textContent = 'Not following';
  });
  return () => { src.close(); closeEvents(); };
}

// ANSI SGR sequences (colours, bold...) become classes; every other escape is dropped.
const ESC = /\x1b\[([0-9;]*)([A-Za-z])|\x1b[^[]?/g;

export function stripAnsi(s) { return s.replace(ESC, ''); }

export function ansi(line, sgr) {
  const out = [];
  let last = 0;
  const push = (text) => {
    if (!text) return;
    const cls = [sgr.fg && 'a-' + sgr.fg, sgr.bg && 'b-' + sgr.bg, sgr.b && 'a-b', sgr.i && 'a-i', sgr.u && 'a-u', sgr.d && 'a-d'].filter(Boolean).join(' ');
    out.push(cls ? h('span', {class: cls}, text) : text);
  };
  line = line.replace(/\r$/, '');
  const cr = line.lastIndexOf('\r'); // a progress bar redraws its line: keep what was drawn last
  if (cr >= 0) line = line.slice(cr + 1);
  for (const m of line.matchAll(ESC)) {
    push(line.slice(last, m.index));
    last = m.index + m[0].length;
    if (m[2] !== 'm') continue;
    const codes = (m[1] || '0').split(';').map(Number);
    for (let i = 0; i < codes.length; i++) {
      const c = codes[i];
      if (c === 0) Object.assign(sgr, {fg: '', bg: '', b: false, i: false, u: false, d: false});
      else if (c === 1) sgr.b = true;
      else if (c === 2) sgr.d = true;
      else if (c === 3) sgr.i = true;
      else if (c === 4) sgr.u = true;
      else if (c === 22) sgr.b = sgr.d = false;
      else if (c === 23) sgr.i = false;
      else if (c === 24) sgr.u = false;
      else if ((c >= 30 && c <= 37) || (c >= 90 && c <= 97)) sgr.fg = String(c);
      else if (c === 39) sgr.fg = '';
      else if ((c >= 40 && c <= 47)) sgr.bg = String(c);
      else if (c >= 100 && c <= 107) sgr.bg = String(c - 60);
      else if (c === 49) sgr.bg = '';
      else if (c === 38 || c === 48) i += codes[i + 1] === 5 ? 2 : 4; // 256 and true colours: not drawn
    }
  }
  push(line.slice(last));
  return out;
}

// highlight wraps the first match of q (lower case) in el's text in a <mark>.
function highlight(el, q) {
  const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const i = node.data.toLowerCase().indexOf(q);
    if (i < 0) continue;
    const match = node.splitText(i);
    match.splitText(q.length);
    const m = document.createElement('mark');
    match.replaceWith(m);
    m.append(match);
    return;
  }
}
