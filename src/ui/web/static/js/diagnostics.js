// Settings diagnostics as warning banners (rendered by the server, GET /api/diagnostics):
// each can be dismissed for this browser session (sessionStorage remembers its text).

import { $$ } from './dom.js';

const KEY = 'scp.dismissed-diagnostics';

function dismissed() {
  try {
    return new Set(JSON.parse(sessionStorage.getItem(KEY) || '[]'));
  } catch {
    return new Set();
  }
}

function remember(texts) {
  try {
    sessionStorage.setItem(KEY, JSON.stringify([...texts]));
  } catch {
    // storage may be disabled: dismissing still hides it on this page
  }
}

export function initDiagnostics(root) {
  if (!root) return;
  const gone = dismissed();
  const items = $$('[data-diagnostic]', root);
  const update = () => {
    root.hidden = items.every((item) => item.hidden);
  };
  for (const item of items) {
    const text = item.querySelector('.banner__text').textContent;
    const button = item.querySelector('[data-diagnostic-dismiss]');
    item.hidden = gone.has(text);
    button.hidden = false; // it needs this script
    button.addEventListener('click', () => {
      item.hidden = true;
      gone.add(text);
      remember(gone);
      update();
    });
  }
  update();
}
