// Small DOM helpers: element building, the error banner, dialogs and tables.

export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'class') e.className = v;
    else if (v === true) e.setAttribute(k, '');
    else e.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

export function showError(err) {
  const box = document.getElementById('error');
  box.textContent = err instanceof Error ? err.message : String(err);
  box.hidden = false;
}

export function clearError() {
  const box = document.getElementById('error');
  box.hidden = true;
  box.textContent = '';
}

export function notice(text) {
  const box = document.getElementById('notice');
  box.textContent = text;
  box.hidden = false;
}

// guard runs an action and shows what went wrong instead of throwing.
export async function guard(fn) {
  clearError();
  try {
    return await fn();
  } catch (err) {
    showError(err);
    return undefined;
  }
}

export function table(id, headers, rows) {
  return el('table', { id, class: 'grid' },
    el('thead', {}, el('tr', {}, headers.map((h) => el('th', {}, h)))),
    el('tbody', {}, rows.length ? rows : el('tr', {}, el('td', { colspan: headers.length, class: 'muted' }, 'Nothing here yet.'))));
}

// field is one labelled input of a form dialog. spec: {name, label, value, type,
// options, placeholder, readonly, hint}.
function field(spec) {
  const id = 'f-' + spec.name;
  let input;
  if (spec.type === 'select') {
    input = el('select', { id, name: spec.name },
      spec.options.map((o) => el('option', { value: o, selected: o === spec.value }, o)));
  } else if (spec.type === 'textarea') {
    input = el('textarea', { id, name: spec.name, rows: 4, placeholder: spec.placeholder });
    input.value = spec.value ?? '';
  } else if (spec.type === 'checkbox') {
    input = el('input', { id, name: spec.name, type: 'checkbox', checked: !!spec.value });
  } else {
    input = el('input', { id, name: spec.name, type: spec.type || 'text', placeholder: spec.placeholder, readonly: spec.readonly });
    input.value = spec.value ?? '';
  }
  return el('label', { class: spec.type === 'checkbox' ? 'check' : '' }, spec.label, input, spec.hint ? el('small', { class: 'muted' }, spec.hint) : null);
}

// formDialog shows a modal form; submit calls save(values). The dialog stays open and
// shows the error when save throws (a 403 text, a refused value), and closes on success.
export function formDialog(title, fields, save, submitLabel = 'Save') {
  const error = el('p', { class: 'error', role: 'alert', hidden: true });
  const form = el('form', { method: 'dialog', id: 'dialog-form' },
    el('h2', {}, title),
    fields.map(field),
    error,
    el('div', { class: 'actions' },
      el('button', { type: 'button', id: 'dialog-cancel', onclick: () => dlg.close() }, 'Cancel'),
      el('button', { type: 'submit', id: 'dialog-submit', class: 'primary' }, submitLabel)));
  const dlg = el('dialog', { class: 'modal' }, form);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    error.hidden = true;
    const values = {};
    for (const f of fields) {
      const input = form.elements[f.name];
      values[f.name] = f.type === 'checkbox' ? input.checked : input.value;
    }
    try {
      await save(values);
      dlg.close();
    } catch (err) {
      error.textContent = err.message;
      error.hidden = false;
    }
  });
  dlg.addEventListener('close', () => dlg.remove());
  document.body.append(dlg);
  dlg.showModal();
  return dlg;
}

export function confirmDialog(text, action, label = 'Delete') {
  return formDialog('Are you sure?', [], action, label).querySelector('h2').after(el('p', {}, text));
}

// metadataJSON turns the k=v lines of a metadata text area into the JSON object text
// the API takes (a value may then hold commas and equals signs).
export function metadataJSON(text) {
  const md = {};
  for (const line of (text || '').split('\n')) {
    if (!line.trim()) continue;
    const i = line.indexOf('=');
    if (i <= 0) throw new Error(`metadata line "${line}" is not key=value`);
    md[line.slice(0, i).trim()] = line.slice(i + 1).trim();
  }
  return JSON.stringify(md);
}

export function metadataText(md) {
  return Object.entries(md || {}).map(([k, v]) => `${k}=${v}`).join('\n');
}

export function page(title, ...children) {
  return [el('h1', {}, title), ...children];
}
