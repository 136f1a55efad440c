// One action's form: fields built from its schema, its body read back, 422 errors shown.

import { h } from './dom.js';
import { fieldsOf } from './schema-fields.js';

function slug(text) {
  return text.replace(/[^A-Za-z0-9]+/g, '-').replace(/^-|-$/g, '') || 'action';
}

function enumLabel(value) {
  return value === null ? '—' : String(value);
}

function control(field, id, describedBy) {
  const common = { id, name: field.name, 'aria-describedby': describedBy || null,
    'aria-required': field.required ? 'true' : null };
  const { schema } = field;
  switch (field.kind) {
    case 'enum': {
      const select = h('select', common);
      if (!field.required || field.nullable) {
        select.append(h('option', { value: '' },
          field.default !== undefined && field.default !== null ? `Default (${field.default})` : '—'));
      }
      schema.enum.forEach((value, index) => {
        select.append(h('option', { value: String(index) }, enumLabel(value)));
      });
      if (field.required && field.default !== undefined) {
        const index = schema.enum.indexOf(field.default);
        if (index >= 0) select.value = String(index);
      }
      return select;
    }
    case 'boolean':
      return h('input', { ...common, type: 'checkbox', checked: field.default === true });
    case 'integer':
    case 'number':
      return h('input', { ...common, type: 'number', inputmode: field.kind === 'integer' ? 'numeric' : 'decimal',
        step: field.kind === 'integer' ? '1' : 'any', min: schema.minimum ?? null, max: schema.maximum ?? null,
        value: typeof field.default === 'number' ? String(field.default) : null });
    case 'array':
      return h('textarea', { ...common, rows: '3',
        text: Array.isArray(field.default) ? field.default.join('\n') : '' });
    case 'object':
      return h('textarea', { ...common, rows: '3', class: 'mono',
        text: field.default ? JSON.stringify(field.default) : '' });
    case 'secret':
      return h('input', { ...common, type: 'password', autocomplete: 'off' });
    case 'const':
      return h('input', { ...common, type: 'text', value: String(schema.const), readonly: true });
    default:
      return h('input', { ...common, type: 'text', autocomplete: 'off', spellcheck: 'false',
        maxlength: schema.maxLength ?? null,
        value: typeof field.default === 'string' ? field.default : null });
  }
}

function fieldBlock(field, base) {
  const id = `${base}-${slug(field.name)}`;
  const hintId = field.hint ? `${id}-hint` : null;
  const errorId = `${id}-error`;
  const input = control(field, id, hintId);
  const label = h('label', { for: id }, field.label,
    field.required ? h('span', { class: 'required', 'aria-hidden': 'true' }, ' *') : null);
  const hint = field.hint ? h('p', { class: 'hint', id: hintId, text: field.hint }) : null;
  const error = h('p', { class: 'field-error', id: errorId, hidden: true });
  const block = field.kind === 'boolean'
    ? h('div', { class: 'field field--check', dataset: { field: field.name } }, input, label, hint, error)
    : h('div', { class: 'field', dataset: { field: field.name } }, label, input, hint, error);
  return { field, input, error, hintId, errorId, block };
}

function readValue({ field, input }) {
  const raw = input.value;
  switch (field.kind) {
    case 'boolean':
      return { value: input.checked };
    case 'enum':
      return raw === '' ? {} : { value: field.schema.enum[Number(raw)] };
    case 'integer':
    case 'number':
      if (input.validity && input.validity.badInput) return { error: 'Enter a number.' };
      return raw === '' ? {} : { value: Number(raw) };
    case 'array': {
      const items = raw.split('\n').map((s) => s.trim()).filter(Boolean);
      const numeric = ['integer', 'number'].includes(field.schema.items?.type);
      return items.length ? { value: numeric ? items.map(Number) : items } : {};
    }
    case 'object':
      if (raw.trim() === '') return {};
      try {
        return { value: JSON.parse(raw) };
      } catch {
        return { error: 'Enter valid JSON.' };
      }
    default:
      return raw === '' ? {} : { value: raw };
  }
}

export class ActionForm {
  /** order: the property names in declaration order. */
  constructor(action, order = []) {
    this.action = action;
    const base = `f-${slug(action.path)}`;
    this.fields = fieldsOf(action, order).map((field) => fieldBlock(field, base));
    this.formError = h('p', { class: 'form-error', hidden: true });
    this.button = h('button', { type: 'submit', class: `btn ${action.destructive ? 'btn--danger' : 'btn--primary'}`,
      'aria-describedby': `${base}-title`, text: 'Run now' });
    const anyRequired = this.fields.some((f) => f.field.required);
    this.form = h('form', { class: 'action-form', novalidate: true },
      anyRequired ? h('p', { class: 'small muted' }, 'Fields marked ', h('span', { class: 'required', text: '*' }), ' are required.') : null,
      this.fields.length ? h('div', { class: 'fields' }, this.fields.map((f) => f.block))
        : h('p', { class: 'muted', text: 'This action takes no parameters.' }),
      this.formError,
      h('div', { class: 'btnrow' }, this.button));
  }

  /** {path, body} to send, or {errors} found before sending. */
  read() {
    const body = {};
    const errors = {};
    let path = this.action.path;
    for (const entry of this.fields) {
      const { field } = entry;
      const { value, error } = readValue(entry);
      if (error) errors[field.name] = error;
      else if (field.inUrl) {
        if (value === undefined || value === '') errors[field.name] = 'Required: it is part of the address.';
        else path = path.replace(new RegExp(`<(?:\\w+:)?${field.name}>`), encodeURIComponent(String(value)));
      } else if (value !== undefined) body[field.name] = value;
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
      const entry = this.fields.find((f) => f.field.name === name.split('.')[0]);
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
}
