// DOM building, formatting and form helpers shared by the views.
// Text from the broker always goes through textContent (never innerHTML),
// so queue or user names cannot inject markup.

const SVG_NS = 'http://www.w3.org/2000/svg';

/** h('tag', {attr: value, onclick: fn, class: 'x'}, ...children). 'svg:tag' makes an SVG element. */
export function h(tag, attrs, ...children) {
  const svg = tag.startsWith('svg:');
  const el = svg ? document.createElementNS(SVG_NS, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (!svg && (k === 'value' || k === 'checked' || k === 'selected')) el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
}

/** Replaces all children of el. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** Reads a dotted path ('message_stats.publish_details.rate') from an object. */
export function pick(obj, path) {
  let v = obj;
  for (const k of path.split('.')) {
    if (v == null) return undefined;
    v = v[k];
  }
  return v;
}

const intFmt = new Intl.NumberFormat('en-US');

export function fmtNum(n) {
  return typeof n === 'number' ? intFmt.format(n) : '';
}

export function fmtRate(r) {
  if (typeof r !== 'number') return '';
  return (r >= 100 ? intFmt.format(Math.round(r)) : r.toFixed(1)) + '/s';
}

export function fmtBytes(n) {
  if (typeof n !== 'number') return '';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(1)) + ' ' + units[i];
}

/** The default exchange is "" in JSON and "amq.default" in URLs. */
export function exchangeUrlName(name) {
  return name === '' ? 'amq.default' : name;
}

export function exchangeLabel(name) {
  return name === '' || name === 'amq.default' ? '(AMQP default)' : name;
}

/** Hash link to an object's detail page; segments are percent-encoded like the API's. */
export function link(kind, vhost, name) {
  return '#/' + kind + '/' + encodeURIComponent(vhost) + '/' + encodeURIComponent(name);
}

export function queueLink(vhost, name) {
  return h('a', { href: link('queues', vhost, name) }, name);
}

export function exchangeLink(vhost, name) {
  return h('a', { href: link('exchanges', vhost, exchangeUrlName(name)) }, exchangeLabel(name));
}

/**
 * A table cell. Numbers are right-aligned and keep their raw value in data-value,
 * so tests can read them without parsing the formatting.
 */
export function cell(col, content, raw) {
  const attrs = { 'data-col': col };
  if (raw !== undefined) {
    attrs.class = 'num';
    attrs['data-value'] = raw == null ? '' : String(raw);
  }
  return h('td', attrs, content);
}

export const numCell = (col, n) => cell(col, fmtNum(n), n);
export const rateCell = (col, r) => cell(col, fmtRate(r), r);

/** Small boolean/feature badges, e.g. D (durable), AD (auto-delete). */
export function badges(list) {
  return list.filter(([on]) => on).map(([, text, title]) => h('span', { class: 'badge', title }, text));
}

/** Key/value rows for an arguments or properties object. */
export function kvTable(obj, testid) {
  const keys = Object.keys(obj || {});
  if (!keys.length) return h('span', { class: 'muted', 'data-testid': testid }, 'none');
  return h('table', { class: 'kv', 'data-testid': testid },
    h('tbody', {}, keys.map((k) => h('tr', { 'data-key': k },
      h('th', {}, k), h('td', {}, obj[k] === '' ? h('span', { class: 'muted' }, '(empty string)') : fmtValue(obj[k]))))));
}

export function fmtValue(v) {
  if (v === null || v === undefined) return '';
  return typeof v === 'object' ? JSON.stringify(v) : String(v);
}

/** A table with a header row; returns the table and its tbody. */
export function table(testid, headers) {
  const tbody = h('tbody');
  const el = h('table', { class: 'grid', 'data-testid': testid },
    h('thead', {}, h('tr', {}, headers.map((hd) =>
      typeof hd === 'string' ? h('th', {}, hd) : h('th', { class: hd.num ? 'num' : null }, hd.label)))),
    tbody);
  return { el, tbody };
}

