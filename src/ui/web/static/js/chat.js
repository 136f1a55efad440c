// The chat panel on every page: messages live (chat:message), @run: autocomplete (ARIA combobox).

import { api } from './api.js';
import { badge } from './badge.js';
import { $, append, h, replaceChildren, runHref } from './dom.js';
import { formatFullTime, formatTime } from './format.js';
import { on } from './live.js';

const MENTION = /@run:(\d{8}T\d{9}Z-[0-9a-f]{8})/g;
const TRIGGER = /@run:([\w:.-]*)$/;

/** A run id short enough not to wrap (its random tail); the full one is its title. */
export function shortRunId(runId) {
  return `…${runId.slice(-8)}`;
}

/** A run id that never breaks one letter per line: one unbreakable box, cut with an
 * ellipsis if it is wider than its line; *text* is what shows (the id by default). */
export function runIdBox(runId, text = runId) {
  return h('span', { class: 'runid', title: runId, text });
}

/** Message text as nodes: plain text, and each known @run:<id> as a link with its badge. */
export function messageBody(message) {
  const body = h('p', { class: 'chatmsg__text' });
  const text = message.text || '';
  let last = 0;
  for (const match of text.matchAll(MENTION)) {
    append(body, text.slice(last, match.index));
    const run = (message.runs || {})[match[1]];
    if (run) {
      append(body, h('a', { class: 'mention', href: runHref(match[1]), title: match[1] },
        badge(run.status), ` ${run.subtype}: `,
        run.summary ? run.summary : runIdBox(match[1], shortRunId(match[1]))));
    } else {
      append(body, '@run:', runIdBox(match[1]));
    }
    last = match.index + match[0].length;
  }
  return append(body, text.slice(last));
}

function messageItem(message) {
  return h('li', { class: 'chatmsg', dataset: { messageId: message.message_id } },
    h('p', { class: 'chatmsg__meta' },
      h('span', { class: 'chatmsg__author', text: (message.author || {}).name || 'someone' }),
      ' · ',
      h('time', { datetime: message.at, text: formatTime(message.at),
        title: formatFullTime(message.at) })),
    messageBody(message));
}

function addMessage(log, message, { newest = true } = {}) {
  if (log.querySelector(`[data-message-id="${CSS.escape(message.message_id)}"]`)) return;
  const item = messageItem(message);
  if (newest) log.append(item);
  else log.prepend(item);
  log.scrollTop = log.scrollHeight;
}

class RunCombobox {
  /** @run: autocomplete on a text input: arrows move, Enter inserts, Escape closes. */
  constructor(input, list) {
    this.input = input;
    this.list = list;
    this.options = [];
    this.active = -1;
    this.query = null;
    input.addEventListener('input', () => this.update());
    input.addEventListener('keydown', (event) => this.key(event));
    // Closed a moment after the input loses focus (a click on an option lands first), unless
    // focus came back meanwhile (Send, then typing on): then the list it shows is the new one.
    input.addEventListener('blur', () => setTimeout(() => {
      if (document.activeElement !== this.input) this.close();
    }, 150));
  }

  token() {
    const before = this.input.value.slice(0, this.input.selectionStart ?? this.input.value.length);
    const match = before.match(TRIGGER);
    return match ? { text: match[1], start: before.length - match[0].length } : null;
  }

  async update() {
    const token = this.token();
    if (!token) return this.close();
    this.query = token.text;
    let runs = [];
    try {
      const answer = await api(`/api/runs/search?q=${encodeURIComponent(token.text)}&limit=8`);
      runs = answer.runs;
    } catch {
      runs = [];
    }
    if (this.query !== token.text) return undefined; // a newer keystroke won
    this.render(runs);
    return undefined;
  }

