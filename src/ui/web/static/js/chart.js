// Per-day charts as inline SVG (createElementNS, classes for colours, no style attributes).
// Drawn at the pixel width of their box (text stays 12 px on a phone); each day, and each
// status of a day, is a link (keyboard focusable, named by its figures) when `link` is given.

import { svg } from './dom.js';

export const DEFAULT_WIDTH = 640;
const HEIGHT = 220;
const PAD = { top: 12, right: 12, bottom: 28, left: 48 };
const MIN_WIDTH = 240;

/** The last `days` calendar days (UTC, as the API keys them), oldest first, zero-filled. */
export function dailySeries(perDay, days) {
  const out = [];
  const today = new Date();
  for (let i = days - 1; i >= 0; i -= 1) {
    const day = new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(),
      today.getUTCDate() - i)).toISOString().slice(0, 10);
    const bucket = perDay[day] || { total: 0, ok: 0, failed: 0 };
    out.push({ day, total: bucket.total, ok: bucket.ok, failed: bucket.failed });
  }
  return out;
}

/** The same days with the duration trend's figures ({day, runs, p50_s, p95_s}). */
export function trendSeries(trend, days) {
  const byDay = new Map((trend || []).map((entry) => [entry.day, entry]));
  return dailySeries({}, days).map(({ day }) => {
    const entry = byDay.get(day);
    return { day, runs: entry ? entry.runs : 0, p50: entry ? entry.p50_s : null,
      p95: entry ? entry.p95_s : null };
  });
}

/** The width to draw at: the box's own (whole pixels), or DEFAULT_WIDTH when unknown. */
export function widthOf(box) {
  const width = Math.floor(box && box.clientWidth ? box.clientWidth : 0);
  return width ? Math.max(MIN_WIDTH, width) : DEFAULT_WIDTH;
}

function frame(label, width) {
  return svg('svg', {
    viewBox: `0 0 ${width} ${HEIGHT}`, class: 'chart__svg', role: 'group', 'aria-label': label,
    preserveAspectRatio: 'xMidYMid meet',
  });
}

// A round top for the axis whose half is a whole number too (the middle grid line).
function niceMax(value) {
  if (value <= 4) return 4;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  const top = Math.ceil(value / magnitude) * magnitude;
  return top % 2 ? top + magnitude : top;
}

function axes(root, max, series, format, width) {
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  for (const fraction of [0, 0.5, 1]) {
    const y = PAD.top + plotH * (1 - fraction);
    root.append(svg('line', { x1: PAD.left, x2: width - PAD.right, y1: y, y2: y, class: 'chart__grid' }));
    root.append(svg('text', { x: PAD.left - 6, y: y + 4, class: 'chart__tick chart__tick--y' },
      format(max * fraction)));
  }
  const step = (width - PAD.left - PAD.right) / series.length;
  const every = Math.max(Math.ceil(series.length / 7), Math.ceil(44 / step)); // labels apart
  series.forEach((point, i) => {
    if ((series.length - 1 - i) % every !== 0) return; // the latest day always has its label
    root.append(svg('text', { x: PAD.left + step * (i + 0.5), y: HEIGHT - 8, class: 'chart__tick' },
      point.day.slice(5)));
  });
  return step;
}

/** `children` inside a link named `label` to `href`, or a group titled `label` without one. */
function linked(href, label, ...children) {
  if (!href) return svg('g', {}, svg('title', {}, label), ...children);
  return svg('a', { href, 'aria-label': label, class: 'chart__link' }, svg('title', {}, label), ...children);
}

const plural = (count, word) => `${count} ${word}${count === 1 ? '' : 's'}`;

/**
 * Stacked bars per day: ok, failed, other (cancelled, interrupted). With `link(day, status)`
 * (status '' for every run) the day's column links to its runs, the ok and failed parts
 * to those runs.
 */
