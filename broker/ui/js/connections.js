// Connections (with a close button) and channels: paged lists.

import { del, url } from './api.js';
import { h, pick, fmtBytes, cell, numCell, rateCell, badges, dangerButton, showResult, showError, fill } from './dom.js';
import { pagedList } from './paged.js';

const CONN_FIELDS = 'name,user,vhost,state,channels,protocol,user_provided_name,'
  + 'client_properties.product,client_properties.version,client_properties.connection_name,'
  + 'recv_oct_details.rate,send_oct_details.rate';

export function mountConnections(root) {
  const result = h('div', { class: 'result', 'data-testid': 'connection-action-result' });
  const list = pagedList({
    key: 'connection',
    path: '/api/connections',
    fields: CONN_FIELDS,
    noun: 'connections',
    columns: [
      { label: 'Name', sort: 'name' }, { label: 'User', sort: 'user' }, { label: 'Virtual host', sort: 'vhost' },
      { label: 'State', sort: 'state' }, { label: 'Channels', num: true, sort: 'channels' }, { label: 'Client' },
      { label: 'Protocol' }, { label: 'From client', num: true }, { label: 'To client', num: true }, { label: '' },
    ],
    row: (c) => {
      const given = c.user_provided_name || pick(c, 'client_properties.connection_name');
      const rate = (r) => (typeof r === 'number' ? fmtBytes(r) + '/s' : '');
      return h('tr', { 'data-connection': c.name },
        cell('name', [h('span', {}, c.name), given ? h('div', { class: 'muted' }, given) : null]),
        cell('user', c.user ?? ''), cell('vhost', c.vhost ?? ''), cell('state', c.state ?? ''),
        numCell('channels', c.channels),
        cell('client', [pick(c, 'client_properties.product'), pick(c, 'client_properties.version')].filter(Boolean).join(' ')),
        cell('protocol', c.protocol ?? ''),
        cell('recv_rate', rate(pick(c, 'recv_oct_details.rate')), pick(c, 'recv_oct_details.rate')),
        cell('send_rate', rate(pick(c, 'send_oct_details.rate')), pick(c, 'send_oct_details.rate')),
        cell('action', dangerButton('Close', { class: 'danger small', 'data-testid': 'connection-close' }, async () => {
          try {
            await del(url('connections', c.name), { 'X-Reason': 'Closed via management UI' });
            showResult(result, true, `Connection '${c.name}' closed.`);
            list.refresh();
          } catch (e) { showError(result, e); }
        })));
    },
  });
  fill(root, h('h1', {}, 'Connections'), result, h('section', { class: 'card' }, list.el));
  return { refresh: list.refresh };
}

const CHAN_FIELDS = 'name,number,user,vhost,state,confirm,transactional,consumer_count,prefetch_count,'
  + 'messages_unacknowledged,messages_unconfirmed,connection_details.name,'
  + 'message_stats.publish_details.rate,message_stats.deliver_get_details.rate,message_stats.ack_details.rate';

export function mountChannels(root) {
  const list = pagedList({
    key: 'channel',
    path: '/api/channels',
    fields: CHAN_FIELDS,
    noun: 'channels',
    columns: [
      { label: 'Channel', sort: 'name' }, { label: 'User', sort: 'user' }, { label: 'Virtual host', sort: 'vhost' },
      { label: 'Mode' }, { label: 'State', sort: 'state' }, { label: 'Consumers', num: true, sort: 'consumer_count' },
      { label: 'Prefetch', num: true }, { label: 'Unacked', num: true, sort: 'messages_unacknowledged' },
      { label: 'Unconfirmed', num: true }, { label: 'Publish', num: true }, { label: 'Deliver / get', num: true },
      { label: 'Ack', num: true },
    ],
    row: (c) => h('tr', { 'data-channel': c.name },
      cell('name', c.name), cell('user', c.user ?? ''), cell('vhost', c.vhost ?? ''),
      cell('mode', badges([[c.confirm, 'C', 'confirm mode'], [c.transactional, 'T', 'transactional']])),
      cell('state', c.state ?? ''), numCell('consumers', c.consumer_count), numCell('prefetch', c.prefetch_count),
      numCell('unacked', c.messages_unacknowledged), numCell('unconfirmed', c.messages_unconfirmed),
      rateCell('publish', pick(c, 'message_stats.publish_details.rate')),
      rateCell('deliver_get', pick(c, 'message_stats.deliver_get_details.rate')),
      rateCell('ack', pick(c, 'message_stats.ack_details.rate'))),
  });
  fill(root, h('h1', {}, 'Channels'), h('section', { class: 'card' }, list.el));
  return { refresh: list.refresh };
}

