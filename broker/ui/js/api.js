// The only module that talks HTTP. Every call sends HTTP Basic credentials kept in
// sessionStorage (so they last for the tab, not beyond), parses JSON, and turns
// {"error", "reason"} bodies into ApiError.

const STORAGE_KEY = 'broker-ui-credentials';

export class ApiError extends Error {
  constructor(status, error, reason) {
    super(typeof reason === 'string' ? reason : JSON.stringify(reason));
    this.status = status;
    this.error = error;
    this.reason = reason;
  }
}

let credentials = loadCredentials();
let unauthorizedHandler = () => {};

function loadCredentials() {
  try { return JSON.parse(sessionStorage.getItem(STORAGE_KEY)); } catch { return null; }
}

function basic(user, password) {
  // UTF-8 before base64, as RabbitMQ decodes it.
  const bytes = new TextEncoder().encode(user + ':' + password);
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return 'Basic ' + btoa(bin);
}

export function currentUser() {
  return credentials ? credentials.user : null;
}

export function onUnauthorized(fn) {
  unauthorizedHandler = fn;
}

/** Checks user/password with GET /api/whoami; stores them on success. */
export async function login(user, password) {
  const auth = basic(user, password);
  const me = await send('GET', '/api/whoami', undefined, { auth });
  credentials = { user, auth };
  sessionStorage.setItem(STORAGE_KEY, JSON.stringify(credentials));
  return me;
}

export function logout() {
  credentials = null;
  sessionStorage.removeItem(STORAGE_KEY);
}

/** '/api/' + percent-encoded segments: url('queues', '/', 'q') is /api/queues/%2F/q. */
export function url(...segments) {
  return '/api/' + segments.map((s) => encodeURIComponent(s)).join('/');
}

/** Appends a query string, skipping null/undefined values. */
export function withQuery(path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v != null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? path + '?' + s : path;
}

export const get = (path) => request('GET', path);
export const put = (path, body) => request('PUT', path, body);
export const post = (path, body) => request('POST', path, body);
export const del = (path, headers) => request('DELETE', path, undefined, headers);

export async function request(method, path, body, headers) {
  if (!credentials) throw new ApiError(401, 'not_authorized', 'Please log in.');
  try {
    return await send(method, path, body, { auth: credentials.auth, headers });
  } catch (err) {
    if (err.status === 401) await on401();
    throw err;
  }
}

// RabbitMQ answers 401 both for bad credentials and for a user lacking a tag
// ("Not administrator user"). Only the first should end the session. Concurrent 401s
// share one check, and a check never ends a session that started after it.
let checking = null;

async function on401() {
  const mine = credentials;
  if (!mine) return;
  if (!checking || checking.creds !== mine) {
    checking = { creds: mine, done: send('GET', '/api/whoami', undefined, { auth: mine.auth }).then(() => null, (e) => e) };
  }
  const check = checking;
  const e = await check.done;
  if (checking === check) checking = null;
  if (e && e.status === 401 && credentials === mine) {
    logout();
    unauthorizedHandler(`Your session has ended (${e.message}). Please log in again.`);
  }
}

async function send(method, path, body, { auth, headers }) {
  const init = {
    method,
    // 'omit' keeps the browser from showing its own Basic-auth dialog on a 401
    // and from reusing cached credentials: we send the header ourselves.
    credentials: 'omit',
    cache: 'no-store',
    // No Accept header: RabbitMQ answers 406 to "Accept: application/json" on DELETE …/contents.
    headers: { Authorization: auth, ...headers },
  };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, 'network', 'Cannot reach the broker (' + e.message + ')');
  }
  const text = await res.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (!res.ok) {
    const reason = data && data.reason !== undefined ? data.reason : text || res.status + ' ' + res.statusText;
    throw new ApiError(res.status, data && data.error, reason);
  }
  return data;
}
