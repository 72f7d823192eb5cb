// Queues: the paged list with the add-queue form, and the detail page (counts,
// consumers, bindings, get messages, purge, delete).

import { get, put, post, del, url } from './api.js';
import {
  h, fill, pick, fmtNum, fmtRate, fmtBytes, fmtValue, cell, numCell, rateCell, badges, kvTable, table, emptyRow,
  field, select, onSubmit, dangerButton, showResult, showError, parseJsonObject, queueLink, exchangeLink,
  exchangeUrlName, exchangeLabel,
} from './dom.js';
import { pagedList } from './paged.js';
import { fillVhosts } from './vhosts.js';

const FIELDS = [
  'name', 'vhost', 'type', 'state', 'durable', 'auto_delete', 'exclusive', 'arguments', 'consumers',
  'messages_ready', 'messages_unacknowledged', 'messages',
  'message_stats.publish_details.rate', 'message_stats.deliver_get_details.rate', 'message_stats.ack_details.rate',
].join(',');

export function mountList(root) {
  const list = pagedList({
    key: 'queue',
    path: '/api/queues',
    fields: FIELDS,
    noun: 'queues',
    columns: [
      { label: 'Virtual host', sort: 'vhost' }, { label: 'Name', sort: 'name' }, { label: 'Type', sort: 'type' },
      { label: 'Features' }, { label: 'State', sort: 'state' },
      { label: 'Ready', num: true, sort: 'messages_ready' }, { label: 'Unacked', num: true, sort: 'messages_unacknowledged' },
      { label: 'Total', num: true, sort: 'messages' }, { label: 'Incoming', num: true },
      { label: 'Deliver / get', num: true }, { label: 'Ack', num: true },
    ],
    row: (q) => h('tr', { 'data-queue': q.name, 'data-vhost': q.vhost },
      cell('vhost', q.vhost), cell('name', queueLink(q.vhost, q.name)), cell('type', q.type ?? ''),
      cell('features', queueFeatures(q)), cell('state', q.state ?? ''),
      numCell('ready', q.messages_ready), numCell('unacked', q.messages_unacknowledged), numCell('messages', q.messages),
      rateCell('incoming', pick(q, 'message_stats.publish_details.rate')),
      rateCell('deliver_get', pick(q, 'message_stats.deliver_get_details.rate')),
      rateCell('ack', pick(q, 'message_stats.ack_details.rate'))),
  });

  const vhost = h('select', { name: 'vhost', 'data-testid': 'add-queue-vhost' });
  const result = h('div', { class: 'result', 'data-testid': 'add-queue-result' });
  const form = h('form', { class: 'card form', 'data-testid': 'add-queue-form' },
    h('h2', {}, 'Add a queue'),
    h('div', { class: 'row' },
      field('Virtual host', vhost),
      field('Name', h('input', { name: 'name', required: true, 'data-testid': 'add-queue-name' })),
      field('Type', select({ name: 'type', 'data-testid': 'add-queue-type' }, ['classic', 'quorum'], 'classic')),
      field('Durability', select({ name: 'durable', 'data-testid': 'add-queue-durable' }, [['true', 'Durable'], ['false', 'Transient']], 'true')),
      field('Auto delete', select({ name: 'auto_delete', 'data-testid': 'add-queue-auto-delete' }, [['false', 'No'], ['true', 'Yes']], 'false'))),
    field('Arguments (JSON object)', h('textarea', { name: 'arguments', rows: 2, placeholder: '{"x-max-length": 1000}', 'data-testid': 'add-queue-arguments' })),
    h('div', { class: 'actions' }, h('button', { type: 'submit', 'data-testid': 'add-queue-submit' }, 'Add queue'), result));
  onSubmit(form, result, async (f) => {
    const name = f.elements.name.value.trim();
    const args = parseJsonObject(f.elements.arguments.value, 'Arguments');
    if (f.elements.type.value !== 'classic') args['x-queue-type'] = f.elements.type.value;
    await put(url('queues', vhost.value, name), {
      durable: f.elements.durable.value === 'true', auto_delete: f.elements.auto_delete.value === 'true', arguments: args,
    });
    list.refresh();
    return `Queue '${name}' added in vhost '${vhost.value}'.`;
  });

  fill(root, h('h1', {}, 'Queues'), h('section', { class: 'card' }, list.el), form);
  fillVhosts(vhost).catch((e) => showError(result, e));
  return { refresh: list.refresh };
}

function queueFeatures(q) {
  return badges([
    [q.durable, 'D', 'durable'], [q.auto_delete, 'AD', 'auto-delete'], [q.exclusive, 'Excl', 'exclusive'],
    [q.arguments && Object.keys(q.arguments).length, 'Args', JSON.stringify(q.arguments)],
  ]);
}

