// The status badge: the word itself, coloured by class (never colour alone).

import { h } from './dom.js';

export function setBadge(node, status) {
  const value = status || 'unknown';
  node.className = `badge badge--${value}`;
  node.textContent = value;
  node.dataset.status = value;
}

export function badge(status) {
  const node = h('span');
  setBadge(node, status);
  return node;
}
