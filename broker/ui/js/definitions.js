// Definitions: export as a JSON file download, import from an uploaded file.

import { get, post } from './api.js';
import { h, fill, field, onSubmit } from './dom.js';

const KINDS = [
  ['vhosts', 'virtual host', 'virtual hosts'], ['users', 'user', 'users'], ['permissions', 'permission', 'permissions'],
  ['exchanges', 'exchange', 'exchanges'], ['queues', 'queue', 'queues'], ['bindings', 'binding', 'bindings'],
  ['policies', 'policy', 'policies'],
];

export function mount(root, _params, app) {
  const tid = (s) => ({ 'data-testid': s });
  const exportResult = h('div', { class: 'result', ...tid('definitions-export-result') });
  const importResult = h('div', { class: 'result', ...tid('definitions-import-result') });

  const exportForm = h('form', { class: 'card form', ...tid('definitions-export-form') },
    h('h2', {}, 'Export definitions'),
    h('p', { class: 'muted' }, 'Users, virtual hosts, permissions, exchanges, queues and bindings, in the RabbitMQ definitions format.'),
    h('div', { class: 'actions' }, h('button', { type: 'submit', ...tid('definitions-export') }, 'Download definitions'), exportResult));
  onSubmit(exportForm, exportResult, async () => {
    const defs = await get('/api/definitions');
    const text = JSON.stringify(defs, null, 2);
    const node = (app.node && app.node.node) || 'broker';
    const file = `${node.replace(/[^\w.-]+/g, '_')}_${new Date().toISOString().slice(0, 10)}.json`;
    const a = h('a', { href: URL.createObjectURL(new Blob([text], { type: 'application/json' })), download: file, ...tid('definitions-download-link') });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
    exportResult.dataset.file = file;
    return `Exported ${summary(defs)} as ${file}.`;
  });

  const fileInput = h('input', { type: 'file', name: 'file', accept: '.json,application/json', required: true, ...tid('definitions-file') });
  const importForm = h('form', { class: 'card form', ...tid('definitions-import-form') },
    h('h2', {}, 'Import definitions'),
    h('p', { class: 'muted' }, 'Objects in the file are added; existing ones are left as they are.'),
    field('Definitions file (JSON)', fileInput),
    h('div', { class: 'actions' }, h('button', { type: 'submit', ...tid('definitions-import') }, 'Upload and import'), importResult));
  onSubmit(importForm, importResult, async () => {
    const file = fileInput.files[0];
    if (!file) throw new Error('Choose a definitions file first.');
    const text = await file.text();
    let defs;
    try { defs = JSON.parse(text); } catch (e) { throw new Error(`${file.name} is not valid JSON: ${e.message}`); }
    await post('/api/definitions', text);
    return `Imported ${summary(defs)} from ${file.name}.`;
  });

  fill(root, h('h1', {}, 'Definitions'), exportForm, importForm);
  return null;
}

function summary(defs) {
  const parts = KINDS.filter(([k]) => Array.isArray(defs[k]) && defs[k].length)
    .map(([k, one, many]) => `${defs[k].length} ${defs[k].length === 1 ? one : many}`);
  return parts.length ? parts.join(', ') : 'no objects';
}