export function runsChart(series, { width = DEFAULT_WIDTH, link = null } = {}) {
  const total = series.reduce((sum, p) => sum + p.total, 0);
  const root = frame(`Runs per day over ${series.length} days: ${total} in all`, width);
  const max = niceMax(Math.max(1, ...series.map((p) => p.total)));
  const step = axes(root, max, series, (v) => String(Math.round(v)), width);
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const barW = Math.max(2, step * 0.7);
  series.forEach((point, i) => {
    const x = PAD.left + step * i + (step - barW) / 2;
    let y = PAD.top + plotH;
    const other = point.total - point.ok - point.failed;
    const summary = `${plural(point.total, 'run')} on ${point.day}: ${point.ok} ok, ${point.failed} failed`
      + (other ? `, ${other} other` : '');
    const group = svg('g', { class: 'chart__bar' });
    group.append(linked(link && point.total ? link(point.day, '') : null, summary, svg('rect', {
      x: PAD.left + step * i, y: PAD.top, width: step, height: plotH, class: 'chart__hit' })));
    for (const [kind, count] of [['ok', point.ok], ['failed', point.failed], ['other', other]]) {
      if (count <= 0) continue;
      const height = (count / max) * plotH;
      y -= height;
      const rect = svg('rect', { x, y, width: barW, height, class: `chart__rect chart__rect--${kind}` });
      const href = link && kind !== 'other' ? link(point.day, kind) : null;
      group.append(linked(href, `${plural(count, `${kind} run`)} on ${point.day}`, rect));
    }
    root.append(group);
  });
  return root;
}

/** Success rate per day (ok / (ok + failed)) as a line with dots; days without runs are gaps. */
export function rateChart(series, { width = DEFAULT_WIDTH, link = null } = {}) {
  const root = frame(`Success rate per day over ${series.length} days`, width);
  const step = axes(root, 1, series, (v) => `${Math.round(v * 100)} %`, width);
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  let path = '';
  let pen = false;
  const dots = [];
  series.forEach((point, i) => {
    const finished = point.ok + point.failed;
    if (!finished) {
      pen = false;
      return;
    }
    const rate = point.ok / finished;
    const x = PAD.left + step * (i + 0.5);
    const y = PAD.top + plotH * (1 - rate);
    path += `${pen ? 'L' : 'M'}${x.toFixed(1)},${y.toFixed(1)} `;
    pen = true;
    const label = `${Math.round(rate * 100)} % of ${finished} finished runs on ${point.day}`;
    const dot = svg('circle', { cx: x, cy: y, r: 5, class: 'chart__dot' });
    dots.push(linked(link ? link(point.day, '') : null, label, dot));
  });
  if (path) root.append(svg('path', { d: path.trim(), class: 'chart__line' }));
  root.append(...dots);
  return root;
}

/** Seconds for an axis or a label: 0.3 s, 12 s, 2.5 min, 1.5 h. */
function seconds(value) {
  if (value >= 5400) return `${Number((value / 3600).toFixed(1))} h`;
  if (value >= 120) return `${Number((value / 60).toFixed(1))} min`;
  return `${Number(value.toFixed(value >= 10 ? 0 : 1))} s`;
}

/** The duration trend: p95 and p50 per day as two lines; each day's dots link to its runs. */
export function durationChart(series, { width = DEFAULT_WIDTH, link = null } = {}) {
  const timed = series.filter((p) => p.p95 !== null && p.p95 !== undefined);
  const root = frame(`Run duration per day over ${series.length} days, p50 and p95`, width);
  const max = niceMax(Math.max(1, ...timed.map((p) => p.p95)));
  const step = axes(root, max, series, seconds, width);
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const yOf = (value) => PAD.top + plotH * (1 - value / max);
  const paths = { p95: '', p50: '' };
  const pens = { p95: false, p50: false };
  const days = [];
  series.forEach((point, i) => {
    const x = PAD.left + step * (i + 0.5);
    if (point.p95 === null || point.p95 === undefined) {
      pens.p95 = pens.p50 = false;
      return;
    }
    for (const key of ['p95', 'p50']) {
      paths[key] += `${pens[key] ? 'L' : 'M'}${x.toFixed(1)},${yOf(point[key]).toFixed(1)} `;
      pens[key] = true;
    }
    const label = `${plural(point.runs, 'run')} on ${point.day}: p50 ${seconds(point.p50)}, p95 ${seconds(point.p95)}`;
    const dots = ['p95', 'p50'].map((key) => svg('circle', {
      cx: x, cy: yOf(point[key]), r: 5, class: `chart__dot chart__dot--${key}` }));
    days.push(linked(link ? link(point.day, '') : null, label, ...dots));
  });
  for (const key of ['p95', 'p50']) {
    if (paths[key]) root.append(svg('path', { d: paths[key].trim(), class: `chart__line chart__line--${key}` }));
  }
  root.append(...days);
  return root;
}