export function emptyRow(span, text) {
  return h('tr', { class: 'empty' }, h('td', { colspan: span }, text));
}

/** Shows an API error's reason (or a success text) in a result element. */
export function showResult(el, ok, text) {
  el.className = 'result ' + (ok ? 'ok' : 'error');
  el.dataset.status = ok ? 'ok' : 'error';
  el.textContent = text;
}

export function showError(el, err) {
  showResult(el, false, errorText(err));
}

export function errorText(err) {
  if (err && err.reason !== undefined) return reasonText(err.reason);
  return String(err && err.message ? err.message : err);
}

/**
 * RabbitMQ sometimes sends an Erlang term as the reason, e.g.
 * ["amqp_error","command_invalid",[105,110,...],"none"] (strings as char-code lists).
 */
function reasonText(r) {
  if (typeof r === 'string') return r;
  if (Array.isArray(r)) {
    if (r.length && r.every((c) => Number.isInteger(c) && c >= 9 && c <= 0x10ffff)) return String.fromCodePoint(...r);
    const parts = r.map(reasonText);
    if (parts[0] === 'amqp_error' && parts.length >= 3) return parts[1] + ': ' + parts[2];
    return parts.join(': ');
  }
  return r && typeof r === 'object' ? JSON.stringify(r) : String(r);
}

/**
 * Wires a form: on submit, disables its buttons, runs fn(form) and shows the
 * returned text (or the error's reason) in resultEl.
 */
export function onSubmit(form, resultEl, fn) {
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const buttons = form.querySelectorAll('button');
    buttons.forEach((b) => { b.disabled = true; });
    resultEl.className = 'result pending';
    resultEl.dataset.status = 'pending';
    resultEl.textContent = 'Working…';
    try {
      const text = await fn(form);
      showResult(resultEl, true, text || 'Done.');
    } catch (err) {
      showError(resultEl, err);
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
    }
  });
}

/**
 * A destructive button that needs two clicks: the first arms it (label
 * "Click again to <label>", class "armed", data-armed="true") for 5 s, the second runs fn.
 */
export function dangerButton(label, attrs, fn) {
  let timer = null;
  const btn = h('button', { type: 'button', class: 'danger', ...attrs }, label);
  const disarm = () => {
    clearTimeout(timer);
    btn.classList.remove('armed');
    delete btn.dataset.armed;
    btn.textContent = label;
  };
  btn.addEventListener('click', async () => {
    if (btn.dataset.armed !== 'true') {
      btn.dataset.armed = 'true';
      btn.classList.add('armed');
      btn.textContent = 'Click again to ' + label.toLowerCase();
      timer = setTimeout(disarm, 5000);
      return;
    }
    disarm();
    btn.disabled = true;
    try { await fn(); } finally { btn.disabled = false; }
  });
  return btn;
}

/** Parses an optional JSON object typed by the user (arguments, headers). */
export function parseJsonObject(text, what) {
  const t = text.trim();
  if (!t) return {};
  let v;
  try { v = JSON.parse(t); } catch (e) {
    throw new Error(what + ' must be a JSON object such as {"key": "value"} (' + e.message + ')');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error(what + ' must be a JSON object');
  return v;
}

/** A labelled form field. */
export function field(label, input, hint) {
  return h('label', { class: 'field' }, h('span', {}, label), input, hint ? h('small', { class: 'muted' }, hint) : null);
}

export function select(attrs, options, value) {
  return h('select', attrs, options.map((o) => {
    const [v, text] = Array.isArray(o) ? o : [o, o];
    return h('option', { value: v, selected: v === value }, text);
  }));
}

/** Replaces a select's options, keeping the current choice when it still exists. */
export function setOptions(sel, values) {
  const cur = sel.value;
  fill(sel, values.map((v) => h('option', { value: v }, v)));
  if (values.includes(cur)) sel.value = cur;
}
