// Per-day charts as inline SVG (createElementNS, classes for colours, no style attributes).

import { svg } from './dom.js';

const WIDTH = 640;
const HEIGHT = 220;
const PAD = { top: 12, right: 12, bottom: 28, left: 40 };

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

function frame(label) {
  return svg('svg', {
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`, class: 'chart__svg', role: 'img', 'aria-label': label,
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

function axes(root, max, series, format) {
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  for (const fraction of [0, 0.5, 1]) {
    const y = PAD.top + plotH * (1 - fraction);
    root.append(svg('line', { x1: PAD.left, x2: WIDTH - PAD.right, y1: y, y2: y, class: 'chart__grid' }));
    root.append(svg('text', { x: PAD.left - 6, y: y + 4, class: 'chart__tick chart__tick--y' },
      format(max * fraction)));
  }
  const step = (WIDTH - PAD.left - PAD.right) / series.length;
  const every = Math.ceil(series.length / 7);
  series.forEach((point, i) => {
    if ((series.length - 1 - i) % every !== 0) return; // the latest day always has its label
    root.append(svg('text', { x: PAD.left + step * (i + 0.5), y: HEIGHT - 8, class: 'chart__tick' },
      point.day.slice(5)));
  });
  return step;
}

/** Stacked bars per day: ok, failed, other (cancelled, interrupted). */
export function runsChart(series) {
  const total = series.reduce((sum, p) => sum + p.total, 0);
  const root = frame(`Runs per day over ${series.length} days: ${total} in all`);
  const max = niceMax(Math.max(1, ...series.map((p) => p.total)));
  const step = axes(root, max, series, (v) => String(Math.round(v)));
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const barW = Math.max(2, step * 0.7);
  series.forEach((point, i) => {
    const x = PAD.left + step * i + (step - barW) / 2;
    let y = PAD.top + plotH;
    const group = svg('g', { class: 'chart__bar' },
      svg('title', {}, `${point.day}: ${point.total} runs, ${point.ok} ok, ${point.failed} failed`));
    const parts = [['ok', point.ok], ['failed', point.failed],
      ['other', point.total - point.ok - point.failed]];
    for (const [kind, count] of parts) {
      if (count <= 0) continue;
      const height = (count / max) * plotH;
      y -= height;
      group.append(svg('rect', { x, y, width: barW, height, class: `chart__rect chart__rect--${kind}` }));
    }
    root.append(group);
  });
  return root;
}

/** Success rate per day (ok / (ok + failed)) as a line with dots; days without runs are gaps. */
export function rateChart(series) {
  const root = frame(`Success rate per day over ${series.length} days`);
  const step = axes(root, 1, series, (v) => `${Math.round(v * 100)} %`);
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  let path = '';
  let pen = false;
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
    root.append(svg('circle', { cx: x, cy: y, r: 4, class: 'chart__dot' },
      svg('title', {}, `${point.day}: ${Math.round(rate * 100)} % of ${finished} finished runs`)));
  });
  if (path) root.insertBefore(svg('path', { d: path.trim(), class: 'chart__line' }), root.querySelector('circle'));
  return root;
}
