// From an action's pydantic JSON schema to a list of form fields (no DOM here).

function omit(object, ...keys) {
  const copy = { ...object };
  for (const key of keys) delete copy[key];
  return copy;
}

function deref(schema, defs) {
  if (schema && schema.$ref) {
    const name = schema.$ref.split('/').pop();
    return { ...deref(defs[name] || {}, defs), ...omit(schema, '$ref') };
  }
  if (schema && Array.isArray(schema.allOf) && schema.allOf.length === 1) {
    return { ...deref(schema.allOf[0], defs), ...omit(schema, 'allOf') };
  }
  return schema || {};
}

/** One property's schema, with $ref/allOf resolved and "X or null" turned into nullable. */
export function normalize(property, defs = {}) {
  let schema = deref(property, defs);
  let nullable = false;
  const variants = schema.anyOf || schema.oneOf;
  if (Array.isArray(variants)) {
    const real = variants.filter((v) => v.type !== 'null');
    nullable = real.length < variants.length;
    const rest = omit(schema, 'anyOf', 'oneOf');
    schema = real.length === 1 ? { ...deref(real[0], defs), ...rest } : { ...rest, type: 'string' };
  }
  if (Array.isArray(schema.type)) {
    nullable = nullable || schema.type.includes('null');
    schema = { ...schema, type: schema.type.find((t) => t !== 'null') || 'string' };
  }
  let kind = schema.type || 'string';
  if (Array.isArray(schema.enum)) kind = 'enum';
  else if (schema.const !== undefined) kind = 'const';
  else if (kind === 'string' && (schema.format === 'password' || schema.writeOnly)) kind = 'secret';
  if (kind === 'array') {
    const items = deref(schema.items || {}, defs);
    schema = { ...schema, items };
  }
  return { schema, nullable, kind };
}

export function humanize(name) {
  const words = name.replace(/[_-]+/g, ' ').trim();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

// The title pydantic makes up from a field name: a set title differs from it.
function pydanticTitle(name) {
  return name.split('_').map((w) => w.charAt(0).toUpperCase() + w.slice(1)).join(' ');
}

function bounds(schema) {
  const low = schema.minimum ?? schema.exclusiveMinimum;
  const high = schema.maximum ?? schema.exclusiveMaximum;
  if (low !== undefined && high !== undefined) return `From ${low} to ${high}.`;
  if (low !== undefined) return `At least ${low}.`;
  if (high !== undefined) return `At most ${high}.`;
  return '';
}

/**
 * The fields of an action's form: URL parameters first, then the body's properties in
 * `order` (their declaration order; JSON objects may arrive with sorted keys).
 */
export function fieldsOf(action, order = []) {
  const schema = action.schema || {};
  const defs = schema.$defs || schema.definitions || {};
  const properties = schema.properties || {};
  const required = new Set(schema.required || []);
  const urlParams = action.url_params || [];
  const rank = (name) => (order.includes(name) ? order.indexOf(name) : order.length);
  const body = Object.keys(properties).filter((n) => !urlParams.includes(n))
    .sort((a, b) => rank(a) - rank(b));
  const names = [...urlParams, ...body];
  const fields = names.map((name) => {
    const known = properties[name];
    const { schema: field, nullable, kind } = normalize(known || { type: 'string' }, defs);
    const inUrl = urlParams.includes(name);
    const description = (field.description || '').trim();
    const sentence = description && !/[.!?:]$/.test(description) ? `${description}.` : description;
    const hint = [sentence, bounds(field)].filter(Boolean).join(' ');
    return {
      name,
      kind,
      schema: field,
      nullable,
      inUrl,
      required: inUrl || required.has(name),
      label: field.title && field.title !== pydanticTitle(name) ? field.title : humanize(name),
      hint: inUrl && !hint ? 'Part of the action\'s address.' : hint,
      default: field.default,
    };
  });
  // Required fields first and checkboxes last; declaration order within each group.
  const group = (f) => (f.inUrl || f.required ? 0 : (f.kind === 'boolean' ? 2 : 1));
  return fields.map((f, i) => [f, i]).sort((a, b) => group(a[0]) - group(b[0]) || a[1] - b[1])
    .map(([f]) => f);
}
