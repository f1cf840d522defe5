// A pipeline's definition: any version, the list of versions, and the diff between two.
import {get} from './api.js';
import {enc, h, paths, replace, time} from './dom.js';

export async function definitionPage(view, ctx) {
  const [name] = ctx.params;
  const api = '/pipelines/' + enc(name);
  const [{versions}, latest] = await Promise.all([get(api + '/versions'), get(api)]);
  const options = (selected) => versions.map((v) => h('option', {value: v.version, selected: v.version === selected}, 'version ' + v.version));
  const shown = Number(ctx.query.get('version')) || latest.version;
  const from = h('select', {id: 'diff-from'}, options(Number(ctx.query.get('from')) || Math.max(1, latest.version - 1)));
  const to = h('select', {id: 'diff-to'}, options(Number(ctx.query.get('to')) || latest.version));
  const diff = h('div', {id: 'diff', 'aria-live': 'polite'});
  const doc = h('pre', {id: 'definition'});
  const which = h('select', {id: 'def-version'}, options(shown));

  async function show() {
    const v = await get(api + '?version=' + which.value);
    replace(doc, JSON.stringify(v.pipeline, null, 2));
  }
  async function compare() {
    const d = await get(api + '/diff?from=' + from.value + '&to=' + to.value);
    if (!d.diff) return replace(diff, h('p', {class: 'muted'}, 'Versions ', d.from, ' and ', d.to, ' are the same.'));
    replace(diff, h('pre', {class: 'diff'}, d.diff.split('\n').filter((l, i, all) => l || i < all.length - 1).map((l) =>
      h('div', {class: l.startsWith('@@') ? 'hunk' : l.startsWith('+') ? 'add' : l.startsWith('-') ? 'del' : ''}, l || ' '))),
    d.truncated ? h('p', {class: 'muted'}, 'The diff is cut: it is too long to show whole.') : null);
  }
  which.addEventListener('change', show);

  view.append(
    h('h1', null, name, ': definition'),
    h('p', null, h('a', {href: paths.pipeline(name)}, '← Pipeline')),
    h('h2', null, 'Versions'),
    h('div', {class: 'table-wrap'}, h('table', {id: 'versions'},
      h('thead', null, h('tr', null, h('th', {scope: 'col'}, 'Version'), h('th', {scope: 'col'}, 'Created'))),
      h('tbody', null, versions.map((v) => h('tr', null, h('td', null, 'version ', v.version, v.version === latest.version ? h('span', {class: 'muted'}, ' (latest)') : null),
        h('td', null, time(v.createdAt), ' ', h('span', {class: 'muted small'}, new Date(v.createdAt).toLocaleString()))))))),
    h('h2', null, 'Compare versions'),
    h('form', {class: 'bar', onsubmit: (ev) => { ev.preventDefault(); compare(); }},
      h('label', {for: 'diff-from', class: 'inline'}, 'From'), from,
      h('label', {for: 'diff-to', class: 'inline'}, 'to'), to,
      h('button', {type: 'submit', id: 'compare'}, 'Show the diff')),
    diff,
    h('h2', null, 'Definition'),
    h('div', {class: 'bar'}, h('label', {for: 'def-version', class: 'inline'}, 'Version'), which),
    doc);
  await Promise.all([show(), versions.length > 1 ? compare() : null]);
}
