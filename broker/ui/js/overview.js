// Overview: node, versions, totals, current rates, and charts of the last 10 minutes.

import { get, withQuery } from './api.js';
import { h, fill, fmtNum, fmtRate, pick, table, cell } from './dom.js';
import { lineChart } from './chart.js';

const WINDOW_MS = 600_000;
const RATES = [
  ['publish', 'Publish'],
  ['deliver_get', 'Deliver / get'],
  ['ack', 'Ack'],
  ['confirm', 'Confirm'],
];
const LENGTHS = [
  ['messages_ready', 'Ready'],
  ['messages_unacknowledged', 'Unacked'],
  ['messages', 'Total'],
];
const TOTALS = ['connections', 'channels', 'exchanges', 'queues', 'consumers'];

// Samples polled every 5 s, kept across page changes, for an API that answers
// without `samples` history: {t, counts: {publish: n, …}, rates: {…}, lengths: {…}}.
const polled = [];

export function mount(root, _params, app) {
  const stat = (testid, label) => h('div', { class: 'stat' }, h('span', { class: 'label' }, label),
    h('span', { class: 'value', 'data-testid': testid }, '–'));
  const rateChart = h('div', { class: 'chart-box', 'data-testid': 'chart-rates' });
  const lengthChart = h('div', { class: 'chart-box', 'data-testid': 'chart-queued' });
  const node = h('dl', { class: 'facts', 'data-testid': 'node-info' });
  const listeners = table('listeners', ['Protocol', 'Bound to', { label: 'Port', num: true }]);

  fill(root,
    h('h1', {}, 'Overview'),
    h('section', { class: 'card' }, h('h2', {}, 'Totals'),
      h('div', { class: 'stats' }, TOTALS.map((k) => stat('total-' + k, k[0].toUpperCase() + k.slice(1))))),
    h('div', { class: 'cols' },
      h('section', { class: 'card' }, h('h2', {}, 'Queued messages'),
        h('div', { class: 'stats' }, stat('queued-ready', 'Ready'), stat('queued-unacked', 'Unacked'), stat('queued-total', 'Total'))),
      h('section', { class: 'card' }, h('h2', {}, 'Message rates'),
        h('div', { class: 'stats' }, RATES.map(([k, label]) => stat('rate-' + k, label))))),
    h('section', { class: 'card' }, h('h2', {}, 'Message rates, last 10 minutes'), rateChart),
    h('section', { class: 'card' }, h('h2', {}, 'Queued messages, last 10 minutes'), lengthChart),
    h('div', { class: 'cols' },
      h('section', { class: 'card' }, h('h2', {}, 'Node'), node),
      h('section', { class: 'card' }, h('h2', {}, 'Listeners'), listeners.el)));

  const set = (testid, text, raw) => {
    const el = root.querySelector(`[data-testid="${testid}"]`);
    el.textContent = text;
    el.dataset.value = raw == null ? '' : String(raw);
  };

  return {
    async refresh() {
      const o = await get(withQuery('/api/overview', {
        msg_rates_age: 600, msg_rates_incr: 5, lengths_age: 600, lengths_incr: 5,
      }));
      app.setNode(o);
      const ms = o.message_stats || {};
      const qt = o.queue_totals || {};
      for (const k of TOTALS) set('total-' + k, fmtNum(pick(o, 'object_totals.' + k) ?? 0), pick(o, 'object_totals.' + k) ?? 0);
      set('queued-ready', fmtNum(qt.messages_ready ?? 0), qt.messages_ready ?? 0);
      set('queued-unacked', fmtNum(qt.messages_unacknowledged ?? 0), qt.messages_unacknowledged ?? 0);
      set('queued-total', fmtNum(qt.messages ?? 0), qt.messages ?? 0);
      for (const [k] of RATES) {
        const r = pick(ms, k + '_details.rate') ?? 0;
        set('rate-' + k, fmtRate(r), r);
      }
      remember(o);
      lineChart(rateChart, rateSeries(ms), { windowMs: WINDOW_MS, format: (v) => fmtRate(v), minStep: 0.1 });
      lineChart(lengthChart, lengthSeries(qt), { windowMs: WINDOW_MS, format: (v) => fmtNum(Math.round(v)), minStep: 1 });

      fill(node,
        fact('Node', o.node, 'node'),
        fact('Cluster', o.cluster_name, 'cluster'),
        fact('Product', [o.product_name, o.product_version].filter(Boolean).join(' '), 'product'),
        fact('RabbitMQ version', o.rabbitmq_version, 'rabbitmq-version'),
        fact('Management version', o.management_version, 'management-version'),
        fact('Erlang version', o.erlang_version, 'erlang-version'),
        fact('Rates mode', o.rates_mode, 'rates-mode'));
      fill(listeners.tbody, (o.listeners || []).map((l) => h('tr', {},
        cell('protocol', l.protocol), cell('ip', l.ip_address), cell('port', String(l.port ?? ''), l.port))));
    },
  };
}

function fact(label, value, testid) {
  return [h('dt', {}, label), h('dd', { 'data-testid': 'node-' + testid }, value ?? '')];
}

function remember(o) {
  const t = Date.now();
  const counts = {}, rates = {}, lengths = {};
  for (const [k] of RATES) {
    counts[k] = pick(o, `message_stats.${k}`);
    rates[k] = pick(o, `message_stats.${k}_details.rate`);
  }
  for (const [k] of LENGTHS) lengths[k] = pick(o, 'queue_totals.' + k);
  polled.push({ t, counts, rates, lengths });
  while (polled.length && polled[0].t < t - WINDOW_MS) polled.shift();
}

/** Rates from the API's samples (cumulative counts, newest first) or else from our own polls. */
function rateSeries(ms) {
  const fromSamples = RATES.some(([k]) => Array.isArray(pick(ms, k + '_details.samples')));
  return RATES.map(([k, label]) => {
    let points = [];
    if (fromSamples) {
      const s = (pick(ms, k + '_details.samples') || []).slice().sort((a, b) => a.timestamp - b.timestamp);
      for (let i = 1; i < s.length; i++) {
        const dt = (s[i].timestamp - s[i - 1].timestamp) / 1000;
        if (dt > 0) points.push({ t: s[i].timestamp, v: Math.max(0, (s[i].sample - s[i - 1].sample) / dt) });
      }
    } else {
      for (let i = 0; i < polled.length; i++) {
        const cur = polled[i], prev = polled[i - 1];
        const c1 = cur.counts[k], c0 = prev && prev.counts[k];
        if (typeof c1 === 'number' && typeof c0 === 'number' && cur.t > prev.t) {
          points.push({ t: cur.t, v: Math.max(0, (c1 - c0) / ((cur.t - prev.t) / 1000)) });
        } else if (typeof cur.rates[k] === 'number') {
          points.push({ t: cur.t, v: cur.rates[k] });
        }
      }
    }
    return { key: k, label, points };
  });
}

/** Queue lengths are gauges: samples are plotted as they are. */
function lengthSeries(qt) {
  const fromSamples = LENGTHS.some(([k]) => Array.isArray(pick(qt, k + '_details.samples')));
  return LENGTHS.map(([k, label]) => ({
    key: k, label,
    points: fromSamples
      ? (pick(qt, k + '_details.samples') || []).map((s) => ({ t: s.timestamp, v: s.sample }))
      : polled.filter((p) => typeof p.lengths[k] === 'number').map((p) => ({ t: p.t, v: p.lengths[k] })),
  }));
}
