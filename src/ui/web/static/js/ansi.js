// ANSI colours, rendered after escaping: text goes into spans through text nodes only.

const ESCAPE = /\u001b\[([0-9;?]*)([A-Za-z])|\u001b\][^\u0007\u001b]*(?:\u0007|\u001b\\)|\u001b[@-Z\\-_]/g;
const NAMES = ['black', 'red', 'green', 'yellow', 'blue', 'magenta', 'cyan', 'white'];

function reset() {
  return { fg: null, bg: null, bold: false, dim: false, italic: false, underline: false, rgb: null, bgRgb: null };
}

function color256(n) {
  if (n < 8) return { name: NAMES[n] };
  if (n < 16) return { name: `bright-${NAMES[n - 8]}` };
  if (n < 232) {
    const v = n - 16;
    const level = (x) => (x ? 55 + x * 40 : 0);
    return { rgb: `rgb(${level(Math.floor(v / 36))}, ${level(Math.floor(v / 6) % 6)}, ${level(v % 6)})` };
  }
  const grey = 8 + (n - 232) * 10;
  return { rgb: `rgb(${grey}, ${grey}, ${grey})` };
}

function apply(state, params) {
  const codes = params === '' ? [0] : params.split(';').map((p) => Number.parseInt(p || '0', 10));
  for (let i = 0; i < codes.length; i += 1) {
    const code = codes[i];
    if (code === 0) Object.assign(state, reset());
    else if (code === 1) state.bold = true;
    else if (code === 2) state.dim = true;
    else if (code === 3) state.italic = true;
    else if (code === 4) state.underline = true;
    else if (code === 22) { state.bold = false; state.dim = false; }
    else if (code === 23) state.italic = false;
    else if (code === 24) state.underline = false;
    else if (code >= 30 && code <= 37) { state.fg = NAMES[code - 30]; state.rgb = null; }
    else if (code >= 90 && code <= 97) { state.fg = `bright-${NAMES[code - 90]}`; state.rgb = null; }
    else if (code === 39) { state.fg = null; state.rgb = null; }
    else if (code >= 40 && code <= 47) { state.bg = NAMES[code - 40]; state.bgRgb = null; }
    else if (code >= 100 && code <= 107) { state.bg = `bright-${NAMES[code - 100]}`; state.bgRgb = null; }
    else if (code === 49) { state.bg = null; state.bgRgb = null; }
    else if (code === 38 || code === 48) {
      let picked = null;
      if (codes[i + 1] === 5) {
        picked = color256(codes[i + 2] || 0);
        i += 2;
      } else if (codes[i + 1] === 2) {
        const [r, g, b] = codes.slice(i + 2, i + 5).map((x) => Math.min(255, x || 0));
        picked = { rgb: `rgb(${r}, ${g}, ${b})` };
        i += 4;
      }
      if (picked && code === 38) { state.fg = picked.name || null; state.rgb = picked.rgb || null; }
      if (picked && code === 48) { state.bg = picked.name || null; state.bgRgb = picked.rgb || null; }
    }
  }
}

function styled(state) {
  return state.fg || state.bg || state.bold || state.dim || state.italic || state.underline
    || state.rgb || state.bgRgb;
}

function piece(text, state) {
  if (!styled(state)) return document.createTextNode(text);
  const span = document.createElement('span');
  const classes = [];
  if (state.fg) classes.push(`ansi-fg-${state.fg}`);
  if (state.bg) classes.push(`ansi-bg-${state.bg}`);
  if (state.bold) classes.push('ansi-bold');
  if (state.dim) classes.push('ansi-dim');
  if (state.italic) classes.push('ansi-italic');
  if (state.underline) classes.push('ansi-underline');
  span.className = classes.join(' ');
  // CSSOM from script is allowed by the CSP (only style= attributes in markup are not).
  if (state.rgb) span.style.color = state.rgb;
  if (state.bgRgb) span.style.backgroundColor = state.bgRgb;
  span.textContent = text;
  return span;
}

/** Nodes for one line: plain text nodes and styled spans; other escapes are dropped. */
export function ansiNodes(line, carry = reset()) {
  const nodes = [];
  const state = carry;
  let last = 0;
  ESCAPE.lastIndex = 0;
  for (let match = ESCAPE.exec(line); match; match = ESCAPE.exec(line)) {
    if (match.index > last) nodes.push(piece(line.slice(last, match.index), state));
    if (match[2] === 'm') apply(state, match[1]);
    last = ESCAPE.lastIndex;
  }
  if (last < line.length) nodes.push(piece(line.slice(last), state));
  return nodes;
}

export function stripAnsi(line) {
  return line.replace(ESCAPE, '');
}
