// Entry point: login, header, hash routing, and the 5 s refresh of the current page.
// Each page module exports mount(root, params, app) returning {refresh} (or null for static pages).

import * as api from './js/api.js';
import { errorText } from './js/dom.js';
import * as overview from './js/overview.js';
import * as queues from './js/queues.js';
import * as exchanges from './js/exchanges.js';
import { mountConnections, mountChannels } from './js/connections.js';
import * as admin from './js/admin.js';
import * as definitions from './js/definitions.js';

const REFRESH_MS = 5000;

const ROUTES = [
  [/^overview$/, 'overview', 'Overview', overview.mount],
  [/^connections$/, 'connections', 'Connections', mountConnections],
  [/^channels$/, 'channels', 'Channels', mountChannels],
  [/^exchanges$/, 'exchanges', 'Exchanges', exchanges.mountList],
  [/^exchanges\/([^/]+)\/([^/]+)$/, 'exchanges', 'Exchange', exchanges.mountDetail],
  [/^queues$/, 'queues', 'Queues', queues.mountList],
  [/^queues\/([^/]+)\/([^/]+)$/, 'queues', 'Queue', queues.mountDetail],
  [/^admin$/, 'admin', 'Admin', admin.mount],
  [/^definitions$/, 'definitions', 'Definitions', definitions.mount],
];

const $ = (id) => document.getElementById(id);

/** Shared with the pages: the latest /api/overview (node name, exchange types). */
const app = {
  node: null,
  setNode(o) {
    app.node = o;
    $('node-name').textContent = o.node || '';
    $('node-name').title = [o.product_name, o.product_version].filter(Boolean).join(' ');
  },
};

let page = null; // {gen, path, view, timer}
let gen = 0;

function showLogin(message) {
  stopPage();
  $('app').hidden = true;
  $('login').hidden = false;
  const err = $('login-error');
  err.textContent = message || '';
  err.hidden = !message;
  $('login-user').focus();
}

async function showApp() {
  $('login').hidden = true;
  $('app').hidden = false;
  $('current-user').textContent = api.currentUser();
  api.get('/api/overview').then(app.setNode, () => {});
  route();
}

function stopPage() {
  if (page) clearTimeout(page.timer);
  page = null;
  gen++;
}

function route() {
  if ($('app').hidden) return;
  const path = location.hash.replace(/^#\/?/, '');
  const found = ROUTES.map(([re, nav, title, mount]) => ({ m: path.match(re), nav, title, mount })).find((r) => r.m);
  if (!found) {
    location.replace('#/overview');
    return;
  }
  let params;
  try {
    params = found.m.slice(1).map(decodeURIComponent);
  } catch {
    location.replace('#/overview');
    return;
  }
  if (page && page.path === path) return; // e.g. the hashchange that follows a redirect
  stopPage();
  for (const a of document.querySelectorAll('nav a')) a.classList.toggle('active', a.dataset.nav === found.nav);
  document.title = `${found.title} · ${params.length ? params[params.length - 1] + ' · ' : ''}Broker management`;
  setViewError(null);
  $('refresh-status').textContent = '';
  const root = $('view');
  root.replaceChildren();
  delete root.dataset.state;
  root.dataset.route = found.nav;
  const view = found.mount(root, params, app);
  page = { gen, path, view, timer: null };
  if (view && view.refresh) tick(gen);
}

async function tick(myGen) {
  if (!page || page.gen !== myGen) return;
  // Skip while hidden, or while a destructive button waits for its second click
  // (a refresh would rebuild it, disarmed).
  if (!document.hidden && !document.querySelector('[data-armed="true"]')) {
    $('refresh-status').textContent = 'Refreshing…';
    try {
      await page.view.refresh();
      if (!page || page.gen !== myGen) return;
      setViewError(null);
      $('refresh-status').textContent = 'Updated ' + new Date().toLocaleTimeString();
    } catch (err) {
      if (!page || page.gen !== myGen) return;
      setViewError(err);
      $('refresh-status').textContent = '';
    }
  }
  if (page && page.gen === myGen) page.timer = setTimeout(() => tick(myGen), REFRESH_MS);
}

function setViewError(err) {
  const el = $('view-error');
  el.hidden = !err;
  el.textContent = err ? errorText(err) : '';
}

$('login-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const btn = $('login-submit');
  btn.disabled = true;
  try {
    await api.login($('login-user').value, $('login-password').value);
    $('login-password').value = '';
    if (!location.hash || location.hash === '#/' || location.hash === '#') location.replace('#/overview');
    showApp();
  } catch (err) {
    const reason = errorText(err);
    const why = err.status !== 401 ? reason
      : /^login failed$/i.test(reason) ? 'Login failed: wrong username or password.' : 'Login failed: ' + reason;
    showLogin(why);
  } finally {
    btn.disabled = false;
  }
});

$('logout').addEventListener('click', (ev) => {
  ev.preventDefault();
  api.logout();
  showLogin('You have logged out.');
});

api.onUnauthorized((message) => showLogin(message));
window.addEventListener('hashchange', route);
document.addEventListener('visibilitychange', () => {
  if (!document.hidden && page && page.view && page.view.refresh) {
    clearTimeout(page.timer);
    tick(page.gen);
  }
});

if (api.currentUser()) showApp();
else showLogin();
