// A server-paged, filterable, sortable list (queues, exchanges, connections, channels).
// It fetches one page at a time with RabbitMQ's paging parameters, so it stays fast
// with tens of thousands of objects; it never fetches every page.

import { get, withQuery, ApiError } from './api.js';
import { h, fill, fmtNum, emptyRow, pick, errorText } from './dom.js';

// Filter, page and sort per list, kept while the user visits detail pages.
const states = new Map();

/**
 * opts: {key, path, fields, columns: [{label, num?, sort?}], row(item) -> <tr>, noun}
 * Test ids: `${key}-filter`, `${key}-regex`, `${key}-page-size`, `${key}-prev`, `${key}-next`,
 * `${key}-page-info`, `${key}-table`, `${key}-error`.
 */
export function pagedList(opts) {
  const { key } = opts;
  if (!states.has(key)) states.set(key, { page: 1, pageSize: 100, name: '', regex: false, sort: null, reverse: false });
  const st = states.get(key);
  const tid = (s) => ({ 'data-testid': `${key}-${s}` });
  let seq = 0;

  const filter = h('input', { type: 'search', placeholder: 'Filter by name', value: st.name, ...tid('filter'), id: `${key}-filter`, 'aria-label': 'Filter by name' });
  const regex = h('input', { type: 'checkbox', checked: st.regex, ...tid('regex') });
  const size = h('select', tid('page-size'), [20, 50, 100, 500].map((n) => h('option', { value: n, selected: n === st.pageSize }, String(n))));
  const prev = h('button', { type: 'button', ...tid('prev') }, '‹ Prev');
  const next = h('button', { type: 'button', ...tid('next') }, 'Next ›');
  const info = h('span', { class: 'page-info', ...tid('page-info') });
  const error = h('div', { class: 'result', ...tid('error') });
  const tbody = h('tbody');
  const headRow = h('tr');
  const el = h('div', { class: 'paged' },
    h('div', { class: 'toolbar' },
      filter, h('label', { class: 'inline' }, regex, ' Regex'),
      h('span', { class: 'spacer' }),
      prev, info, next,
      h('label', { class: 'inline' }, 'Page size ', size)),
    error,
    h('div', { class: 'table-wrap' }, h('table', { class: 'grid', ...tid('table') }, h('thead', {}, headRow), tbody)));

  const drawHeaders = () => fill(headRow, opts.columns.map((c) => {
    const th = h('th', { class: c.num ? 'num' : null, 'data-sort': c.sort || null }, c.label);
    if (c.sort) {
      th.classList.add('sortable');
      if (st.sort === c.sort) th.append(st.reverse ? ' ▼' : ' ▲');
      th.addEventListener('click', () => {
        if (st.sort === c.sort) st.reverse = !st.reverse;
        else { st.sort = c.sort; st.reverse = !!c.num; }
        st.page = 1;
        drawHeaders();
        refresh();
      });
    }
    return th;
  }));
  drawHeaders();

  let debounce = null;
  filter.addEventListener('input', () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => { st.name = filter.value; st.page = 1; refresh(); }, 250);
  });
  regex.addEventListener('change', () => { st.regex = regex.checked; st.page = 1; refresh(); });
  size.addEventListener('change', () => { st.pageSize = Number(size.value); st.page = 1; refresh(); });
  prev.addEventListener('click', () => { if (st.page > 1) { st.page--; refresh(); } });
  next.addEventListener('click', () => { st.page++; refresh(); });

  async function refresh() {
    const mine = ++seq;
    const params = {
      page: st.page, page_size: st.pageSize, name: st.name, use_regex: st.regex, pagination: true,
      sort: st.sort, sort_reverse: st.sort ? st.reverse : null, columns: opts.fields,
    };
    let data;
    try {
      data = await get(withQuery(opts.path, params));
    } catch (err) {
      if (mine !== seq) return;
      if (err instanceof ApiError && err.error === 'page_out_of_range' && st.page > 1) {
        st.page = 1;
        return refresh();
      }
      el.dataset.state = 'error';
      error.className = 'result error';
      error.textContent = errorText(err);
      return;
    }
    if (mine !== seq) return; // a newer request (filter typed meanwhile) wins
    if (Array.isArray(data)) data = pageLocally(data, st); // an API without paging
    error.className = 'result';
    error.textContent = '';
    const items = data.items || [];
    fill(tbody, items.length ? items.map(opts.row) : emptyRow(opts.columns.length,
      st.name ? `No ${opts.noun} match this filter.` : `No ${opts.noun}.`));
    const pages = Math.max(1, data.page_count || 0);
    st.page = Math.min(st.page, pages);
    prev.disabled = st.page <= 1;
    next.disabled = st.page >= pages;
    const first = items.length ? (st.page - 1) * st.pageSize + 1 : 0;
    const total = data.total_count != null && data.total_count !== data.filtered_count ? ` (${fmtNum(data.total_count)} total)` : '';
    info.textContent = (items.length
      ? `Page ${st.page} of ${pages} · ${fmtNum(first)}–${fmtNum(first + items.length - 1)} of ${fmtNum(data.filtered_count ?? items.length)}`
      : `No ${opts.noun}`) + total;
    Object.assign(el.dataset, {
      state: 'ok', page: st.page, pageCount: pages,
      filteredCount: data.filtered_count ?? items.length, totalCount: data.total_count ?? items.length,
    });
  }

  return { el, refresh };
}

function pageLocally(all, st) {
  let list = all;
  if (st.name) {
    let test;
    if (st.regex) {
      try { const re = new RegExp(st.name); test = (n) => re.test(n); } catch { test = () => false; }
    } else {
      const needle = st.name.toLowerCase();
      test = (n) => String(n).toLowerCase().includes(needle);
    }
    list = list.filter((x) => test(x.name ?? ''));
  }
  if (st.sort) {
    const dir = st.reverse ? -1 : 1;
    list = list.slice().sort((a, b) => {
      const x = pick(a, st.sort), y = pick(b, st.sort);
      return (x > y ? 1 : x < y ? -1 : 0) * dir;
    });
  }
  const start = (st.page - 1) * st.pageSize;
  return {
    items: list.slice(start, start + st.pageSize), page: st.page, page_size: st.pageSize,
    page_count: Math.ceil(list.length / st.pageSize), filtered_count: list.length, total_count: all.length,
  };
}
