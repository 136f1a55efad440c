// The auto-refresh toggle: a fallback to the live connection that polls every few seconds.

const KEY = 'scp.autorefresh';
const INTERVAL_MS = 5000;
const refreshers = new Set();
let timer = null;

function stored() {
  try {
    return localStorage.getItem(KEY) === 'on';
  } catch {
    return false;
  }
}

function tick() {
  for (const fn of refreshers) {
    Promise.resolve().then(fn).catch(() => {});
  }
}

function setEnabled(enabled) {
  clearInterval(timer);
  timer = enabled ? setInterval(tick, INTERVAL_MS) : null;
  try {
    localStorage.setItem(KEY, enabled ? 'on' : 'off');
  } catch {
    // storage may be disabled; the toggle still works for this page
  }
}

export function isAutoRefreshOn() {
  return timer !== null;
}

/** Call fn every few seconds while auto-refresh is on; returns the function that stops it. */
export function onRefresh(fn) {
  refreshers.add(fn);
  return () => refreshers.delete(fn);
}

/** Fetch everything the page polls for, once, now (the "Refresh status" button). */
export function refreshNow() {
  tick();
}

export function initAutoRefresh() {
  const now = document.querySelector('[data-refresh-now]');
  if (now) {
    now.hidden = false; // it needs this script: without it the page is as fresh as its load
    now.addEventListener('click', refreshNow);
  }
  const box = document.querySelector('[data-autorefresh]');
  if (!box) return;
  box.checked = stored();
  setEnabled(box.checked);
  box.addEventListener('change', () => {
    setEnabled(box.checked);
    if (box.checked) tick();
  });
}