  render(runs) {
    this.options = runs;
    this.active = runs.length ? 0 : -1;
    replaceChildren(this.list, runs.map((run, index) => h('li', {
      id: `chat-option-${index}`, role: 'option', class: 'chatopt',
      'aria-selected': index === this.active ? 'true' : 'false',
      onmousedown: (event) => { event.preventDefault(); this.choose(index); },
    }, badge(run.status), h('code', { class: 'runid', title: run.run_id, text: run.run_id }),
    ` ${run.subtype} — ${run.summary || ''}`)));
    if (!runs.length) {
      append(this.list, h('li', { class: 'chatopt chatopt--none', role: 'option',
        'aria-disabled': 'true', text: 'No run matches' }));
    }
    this.list.hidden = false;
    this.input.setAttribute('aria-expanded', 'true');
    this.highlight();
  }

  highlight() {
    this.list.querySelectorAll('[role="option"]').forEach((node, index) => {
      node.setAttribute('aria-selected', index === this.active ? 'true' : 'false');
    });
    if (this.active >= 0) {
      this.input.setAttribute('aria-activedescendant', `chat-option-${this.active}`);
      const node = $(`#chat-option-${this.active}`);
      if (node) node.scrollIntoView({ block: 'nearest' });
    } else {
      this.input.removeAttribute('aria-activedescendant');
    }
  }

  key(event) {
    if (this.list.hidden) return;
    if (event.key === 'ArrowDown' || event.key === 'ArrowUp') {
      event.preventDefault();
      const step = event.key === 'ArrowDown' ? 1 : -1;
      const count = this.options.length;
      if (count) this.active = (this.active + step + count) % count;
      this.highlight();
    } else if (event.key === 'Enter' && this.active >= 0) {
      event.preventDefault();
      event.stopPropagation();
      this.choose(this.active);
    } else if (event.key === 'Escape') {
      event.preventDefault();
      this.close();
    }
  }

  choose(index) {
    const run = this.options[index];
    const token = this.token();
    if (!run || !token) return this.close();
    const value = this.input.value;
    const end = token.start + '@run:'.length + token.text.length;
    const inserted = `@run:${run.run_id} `;
    this.input.value = value.slice(0, token.start) + inserted + value.slice(end);
    const caret = token.start + inserted.length;
    this.input.setSelectionRange(caret, caret);
    this.close();
    this.input.focus();
    return undefined;
  }

  close() {
    this.list.hidden = true;
    this.options = [];
    this.active = -1;
    this.input.setAttribute('aria-expanded', 'false');
    this.input.removeAttribute('aria-activedescendant');
  }
}

function panel() {
  const log = h('ol', { class: 'chatlog', 'aria-live': 'polite', 'aria-label': 'Messages' });
  const input = h('input', {
    id: 'chat-input', type: 'text', class: 'chatform__input', autocomplete: 'off',
    role: 'combobox', 'aria-autocomplete': 'list', 'aria-expanded': 'false',
    'aria-controls': 'chat-suggestions', maxlength: '4000',
    placeholder: 'Message — type @run: to mention a run',
  });
  const list = h('ul', { id: 'chat-suggestions', role: 'listbox', class: 'chatopts',
    'aria-label': 'Runs to mention', hidden: true });
  const status = h('p', { class: 'chatform__status', role: 'status' });
  const form = h('form', { class: 'chatform', novalidate: true },
    h('label', { for: 'chat-input', text: 'Message' }),
    h('div', { class: 'chatform__row' }, input,
      h('button', { type: 'submit', class: 'btn', text: 'Send' })),
    list, status);
  const close = h('button', { type: 'button', class: 'btn btn--quiet chatpanel__close',
    'aria-label': 'Close', title: 'Close the chat (Esc)', text: '×' });
  const head = h('div', { class: 'chatpanel__head' },
    h('h2', { id: 'chat-title', class: 'chatpanel__title', text: 'Chat' }), close);
  const empty = h('p', { class: 'chatpanel__empty muted', hidden: true,
    text: 'No messages yet. Write the first below; type @run: to mention a run.' });
  const body = h('div', { id: 'chat-body', class: 'chatpanel__body', hidden: true },
    head, empty, log, form);
  const toggle = h('button', { type: 'button', class: 'btn btn--quiet chatpanel__toggle',
    'aria-expanded': 'false', 'aria-controls': 'chat-body', text: 'Chat' });
  const aside = h('aside', { class: 'chatpanel', 'aria-labelledby': 'chat-title' }, toggle, body);
  return { aside, toggle, close, body, empty, log, input, list, form, status };
}

