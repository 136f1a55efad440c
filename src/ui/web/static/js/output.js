// A run's output: lines added in batches, at most maxLines kept in the DOM, auto-scroll
// that stops while the reader scrolls up and resumes at the bottom. Lines the server
// rendered (the page without JavaScript) are replaced by the first batch, which starts
// from the run's first event and adds colours.

import { ansiNodes } from './ansi.js';
import { h } from './dom.js';
import { formatCount } from './format.js';

const NEAR_BOTTOM_PX = 24;
const LINES_PER_FRAME = 400;

function visibleText(line) {
  // A carriage return rewrites the line in a terminal: keep what was written last.
  const cut = line.lastIndexOf('\r', line.length - 2);
  return cut >= 0 ? line.slice(cut + 1).replace(/\r$/, '') : line.replace(/\r$/, '');
}

export class OutputView {
  /** parts: {box, note, jump, follow, empty}; logHref: where the raw log is. */
  constructor(parts, { maxLines = 2000, logHref = null } = {}) {
    Object.assign(this, parts);
    this.maxLines = maxLines;
    this.logHref = logHref;
    this.hidden = 0; // lines dropped from the DOM
    this.count = 0; // lines in the DOM
    this.pending = [];
    this.frame = null;
    this.following = true;
    this.serverLines = this.box.childElementCount > 0;
    this.box.addEventListener('scroll', () => this.onScroll(), { passive: true });
    if (this.jump) this.jump.addEventListener('click', () => this.resume());
    this.setFollowing(true);
  }

  onScroll() {
    const atBottom = this.box.scrollHeight - this.box.scrollTop - this.box.clientHeight
      <= NEAR_BOTTOM_PX;
    if (atBottom !== this.following) this.setFollowing(atBottom);
  }

  setFollowing(following) {
    this.following = following;
    this.box.dataset.following = following ? 'yes' : 'no';
    if (this.jump) this.jump.hidden = following;
    if (this.follow) {
      this.follow.textContent = following ? 'Following the output' : 'Paused while you read';
    }
  }

  resume() {
    this.setFollowing(true);
    this.box.scrollTop = this.box.scrollHeight;
  }

  /** Queue events ({type, data}) for the next frame. */
  add(events) {
    for (const event of events) {
      if (event.type === 'run:output' || event.type === 'run:truncated') this.pending.push(event);
    }
    if (this.pending.length && this.frame === null) {
      this.frame = requestAnimationFrame(() => this.flush());
    }
  }

  lineNode(event) {
    if (event.type === 'run:truncated') {
      const omitted = event.data.omitted_events || 0;
      return h('div', { class: 'line line--marker' },
        `… ${formatCount(omitted)} events left out of the recorded log here: `,
        this.logHref ? h('a', { href: this.logHref, download: '' }, 'download the raw log') : 'see the raw log',
        ' …');
    }
    const stream = event.data.stream || 'stdout';
    const node = h('div', { class: `line line--${stream}` });
    node.append(...ansiNodes(visibleText(String(event.data.line ?? ''))));
    return node;
  }

  flush() {
    this.frame = null;
    if (this.serverLines) {
      this.serverLines = false;
      this.box.replaceChildren();
    }
    if (this.pending.length > this.maxLines) {
      this.hidden += this.pending.length - this.maxLines; // never built at all
      this.pending = this.pending.slice(-this.maxLines);
    }
    // A bounded slice a frame keeps the page responsive under a flood of lines.
    const batch = this.pending.splice(0, LINES_PER_FRAME);
    const fragment = document.createDocumentFragment();
    for (const event of batch) fragment.append(this.lineNode(event));
    this.box.append(fragment);
    this.count += batch.length;
    const excess = this.count - this.maxLines;
    if (excess > 0) {
      const range = document.createRange();
      range.setStartBefore(this.box.firstChild);
      range.setEndAfter(this.box.children[excess - 1]);
      range.deleteContents();
      this.hidden += excess;
      this.count = this.maxLines;
    }
    this.updateNote();
    if (this.empty) this.empty.hidden = this.count > 0;
    this.box.hidden = this.count === 0; // no empty output box
    if (this.following) this.box.scrollTop = this.box.scrollHeight;
    if (this.pending.length) this.frame = requestAnimationFrame(() => this.flush());
  }

  updateNote() {
    if (!this.note) return;
    this.note.hidden = this.hidden === 0;
    if (!this.hidden) return;
    this.note.replaceChildren(
      `${formatCount(this.hidden)} earlier line${this.hidden === 1 ? '' : 's'} hidden — `,
      this.logHref ? h('a', { href: this.logHref, download: '' }, 'download the raw log') : 'see the raw log',
      ' to read them all.');
  }
}
