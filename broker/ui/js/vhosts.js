// The list of vhost names, for the vhost pickers of the add forms.

import { get, withQuery } from './api.js';
import { setOptions } from './dom.js';

/** Fills a <select> with the vhost names (keeps the choice; "/" first by default). */
export async function fillVhosts(sel) {
  const list = await get(withQuery('/api/vhosts', { columns: 'name' }));
  setOptions(sel, list.map((v) => v.name).sort());
}
