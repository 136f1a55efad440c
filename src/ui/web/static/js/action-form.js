// One action's form, as the server rendered it (templates/controlplane/_form.html): its body
// read back as JSON, 422 errors shown next to the fields. No markup is built here.

import { $, $$ } from './dom.js';

function listValue(raw) {
  if (raw.trimStart().startsWith('[')) return JSON.parse(raw);
  return raw.split('\n').map((s) => s.trim()).filter(Boolean);
}

function readValue({ kind, input, block }) {
  const raw = input.value;
  switch (kind) {
    case 'boolean':
      return { value: input.checked };
    case 'enum': {
      if (raw === '') return {};
      const choices = JSON.parse(input.dataset.choices || '[]');
      return { value: choices.find((choice) => String(choice) === raw) ?? raw };
    }
    case 'integer':
    case 'number':
      if (input.validity && input.validity.badInput) return { error: 'Enter a number.' };
      return raw === '' ? {} : { value: Number(raw) };
    case 'array':
    case 'object': {
      if (raw.trim() === '') return {};
      let value;
      try {
        value = kind === 'array' ? listValue(raw) : JSON.parse(raw);
      } catch {
        return { error: 'Enter valid JSON.' };
      }
      const numeric = ['integer', 'number'].includes(block.dataset.items);
      return { value: numeric && Array.isArray(value) ? value.map(Number) : value };
    }
    default:
      return raw === '' ? {} : { value: raw };
  }
}

export class ActionForm {
  /** card: the server-rendered `section[data-action]`. */
  constructor(card) {
    this.path = card.dataset.action;
    this.form = $('form[data-action-form]', card);
    this.button = $('button[type="submit"]', this.form);
    this.formError = $('[data-form-error]', this.form);
    this.fields = $$('[data-field]', this.form).map((block) => {
      const input = $(`[name="${block.dataset.field}"]`, block);
      const hint = $('.hint', block);
      return { block, input, name: block.dataset.field, kind: block.dataset.kind,
        inUrl: 'inUrl' in block.dataset, error: $('.field-error', block),
        hintId: hint ? hint.id : null, errorId: `${input.id}-error` };
    });
  }

  /** {path, body} to send, or {errors} found before sending. */
  read() {
    const body = {};
    const errors = {};
    let path = this.path;
    for (const entry of this.fields) {
      const { value, error } = readValue(entry);
      if (error) errors[entry.name] = error;
      else if (entry.inUrl) {
        if (value === undefined || value === '') errors[entry.name] = 'Required: it is part of the address.';
        else path = path.replace(new RegExp(`<(?:\\w+:)?${entry.name}>`), encodeURIComponent(String(value)));
      } else if (value !== undefined) body[entry.name] = value;
    }
    return Object.keys(errors).length ? { errors } : { path, body };
  }

  clearErrors() {
    this.formError.hidden = true;
    for (const { input, error, hintId } of this.fields) {
      error.hidden = true;
      error.textContent = '';
      input.removeAttribute('aria-invalid');
      if (hintId) input.setAttribute('aria-describedby', hintId);
      else input.removeAttribute('aria-describedby');
    }
  }

  /** Show {name: message} next to the fields; the rest (and a summary) above the button. */
  showErrors(fields) {
    const unmatched = [];
    let first = null;
    for (const [name, message] of Object.entries(fields || {})) {
      const entry = this.fields.find((f) => f.name === name.split('.')[0]);
      if (!entry) {
        unmatched.push(`${name}: ${message}`);
        continue;
      }
      entry.error.textContent = message;
      entry.error.hidden = false;
      entry.input.setAttribute('aria-invalid', 'true');
      entry.input.setAttribute('aria-describedby', [entry.hintId, entry.errorId].filter(Boolean).join(' '));
      first = first || entry.input;
    }
    this.formError.textContent = ['Check the highlighted fields.', ...unmatched].join(' ');
    this.formError.hidden = false;
    if (first) first.focus();
  }

  /** Errors the server rendered into the page (a form post answered 422): marked and focused. */
  markRenderedErrors() {
    let first = null;
    for (const entry of this.fields) {
      if (entry.error.hidden) continue;
      entry.input.setAttribute('aria-invalid', 'true');
      entry.input.setAttribute('aria-describedby', [entry.hintId, entry.errorId].filter(Boolean).join(' '));
      first = first || entry.input;
    }
    if (first) first.focus();
  }
}
