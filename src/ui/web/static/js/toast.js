// Toasts: short messages in the page's aria-live region, dismissed by a button or by time.

import { h } from './dom.js';

const LIFETIME_MS = 10000;

/** Show a toast. kind: 'ok' | 'failed' | 'info'; link: {href, text}. */
export function toast(message, { kind = 'info', link = null } = {}) {
  const region = document.querySelector('[data-toasts]');
  if (!region) return null;
  const item = h('div', { class: `toast toast--${kind}` },
    h('p', { class: 'toast__text' }, message,
      link ? [' ', h('a', { href: link.href, text: link.text })] : null),
  );
  const close = h('button', { type: 'button', class: 'toast__close', 'aria-label': 'Dismiss' }, '×');
  item.append(close);
  let timer = null;
  const remove = () => {
    clearTimeout(timer);
    item.remove();
  };
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(remove, LIFETIME_MS);
  };
  close.addEventListener('click', remove);
  // Stay while the reader points at or tabs into the toast.
  item.addEventListener('mouseenter', () => clearTimeout(timer));
  item.addEventListener('mouseleave', arm);
  item.addEventListener('focusin', () => clearTimeout(timer));
  item.addEventListener('focusout', arm);
  region.append(item);
  arm();
  return item;
}
