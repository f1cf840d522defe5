// The REST API as the pages use it: JSON in and out, the browser session's cookie sent by the
// browser, and the session's CSRF token on every change.

let csrf = '';
let onSignedOut = () => {};

export function setCSRF(token) { csrf = token || ''; }
export function whenSignedOut(fn) { onSignedOut = fn; }

export class APIError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// call sends a request to /api/v1 + path and returns the answer's JSON (text for text, null
// for 204). An error answer throws an APIError with the server's message; a 401 also signs
// the page out (the session expired or was revoked).
export async function call(method, path, body) {
  const headers = {Accept: 'application/json'};
  const opts = {method, headers, credentials: 'same-origin', cache: 'no-store'};
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  if (method !== 'GET' && method !== 'HEAD' && csrf) headers['X-CSRF-Token'] = csrf;
  let r;
  try {
    r = await fetch('/api/v1' + path, opts);
  } catch (err) {
    throw new APIError(0, 'network', 'the server cannot be reached: ' + err.message);
  }
  if (r.status === 204) return null;
  const json = (r.headers.get('Content-Type') || '').includes('json');
  const data = json ? await r.json().catch(() => null) : await r.text();
  if (!r.ok) {
    const e = (data && data.error) || {};
    if (r.status === 401 && !path.startsWith('/auth/')) onSignedOut();
    throw new APIError(r.status, e.code || 'http_' + r.status, e.message || (typeof data === 'string' && data) || r.statusText);
  }
  return data;
}

export const get = (path) => call('GET', path);
export const post = (path, body) => call('POST', path, body ?? {});
export const put = (path, body) => call('PUT', path, body ?? {});
export const del = (path) => call('DELETE', path);

// events follows the live execution states of one pipeline (all when pipeline is empty):
// onExecution gets each execution as it commits; onOpen runs on every (re)connection, when
// states may have been missed and the page should read them again, and onPipeline when a
// pipeline's transitions change. It returns a function that closes the stream.
export function events(pipeline, onExecution, onOpen, onPipeline) {
  const src = new EventSource('/api/v1/events' + (pipeline ? '?pipeline=' + encodeURIComponent(pipeline) : ''));
  src.addEventListener('execution', (ev) => {
    try { onExecution(JSON.parse(ev.data)); } catch (err) { console.error('event', err); }
  });
  if (onOpen) src.addEventListener('open', onOpen);
  if (onPipeline) src.addEventListener('pipeline', (ev) => {
    try { onPipeline(JSON.parse(ev.data).pipeline); } catch (err) { console.error('event', err); }
  });
  return () => src.close();
}

// coalesce returns a function that runs fn now, or, when fn is running, once more after it:
// a burst of events costs at most two reads.
export function coalesce(fn) {
  let running = false, again = false;
  return async function run() {
    if (running) { again = true; return; }
    running = true;
    try { await fn(); } catch (err) { console.error(err); }
    running = false;
    if (again) { again = false; run(); }
  };
}
