// The confirmation dialog for destructive actions: native <dialog>, focus kept inside,
// Escape or Cancel answer no.

import { $, h, replaceChildren } from './dom.js';
import { formatValue } from './format.js';

function focusables(dialog) {
  return Array.from(dialog.querySelectorAll('button, [href], input, select, textarea'))
    .filter((node) => !node.disabled && !node.hidden);
}

function trapTab(event) {
  if (event.key !== 'Tab') return;
  const items = focusables(event.currentTarget);
  if (!items.length) return;
  const first = items[0];
  const last = items[items.length - 1];
  if (event.shiftKey && document.activeElement === first) {
    event.preventDefault();
    last.focus();
  } else if (!event.shiftKey && document.activeElement === last) {
    event.preventDefault();
    first.focus();
  }
}

/** Ask before running a destructive action; resolves true only on an explicit yes. */
export function confirmDialog({ text, params = {}, confirmLabel = 'Yes, run it' }) {
  const dialog = $('[data-confirm]');
  const ok = $('[data-confirm-ok]', dialog);
  const cancel = $('[data-confirm-cancel]', dialog);
  $('[data-confirm-text]', dialog).textContent = text;
  const entries = Object.entries(params);
  replaceChildren($('[data-confirm-params]', dialog), entries.map(([key, value]) =>
    h('div', { class: 'facts__row' }, h('dt', { text: key }), h('dd', { text: formatValue(value) }))));
  ok.textContent = confirmLabel;
  const opener = document.activeElement;
  return new Promise((resolve) => {
    const onOk = () => dialog.close('confirm');
    const onCancel = () => dialog.close('cancel');
    const onClose = () => {
      ok.removeEventListener('click', onOk);
      cancel.removeEventListener('click', onCancel);
      dialog.removeEventListener('keydown', trapTab);
      if (opener && opener.focus) opener.focus();
      resolve(dialog.returnValue === 'confirm');
    };
    ok.addEventListener('click', onOk);
    cancel.addEventListener('click', onCancel);
    dialog.addEventListener('keydown', trapTab);
    dialog.addEventListener('close', onClose, { once: true });
    dialog.returnValue = '';
    dialog.showModal();
    cancel.focus(); // the safe choice has the focus
  });
}
