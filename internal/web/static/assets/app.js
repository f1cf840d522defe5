// Conveyor's UI: boot, session, navigation and the client-side router. Every page is
// index.html; the path says which view to draw (history.pushState keeps links real: they
// open in a new tab, reload and go back as a user expects).
import {call, get, setCSRF, whenSignedOut} from './api.js';
import {h, replace} from './dom.js';
import {signinPage} from './signin.js';
import {pipelinesPage} from './pipelines.js';
import {pipelinePage} from './pipeline.js';
import {historyPage, executionPage} from './executions.js';
import {logPage} from './logs.js';
import {definitionPage} from './definition.js';
import {auditPage} from './audit.js';

// ROLES mirrors the server's role inclusion: admin ⊇ operator, approver ⊇ viewer.
function includes(role, need) {
  if (role === 'admin') return true;
  if (role === 'operator' || role === 'approver') return need === role || need === 'viewer';
  return role === 'viewer' && need === 'viewer';
}

// me is who is signed in, and what they may do: the page shows a button only to those the
// server would let through (it checks anyway).
const me = {
  user: '',
  grants: [],
  can(need, pipeline) {
    return this.grants.some((g) => (!g.pipeline || g.pipeline === pipeline) && includes(g.role, need));
  },
  get admin() { return this.can('admin', ''); },
};

const routes = [
  [/^\/signin$/, signinPage, {public: true}],
  [/^\/$/, pipelinesPage],
  [/^\/pipelines\/([^/]+)$/, pipelinePage],
  [/^\/pipelines\/([^/]+)\/history$/, historyPage],
  [/^\/pipelines\/([^/]+)\/definition$/, definitionPage],
  [/^\/executions\/([^/]+)$/, executionPage],
  [/^\/executions\/([^/]+)\/logs\/([^/]+)\/([^/]+)$/, logPage],
  [/^\/audit$/, auditPage],
];

const main = document.getElementById('main');
const nav = document.getElementById('nav');
let cleanup = null;

// announce tells screen-reader users what changed (status changes, results of actions).
export function announce(text) {
  const live = document.getElementById('announce');
  live.append(h('p', null, text));
  while (live.childElementCount > 5) live.firstElementChild.remove();
}

export function navigate(path, {replace: rep = false} = {}) {
  if (rep) history.replaceState(null, '', path);
  else history.pushState(null, '', path);
  route();
}

async function loadMe() {
  const [who, session] = await Promise.all([get('/whoami'), get('/auth/session').catch(() => null)]);
  me.user = who.user;
  me.grants = who.grants || [];
  setCSRF(session && session.csrfToken);
}

function drawNav(path) {
  const link = (href, text, current) => h('a', {href, 'aria-current': current ? 'page' : null}, text);
  if (!me.user) return replace(nav);
  replace(nav,
    link('/', 'Pipelines', path === '/' || path.startsWith('/pipelines/')),
    me.admin ? link('/audit', 'Audit log', path === '/audit') : null,
    h('span', {class: 'spacer'}),
    h('span', {class: 'muted', 'data-user': me.user}, me.user),
    h('button', {type: 'button', class: 'small', id: 'signout', onclick: signOut}, 'Sign out'));
}

async function signOut() {
  try { await call('DELETE', '/auth/session'); } catch (err) { /* signed out anyway */ }
  me.user = '';
  me.grants = [];
  setCSRF('');
  navigate('/signin');
}

async function route() {
  if (cleanup) { cleanup(); cleanup = null; }
  const path = location.pathname;
  const match = routes.map(([re, page, opt]) => [path.match(re), page, opt || {}]).find(([m]) => m);
  if (!match) {
    replace(main, h('h1', {tabindex: '-1'}, 'Not found'), h('p', null, 'No page at ', h('code', null, path), '. ', h('a', {href: '/'}, 'Pipelines')));
    return;
  }
  const [m, page, opt] = match;
  if (!opt.public && !me.user) {
    try {
      await loadMe();
    } catch (err) {
      if (err.status === 401) {
        navigate('/signin?next=' + encodeURIComponent(path + location.search + location.hash), {replace: true});
        return;
      }
      replace(main, h('p', {class: 'error', role: 'alert'}, err.message));
      return;
    }
  }
  drawNav(path);
  const params = m.slice(1).map(decodeURIComponent);
  const view = h('div', {class: 'view'});
  replace(main, view);
  const ctx = {me, params, navigate, announce, query: new URLSearchParams(location.search), signedIn: loadMe};
  try {
    cleanup = (await page(view, ctx)) || null;
  } catch (err) {
    replace(view, h('h1', {tabindex: '-1'}, 'Something went wrong'), h('p', {class: 'error', role: 'alert'}, err.message));
  }
  const h1 = main.querySelector('h1');
  if (h1 && document.activeElement === document.body) { h1.tabIndex = -1; h1.focus({preventScroll: true}); }
  if (location.hash) document.getElementById(location.hash.slice(1))?.scrollIntoView({block: 'center'});
}

// Links inside the page are followed by the router, not by a page load.
document.addEventListener('click', (ev) => {
  const a = ev.target.closest('a[href]');
  if (!a || ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || a.hasAttribute('download') || a.target || url.pathname.startsWith('/api/')) return;
  if (url.pathname === location.pathname && url.search === location.search && url.hash) return; // an anchor on this page
  ev.preventDefault();
  navigate(url.pathname + url.search + url.hash);
});
window.addEventListener('popstate', route);
whenSignedOut(() => {
  if (location.pathname !== '/signin') {
    me.user = '';
    navigate('/signin?next=' + encodeURIComponent(location.pathname + location.search), {replace: true});
  }
});
route();
