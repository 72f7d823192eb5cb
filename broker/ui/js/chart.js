// A small SVG line chart (no library): time on x, values on y, one path per series.

import { h, fill } from './dom.js';

const M = { left: 58, right: 14, top: 10, bottom: 24 };

/**
 * Draws series = [{key, label, points: [{t, v}]}] into container, replacing what was there.
 * The x axis ends at the newest sample (so the browser's clock does not matter) and spans windowMs.
 */
export function lineChart(container, series, { height = 200, windowMs = 600_000, format = String, minStep = 0 } = {}) {
  const width = Math.max(320, Math.floor(container.clientWidth || 800));
  const all = series.flatMap((s) => s.points);
  const svg = h('svg:svg', {
    viewBox: `0 0 ${width} ${height}`, width, height, class: 'chart', role: 'img',
    'aria-label': series.map((s) => s.label).join(', '),
  });
  if (all.length === 0) {
    svg.append(h('svg:text', { x: width / 2, y: height / 2, 'text-anchor': 'middle', class: 'axis' }, 'Collecting data…'));
    fill(container, svg, legend(series, format));
    return;
  }
  const tMax = Math.max(...all.map((p) => p.t));
  const tMin = tMax - windowMs;
  // Four grid steps of a nice size (1, 2 or 5 × 10^n), at least minStep so that the labels,
  // as formatted, differ (whole numbers for counts, tenths for rates).
  const yStep = Math.max(minStep, niceCeil(Math.max(...all.filter((p) => p.t >= tMin).map((p) => p.v), 0) / 4));
  const yMax = yStep * 4;
  const plotW = width - M.left - M.right;
  const plotH = height - M.top - M.bottom;
  const x = (t) => M.left + ((t - tMin) / windowMs) * plotW;
  const y = (v) => M.top + plotH - (v / yMax) * plotH;

  for (let i = 0; i <= 4; i++) {
    const v = yStep * i;
    svg.append(
      h('svg:line', { x1: M.left, x2: width - M.right, y1: y(v), y2: y(v), class: 'grid' }),
      h('svg:text', { x: M.left - 6, y: y(v) + 4, 'text-anchor': 'end', class: 'axis' }, format(v)),
    );
  }
  const step = windowMs >= 300_000 ? 120_000 : 60_000;
  for (let t = Math.ceil(tMin / step) * step; t <= tMax; t += step) {
    const d = new Date(t);
    const label = String(d.getHours()).padStart(2, '0') + ':' + String(d.getMinutes()).padStart(2, '0');
    svg.append(h('svg:text', { x: x(t), y: height - 6, 'text-anchor': 'middle', class: 'axis' }, label));
  }
  series.forEach((s, i) => {
    const pts = s.points.filter((p) => p.t >= tMin).sort((a, b) => a.t - b.t);
    const d = pts.map((p, j) => (j ? 'L' : 'M') + x(p.t).toFixed(1) + ' ' + y(p.v).toFixed(1)).join(' ');
    svg.append(h('svg:path', { d: d || 'M0 0', class: 'line s' + i, 'data-series': s.key, 'data-points': pts.length }));
  });
  fill(container, svg, legend(series, format));
}

function legend(series, format) {
  return h('div', { class: 'legend' }, series.map((s, i) => {
    const last = s.points.length ? s.points.reduce((a, b) => (b.t > a.t ? b : a)).v : null;
    return h('span', { 'data-series': s.key },
      h('i', { class: 'swatch s' + i }), s.label, ' ', h('b', {}, last == null ? '' : format(last)));
  }));
}

/** Rounds up to 1, 2 or 5 × 10^n, so the y axis has readable ticks. */
function niceCeil(v) {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}