/**
 * Put the chat where it covers nothing: the button in the top bar, the panel right under
 * it (in the page's flow: it pushes the content down on a narrow screen) or, on a wide
 * screen, a side panel the page makes room for (`chat-open` on <body>, app.css). A page
 * without the top bar keeps the floating button.
 */
function place(ui) {
  const bar = $('.topbar__inner');
  const header = bar && bar.closest('header');
  if (!header) {
    document.body.append(ui.aside);
    return;
  }
  ui.toggle.classList.add('chatpanel__toggle--docked');
  bar.append(ui.toggle);
  ui.aside.classList.add('chatpanel--docked');
  header.after(ui.aside);
}

/** List the messages that mention *runId* in *log*, new ones as they arrive. */
export async function followMentions(log, empty, runId) {
  const show = (message) => {
    if (!(message.mentions || []).includes(runId)) return;
    addMessage(log, message);
    empty.hidden = true;
  };
  on('chat:message', (envelope) => show(envelope.data));
  try {
    const answer = await api(`/api/chat?run_id=${encodeURIComponent(runId)}&limit=100`);
    answer.messages.reverse().forEach(show);
  } catch {
    // the chat is an extra on this page: the run itself still shows
  }
}

/** Add the chat panel to this page and keep it live. */
export function initChat() {
  if ($('.chatpanel')) return;
  const ui = panel();
  place(ui);
  new RunCombobox(ui.input, ui.list);
  let loaded = false;
  const open = async (wanted) => {
    ui.body.hidden = !wanted;
    ui.toggle.setAttribute('aria-expanded', String(wanted));
    ui.aside.classList.toggle('chatpanel--open', wanted);
    document.body.classList.toggle('chat-open', wanted);
    if (wanted && !loaded) {
      loaded = true;
      try {
        const answer = await api('/api/chat?limit=50');
        answer.messages.reverse().forEach((m) => addMessage(ui.log, m));
        ui.empty.hidden = ui.log.childElementCount > 0;
      } catch (error) {
        ui.status.textContent = error.message;
      }
    }
    if (wanted) ui.input.focus();
    else ui.toggle.focus(); // closed from inside: focus goes back where the panel opened
  };
  ui.toggle.addEventListener('click', () => open(ui.body.hidden));
  ui.close.addEventListener('click', () => open(false));
  ui.body.addEventListener('keydown', (event) => {
    // Escape closes the suggestions first (RunCombobox), then the panel
    if (event.key === 'Escape' && ui.list.hidden && !event.defaultPrevented) open(false);
  });
  ui.form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const text = ui.input.value.trim();
    if (!text) {
      ui.status.textContent = 'Write a message first.';
      return;
    }
    // Cleared at once: what is typed while the message is on its way is the next one.
    ui.input.value = '';
    try {
      addMessage(ui.log, await api('/api/chat', { method: 'POST', body: { text } }));
      ui.empty.hidden = true;
      ui.status.textContent = '';
    } catch (error) {
      if (!ui.input.value) ui.input.value = text; // not sent: give it back to correct
      ui.status.textContent = (error.body && error.body.fields && error.body.fields.text)
        || error.message;
    }
  });
  on('chat:message', (envelope) => {
    if (loaded) {
      addMessage(ui.log, envelope.data);
      ui.empty.hidden = true;
    } else ui.toggle.classList.add('chatpanel__toggle--unread');
  });
}
