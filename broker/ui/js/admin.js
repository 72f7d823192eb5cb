// Admin: users, virtual hosts and permissions (list, add, delete).

import { get, put, del, url, withQuery } from './api.js';
import {
  h, fill, cell, numCell, table, emptyRow, field, onSubmit, dangerButton, showResult, showError, setOptions,
} from './dom.js';

export function mount(root) {
  const tid = (s) => ({ 'data-testid': s });
  const users = table('users-table', ['Name', 'Tags', 'Can log in with password', '']);
  const vhosts = table('vhosts-table', ['Name', 'Description', { label: 'Ready', num: true }, { label: 'Unacked', num: true }, { label: 'Total', num: true }, '']);
  const perms = table('permissions-table', ['User', 'Virtual host', 'Configure', 'Write', 'Read', '']);
  const usersResult = h('div', { class: 'result', ...tid('user-result') });
  const vhostsResult = h('div', { class: 'result', ...tid('vhost-result') });
  const permsResult = h('div', { class: 'result', ...tid('permission-result') });

  const userForm = h('form', { class: 'form', ...tid('user-form') },
    h('h3', {}, 'Add or update a user'),
    h('div', { class: 'row' },
      field('Username', h('input', { name: 'name', required: true, autocomplete: 'off', ...tid('user-name') })),
      field('Password', h('input', { name: 'password', type: 'password', required: true, autocomplete: 'new-password', ...tid('user-password') })),
      field('Tags', h('input', { name: 'tags', list: 'tag-list', placeholder: 'administrator', ...tid('user-tags') }), 'comma-separated'),
      h('datalist', { id: 'tag-list' }, ['administrator', 'monitoring', 'policymaker', 'management', 'impersonator']
        .map((t) => h('option', { value: t })))),
    h('div', { class: 'actions' }, h('button', { type: 'submit', ...tid('user-submit') }, 'Save user'), usersResult));
  onSubmit(userForm, usersResult, async (f) => {
    const name = f.elements.name.value.trim();
    const tags = f.elements.tags.value.split(',').map((t) => t.trim()).filter(Boolean).join(',');
    await put(url('users', name), { password: f.elements.password.value, tags });
    f.elements.password.value = '';
    refresh();
    return `User '${name}' saved.`;
  });

  const vhostForm = h('form', { class: 'form', ...tid('vhost-form') },
    h('h3', {}, 'Add a virtual host'),
    h('div', { class: 'row' },
      field('Name', h('input', { name: 'name', required: true, ...tid('vhost-name') })),
      field('Description', h('input', { name: 'description', ...tid('vhost-description') }))),
    h('div', { class: 'actions' }, h('button', { type: 'submit', ...tid('vhost-submit') }, 'Add virtual host'), vhostsResult));
  onSubmit(vhostForm, vhostsResult, async (f) => {
    const name = f.elements.name.value.trim();
    await put(url('vhosts', name), { description: f.elements.description.value });
    refresh();
    return `Virtual host '${name}' added.`;
  });

  const permUser = h('select', { name: 'user', ...tid('permission-user') });
  const permVhost = h('select', { name: 'vhost', ...tid('permission-vhost') });
  const permForm = h('form', { class: 'form', ...tid('permission-form') },
    h('h3', {}, 'Set permission'),
    h('div', { class: 'row' },
      field('User', permUser), field('Virtual host', permVhost),
      field('Configure regexp', h('input', { name: 'configure', value: '.*', ...tid('permission-configure') })),
      field('Write regexp', h('input', { name: 'write', value: '.*', ...tid('permission-write') })),
      field('Read regexp', h('input', { name: 'read', value: '.*', ...tid('permission-read') }))),
    h('div', { class: 'actions' }, h('button', { type: 'submit', ...tid('permission-submit') }, 'Set permission'), permsResult));
  onSubmit(permForm, permsResult, async (f) => {
    await put(url('permissions', permVhost.value, permUser.value), {
      configure: f.elements.configure.value, write: f.elements.write.value, read: f.elements.read.value,
    });
    refresh();
    return `Permission of '${permUser.value}' on '${permVhost.value}' set.`;
  });

  fill(root,
    h('h1', {}, 'Admin'),
    h('section', { class: 'card' }, h('h2', {}, 'Users'), h('div', { class: 'table-wrap' }, users.el), userForm),
    h('section', { class: 'card' }, h('h2', {}, 'Virtual hosts'), h('div', { class: 'table-wrap' }, vhosts.el), vhostForm),
    h('section', { class: 'card' }, h('h2', {}, 'Permissions'), h('div', { class: 'table-wrap' }, perms.el), permForm));

  const remove = (what, path, resultEl, extra) => dangerButton('Delete', { class: 'danger small', 'data-testid': what + '-delete' }, async () => {
    try {
      await del(path);
      showResult(resultEl, true, extra);
      refresh();
    } catch (e) { showError(resultEl, e); }
  });

  async function refresh() {
    const [us, vs, ps] = await Promise.all([
      get('/api/users').catch((e) => { showError(usersResult, e); return null; }),
      get(withQuery('/api/vhosts', { columns: 'name,description,messages_ready,messages_unacknowledged,messages' })),
      get('/api/permissions').catch((e) => { showError(permsResult, e); return null; }),
    ]);
    if (us) {
      fill(users.tbody, us.length ? us.map((u) => h('tr', { 'data-user': u.name },
        cell('name', u.name), cell('tags', tagsText(u.tags)), cell('password', u.password_hash ? 'yes' : 'no'),
        cell('action', remove('user', url('users', u.name), usersResult, `User '${u.name}' deleted.`))))
        : emptyRow(4, 'No users.'));
      setOptions(permUser, us.map((u) => u.name).sort());
    }
    fill(vhosts.tbody, vs.map((v) => h('tr', { 'data-vhost': v.name },
      cell('name', v.name), cell('description', v.description ?? ''),
      numCell('ready', v.messages_ready ?? 0), numCell('unacked', v.messages_unacknowledged ?? 0), numCell('messages', v.messages ?? 0),
      cell('action', remove('vhost', url('vhosts', v.name), vhostsResult, `Virtual host '${v.name}' deleted.`)))));
    setOptions(permVhost, vs.map((v) => v.name).sort());
    if (ps) {
      fill(perms.tbody, ps.length ? ps.map((p) => h('tr', { 'data-user': p.user, 'data-vhost': p.vhost },
        cell('user', p.user), cell('vhost', p.vhost), cell('configure', p.configure), cell('write', p.write), cell('read', p.read),
        cell('action', remove('permission', url('permissions', p.vhost, p.user), permsResult, `Permission of '${p.user}' on '${p.vhost}' cleared.`))))
        : emptyRow(6, 'No permissions.'));
    }
  }

  return { refresh };
}

// RabbitMQ 3.10 answers tags as a list; older versions as a comma-separated string.
function tagsText(tags) {
  return Array.isArray(tags) ? tags.join(', ') : String(tags ?? '');
}

