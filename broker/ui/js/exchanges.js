// Exchanges: the paged list with the add-exchange form, and the detail page
// (bindings from it, publish a message, delete).

import { get, put, post, del, url } from './api.js';
import {
  h, fill, pick, fmtNum, fmtRate, cell, rateCell, badges, kvTable, table, emptyRow, field, select, onSubmit,
  dangerButton, showResult, showError, parseJsonObject, queueLink, exchangeLink, exchangeUrlName, exchangeLabel,
} from './dom.js';
import { pagedList } from './paged.js';
import { fillVhosts } from './vhosts.js';

const FIELDS = 'name,vhost,type,durable,auto_delete,internal,arguments,'
  + 'message_stats.publish_in_details.rate,message_stats.publish_out_details.rate';
const TYPES = ['direct', 'fanout', 'topic', 'headers'];

export function mountList(root, _params, app) {
  const list = pagedList({
    key: 'exchange',
    path: '/api/exchanges',
    fields: FIELDS,
    noun: 'exchanges',
    columns: [
      { label: 'Virtual host', sort: 'vhost' }, { label: 'Name', sort: 'name' }, { label: 'Type', sort: 'type' },
      { label: 'Features' }, { label: 'Message rate in', num: true }, { label: 'Message rate out', num: true },
    ],
    row: (x) => h('tr', { 'data-exchange': x.name, 'data-vhost': x.vhost },
      cell('vhost', x.vhost), cell('name', exchangeLink(x.vhost, x.name)), cell('type', x.type),
      cell('features', exchangeFeatures(x)),
      rateCell('rate_in', pick(x, 'message_stats.publish_in_details.rate')),
      rateCell('rate_out', pick(x, 'message_stats.publish_out_details.rate'))),
  });

  const types = (app.node && app.node.exchange_types || []).filter((t) => t.enabled !== false).map((t) => t.name);
  const vhost = h('select', { name: 'vhost', 'data-testid': 'add-exchange-vhost' });
  const result = h('div', { class: 'result', 'data-testid': 'add-exchange-result' });
  const form = h('form', { class: 'card form', 'data-testid': 'add-exchange-form' },
    h('h2', {}, 'Add an exchange'),
    h('div', { class: 'row' },
      field('Virtual host', vhost),
      field('Name', h('input', { name: 'name', required: true, 'data-testid': 'add-exchange-name' })),
      field('Type', select({ name: 'type', 'data-testid': 'add-exchange-type' }, types.length ? types : TYPES, 'direct')),
      field('Durability', select({ name: 'durable', 'data-testid': 'add-exchange-durable' }, [['true', 'Durable'], ['false', 'Transient']], 'true')),
      field('Auto delete', select({ name: 'auto_delete', 'data-testid': 'add-exchange-auto-delete' }, [['false', 'No'], ['true', 'Yes']], 'false')),
      field('Internal', select({ name: 'internal', 'data-testid': 'add-exchange-internal' }, [['false', 'No'], ['true', 'Yes']], 'false'))),
    field('Arguments (JSON object)', h('textarea', { name: 'arguments', rows: 2, placeholder: '{"alternate-exchange": "unrouted"}', 'data-testid': 'add-exchange-arguments' })),
    h('div', { class: 'actions' }, h('button', { type: 'submit', 'data-testid': 'add-exchange-submit' }, 'Add exchange'), result));
  onSubmit(form, result, async (f) => {
    const name = f.elements.name.value.trim();
    await put(url('exchanges', vhost.value, name), {
      type: f.elements.type.value, durable: f.elements.durable.value === 'true',
      auto_delete: f.elements.auto_delete.value === 'true', internal: f.elements.internal.value === 'true',
      arguments: parseJsonObject(f.elements.arguments.value, 'Arguments'),
    });
    list.refresh();
    return `Exchange '${name}' added in vhost '${vhost.value}'.`;
  });

  fill(root, h('h1', {}, 'Exchanges'), h('section', { class: 'card' }, list.el), form);
  fillVhosts(vhost).catch((e) => showError(result, e));
  return { refresh: list.refresh };
}

function exchangeFeatures(x) {
  return badges([
    [x.durable, 'D', 'durable'], [x.auto_delete, 'AD', 'auto-delete'], [x.internal, 'I', 'internal'],
    [x.arguments && Object.keys(x.arguments).length, 'Args', JSON.stringify(x.arguments)],
  ]);
}

