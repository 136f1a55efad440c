// Building DOM without HTML strings: text always goes in through textContent/text nodes.

import { url } from './base.js';

const SVG_NS = 'http://www.w3.org/2000/svg';

function setProps(node, props) {
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') node.setAttribute('class', value);
    else if (key === 'text') node.textContent = String(value);
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') {
      node.addEventListener(key.slice(2), value);
    } else node.setAttribute(key, value === true ? '' : String(value));
  }
}

/** Append children (nodes, or anything else as text) to node. */
export function append(node, ...children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** An HTML element: h('a', {href, class, text}, ...children). */
export function h(tag, props, ...children) {
  const node = document.createElement(tag);
  setProps(node, props);
  return append(node, ...children);
}

/** An SVG element built with createElementNS (attributes, never style=). */
export function svg(tag, props, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  setProps(node, props);
  return append(node, ...children);
}

export function $(selector, root = document) {
  return root.querySelector(selector);
}

export function $$(selector, root = document) {
  return Array.from(root.querySelectorAll(selector));
}

/** Replace all children of node. */
export function replaceChildren(node, ...children) {
  node.replaceChildren();
  return append(node, ...children);
}

/** The path of a run's page. */
export function runHref(runId) {
  return url(`/runs/${encodeURIComponent(runId)}`);
}