export function mountDetail(root, [vhost, name]) {
  const base = url('queues', vhost, name);
  const tid = (s) => ({ 'data-testid': s });
  const status = h('div', { class: 'result', ...tid('queue-status') });
  const facts = h('dl', { class: 'facts', ...tid('queue-info') });
  const counts = h('div', { class: 'stats', ...tid('queue-counts') });
  const rates = h('div', { class: 'stats', ...tid('queue-rates') });
  const args = h('div', tid('queue-arguments'));
  const consumers = table('queue-consumers', ['Channel', 'Consumer tag', 'Ack required', 'Exclusive', { label: 'Prefetch', num: true }, 'Active', 'Arguments']);
  const bindings = table('queue-bindings', ['From exchange', 'Routing key', 'Arguments', '']);
  const actionResult = h('div', { class: 'result', ...tid('queue-action-result') });

  // Get messages
  const getResult = h('div', { class: 'messages', ...tid('queue-get-result') });
  const getError = h('div', { class: 'result', ...tid('queue-get-error') });
  const getForm = h('form', { class: 'card form', ...tid('queue-get-form') },
    h('h2', {}, 'Get messages'),
    h('p', { class: 'muted' }, 'Getting messages is destructive unless the ack mode requeues them.'),
    h('div', { class: 'row' },
      field('Ack mode', select({ name: 'ackmode', ...tid('queue-get-ackmode') }, [
        ['ack_requeue_true', 'Nack, requeue'], ['ack_requeue_false', 'Ack, remove from queue'],
        ['reject_requeue_true', 'Reject, requeue'], ['reject_requeue_false', 'Reject, do not requeue'],
      ], 'ack_requeue_true')),
      field('Encoding', select({ name: 'encoding', ...tid('queue-get-encoding') }, [['auto', 'Auto string / base64'], ['base64', 'base64']], 'auto')),
      field('Messages', h('input', { name: 'count', type: 'number', min: 1, value: '1', ...tid('queue-get-count') }))),
    h('div', { class: 'actions' }, h('button', { type: 'submit', ...tid('queue-get-button') }, 'Get message(s)'), getError),
    getResult);
  onSubmit(getForm, getError, async (f) => {
    const msgs = await post(base + '/get', {
      count: Math.max(1, Number(f.elements.count.value) || 1), ackmode: f.elements.ackmode.value,
      encoding: f.elements.encoding.value, truncate: 50000,
    });
    renderMessages(getResult, msgs || []);
    return msgs && msgs.length ? `${msgs.length} message(s) fetched.` : 'Queue is empty.';
  });

  // Bind
  const bindResult = h('div', { class: 'result', ...tid('binding-result') });
  const bindForm = h('form', { class: 'card form', ...tid('binding-form') },
    h('h2', {}, 'Add binding to this queue'),
    h('div', { class: 'row' },
      field('From exchange', h('input', { name: 'exchange', required: true, ...tid('binding-exchange') })),
      field('Routing key', h('input', { name: 'routing_key', ...tid('binding-routing-key') }))),
    field('Arguments (JSON object)', h('textarea', { name: 'arguments', rows: 2, ...tid('binding-arguments') })),
    h('div', { class: 'actions' }, h('button', { type: 'submit', ...tid('binding-submit') }, 'Bind'), bindResult));
  onSubmit(bindForm, bindResult, async (f) => {
    const x = f.elements.exchange.value.trim();
    await post(url('bindings', vhost, 'e', exchangeUrlName(x), 'q', name), {
      routing_key: f.elements.routing_key.value, arguments: parseJsonObject(f.elements.arguments.value, 'Arguments'),
    });
    loadBindings();
    return `Bound to exchange '${x}'.`;
  });

  const purge = dangerButton('Purge', tid('queue-purge-button'), async () => {
    try {
      await del(base + '/contents');
      showResult(actionResult, true, 'Queue purged.');
      refresh();
    } catch (e) { showError(actionResult, e); }
  });
  const remove = dangerButton('Delete', tid('queue-delete-button'), async () => {
    try {
      await del(base);
      showResult(actionResult, true, 'Queue deleted.');
      location.hash = '#/queues';
    } catch (e) { showError(actionResult, e); }
  });

  fill(root,
    h('p', { class: 'crumbs' }, h('a', { href: '#/queues' }, 'Queues'), ' › virtual host ', h('b', {}, vhost)),
    h('h1', {}, 'Queue ', h('span', tid('queue-name'), name)),
    status,
    h('div', { class: 'cols' },
      h('section', { class: 'card' }, h('h2', {}, 'Details'), facts, h('h3', {}, 'Arguments'), args),
      h('section', { class: 'card' }, h('h2', {}, 'Messages'), counts, h('h3', {}, 'Rates'), rates)),
    h('section', { class: 'card' }, h('h2', {}, 'Consumers'), h('div', { class: 'table-wrap' }, consumers.el)),
    h('section', { class: 'card' }, h('h2', {}, 'Bindings'), h('div', { class: 'table-wrap' }, bindings.el)),
    bindForm,
    getForm,
    h('section', { class: 'card form' }, h('h2', {}, 'Purge or delete'),
      h('div', { class: 'actions' }, purge, remove, actionResult)));

  const stat = (testid, label, text, raw) => h('div', { class: 'stat' }, h('span', { class: 'label' }, label),
    h('span', { class: 'value', 'data-testid': testid, 'data-value': raw ?? '' }, text));

  async function loadBindings() {
    const list = await get(base + '/bindings');
    fill(bindings.tbody, list.length ? list.map((b) => h('tr', { 'data-source': b.source, 'data-routing-key': b.routing_key },
      cell('source', exchangeLink(b.vhost, b.source)), cell('routing_key', b.routing_key),
      cell('arguments', kvTable(b.arguments)),
      cell('action', b.source === '' ? h('span', { class: 'muted' }, 'default binding') : dangerButton('Unbind', { class: 'danger small', 'data-testid': 'unbind' }, async () => {
        try {
          await del(url('bindings', vhost, 'e', b.source, 'q', name, b.properties_key));
          loadBindings();
        } catch (e) { showError(bindResult, e); }
      })))) : emptyRow(4, 'No bindings.'));
  }

  async function refresh() {
    let q;
    try {
      q = await get(base);
    } catch (e) {
      showError(status, e.status === 404 ? { reason: `Queue '${name}' does not exist in vhost '${vhost}'.` } : e);
      root.dataset.state = 'missing';
      return;
    }
    status.className = 'result';
    status.textContent = '';
    root.dataset.state = 'ok';
    const ms = q.message_stats || {};
    fill(facts,
      h('dt', {}, 'Virtual host'), h('dd', {}, q.vhost),
      h('dt', {}, 'Type'), h('dd', tid('queue-type'), q.type ?? ''),
      h('dt', {}, 'State'), h('dd', tid('queue-state'), q.state ?? ''),
      h('dt', {}, 'Features'), h('dd', {}, queueFeatures({ ...q, arguments: null })),
      h('dt', {}, 'Node'), h('dd', {}, q.node ?? ''),
      h('dt', {}, 'Policy'), h('dd', {}, q.policy ?? ''),
      h('dt', {}, 'Consumers'), h('dd', { ...tid('queue-consumer-count'), 'data-value': q.consumers ?? 0 }, fmtNum(q.consumers ?? 0)),
      h('dt', {}, 'Consumer utilisation'), h('dd', {}, typeof q.consumer_utilisation === 'number' ? Math.round(q.consumer_utilisation * 100) + '%' : ''));
    fill(args, kvTable(q.arguments));
    fill(counts,
      stat('queue-ready', 'Ready', fmtNum(q.messages_ready ?? 0), q.messages_ready ?? 0),
      stat('queue-unacked', 'Unacked', fmtNum(q.messages_unacknowledged ?? 0), q.messages_unacknowledged ?? 0),
      stat('queue-messages', 'Total', fmtNum(q.messages ?? 0), q.messages ?? 0),
      stat('queue-bytes', 'Bytes', fmtBytes(q.message_bytes), q.message_bytes));
    fill(rates, [['publish', 'Incoming'], ['deliver_get', 'Deliver / get'], ['ack', 'Ack'], ['redeliver', 'Redelivered']]
      .map(([k, label]) => stat('queue-rate-' + k, label, fmtRate(pick(ms, k + '_details.rate') ?? 0), pick(ms, k + '_details.rate') ?? 0)));
    const cs = q.consumer_details || [];
    fill(consumers.tbody, cs.length ? cs.map((c) => h('tr', { 'data-consumer-tag': c.consumer_tag },
      cell('channel', pick(c, 'channel_details.name') ?? ''), cell('consumer_tag', c.consumer_tag),
      cell('ack_required', c.ack_required ? 'yes' : 'no'), cell('exclusive', c.exclusive ? 'yes' : 'no'),
      numCell('prefetch_count', c.prefetch_count), cell('active', c.active === false ? 'no' : 'yes'),
      cell('arguments', kvTable(c.arguments)))) : emptyRow(7, 'No consumers.'));
    await loadBindings();
  }

  return { refresh };
}

function renderMessages(container, msgs) {
  fill(container, msgs.map((m, i) => h('div', { class: 'message', 'data-testid': 'message', 'data-index': i },
    h('h3', {}, `Message ${i + 1}`),
    h('dl', { class: 'facts' },
      h('dt', {}, 'Exchange'), h('dd', { 'data-field': 'exchange' }, exchangeLabel(m.exchange ?? '')),
      h('dt', {}, 'Routing key'), h('dd', { 'data-field': 'routing_key' }, m.routing_key ?? ''),
      h('dt', {}, 'Redelivered'), h('dd', { 'data-field': 'redelivered', 'data-value': String(!!m.redelivered) }, m.redelivered ? 'yes' : 'no'),
      h('dt', {}, 'Remaining in queue'), h('dd', { 'data-field': 'message_count' }, fmtNum(m.message_count)),
      h('dt', {}, 'Properties'), h('dd', { 'data-field': 'properties' }, kvTable(m.properties)),
      h('dt', {}, 'Payload'), h('dd', {},
        h('small', { class: 'muted' }, `${fmtNum(m.payload_bytes)} bytes, encoding: ${m.payload_encoding ?? ''}`),
        h('pre', { 'data-field': 'payload' }, fmtValue(m.payload)))))));
}