export function mountDetail(root, [vhost, urlName]) {
  const name = urlName === 'amq.default' ? '' : urlName;
  const base = url('exchanges', vhost, exchangeUrlName(name));
  const tid = (s) => ({ 'data-testid': s });
  const status = h('div', { class: 'result', ...tid('exchange-status') });
  const facts = h('dl', { class: 'facts', ...tid('exchange-info') });
  const bindings = table('exchange-bindings', ['To', 'Type', 'Routing key', 'Arguments']);

  const pubResult = h('div', { class: 'result', ...tid('publish-result') });
  const pubForm = h('form', { class: 'card form', ...tid('publish-form') },
    h('h2', {}, 'Publish message'),
    h('div', { class: 'row' },
      field('Routing key', h('input', { name: 'routing_key', ...tid('publish-routing-key') })),
      field('Delivery mode', select({ name: 'delivery_mode', ...tid('publish-delivery-mode') },
        [['1', '1 - Non-persistent'], ['2', '2 - Persistent']], '1'))),
    field('Headers (JSON object, optional)', h('textarea', { name: 'headers', rows: 2, placeholder: '{"x-origin": "ui"}', ...tid('publish-headers') })),
    field('Properties (JSON object, optional)', h('textarea', { name: 'properties', rows: 2, placeholder: '{"content_type": "text/plain", "message_id": "m1"}', ...tid('publish-properties') })),
    field('Payload', h('textarea', { name: 'payload', rows: 4, ...tid('publish-payload') })),
    h('div', { class: 'actions' }, h('button', { type: 'submit', ...tid('publish-submit') }, 'Publish message'), pubResult));
  onSubmit(pubForm, pubResult, async (f) => {
    const properties = parseJsonObject(f.elements.properties.value, 'Properties');
    properties.delivery_mode = Number(f.elements.delivery_mode.value);
    const headers = parseJsonObject(f.elements.headers.value, 'Headers');
    if (Object.keys(headers).length) properties.headers = headers;
    const res = await post(base + '/publish', {
      properties, routing_key: f.elements.routing_key.value, payload: f.elements.payload.value, payload_encoding: 'string',
    });
    pubResult.dataset.routed = String(!!(res && res.routed));
    return res && res.routed ? 'Message published and routed.' : 'Message published, but not routed (no binding matched).';
  });

  const actionResult = h('div', { class: 'result', ...tid('exchange-action-result') });
  const remove = dangerButton('Delete', tid('exchange-delete-button'), async () => {
    try {
      await del(base);
      showResult(actionResult, true, 'Exchange deleted.');
      location.hash = '#/exchanges';
    } catch (e) { showError(actionResult, e); }
  });

  fill(root,
    h('p', { class: 'crumbs' }, h('a', { href: '#/exchanges' }, 'Exchanges'), ' › virtual host ', h('b', {}, vhost)),
    h('h1', {}, 'Exchange ', h('span', tid('exchange-name'), exchangeLabel(name))),
    status,
    h('section', { class: 'card' }, h('h2', {}, 'Details'), facts),
    h('section', { class: 'card' }, h('h2', {}, 'Bindings from this exchange'),
      name === ''
        ? h('p', { class: 'muted' }, 'The default exchange is implicitly bound to every queue, with a routing key equal to the queue name. It cannot be bound or unbound.')
        : h('div', { class: 'table-wrap' }, bindings.el)),
    pubForm,
    name === '' || name.startsWith('amq.') ? null
      : h('section', { class: 'card form' }, h('h2', {}, 'Delete this exchange'), h('div', { class: 'actions' }, remove, actionResult)));

  return {
    async refresh() {
      let x;
      try {
        x = await get(base);
      } catch (e) {
        showError(status, e.status === 404 ? { reason: `Exchange '${exchangeLabel(name)}' does not exist in vhost '${vhost}'.` } : e);
        root.dataset.state = 'missing';
        return;
      }
      status.className = 'result';
      status.textContent = '';
      root.dataset.state = 'ok';
      fill(facts,
        h('dt', {}, 'Virtual host'), h('dd', {}, x.vhost),
        h('dt', {}, 'Type'), h('dd', tid('exchange-type'), x.type),
        h('dt', {}, 'Features'), h('dd', {}, exchangeFeatures({ ...x, arguments: null })),
        h('dt', {}, 'Arguments'), h('dd', {}, kvTable(x.arguments, 'exchange-arguments')),
        h('dt', {}, 'Message rate in'), h('dd', {}, fmtRate(pick(x, 'message_stats.publish_in_details.rate') ?? 0)),
        h('dt', {}, 'Message rate out'), h('dd', {}, fmtRate(pick(x, 'message_stats.publish_out_details.rate') ?? 0)));
      if (name === '') return; // one implicit binding per queue: do not list them
      const list = await get(base + '/bindings/source');
      const shown = list.slice(0, 1000);
      fill(bindings.tbody, shown.length ? shown.map((b) => h('tr', { 'data-destination': b.destination, 'data-routing-key': b.routing_key },
        cell('destination', b.destination_type === 'exchange' ? exchangeLink(b.vhost, b.destination) : queueLink(b.vhost, b.destination)),
        cell('destination_type', b.destination_type), cell('routing_key', b.routing_key), cell('arguments', kvTable(b.arguments))))
        : emptyRow(4, 'No bindings.'),
      list.length > shown.length ? emptyRow(4, `… and ${fmtNum(list.length - shown.length)} more.`) : null);
    },
  };
}
