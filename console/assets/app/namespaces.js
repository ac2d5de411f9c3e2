// Namespaces: Nacos' console endpoints (/nacos/v1/console/namespaces), RestResult
// shaped ({code, data}).
import * as api from './api.js';
import { el, table, formDialog, confirmDialog, page, notice } from './ui.js';

const TYPES = { 0: 'public', 1: 'default', 2: 'custom' };

export async function loadNamespaces() {
  const r = await api.json('GET', '/nacos/v1/console/namespaces');
  return r.data || [];
}

function namespaceDialog(ctx, old) {
  formDialog(old ? `Edit namespace ${old.namespace}` : 'Create namespace', [
    { name: 'id', label: 'Namespace ID', value: old?.namespace || '', readonly: !!old, hint: old ? null : 'blank: generated' },
    { name: 'name', label: 'Name', value: old?.namespaceShowName || '' },
    { name: 'desc', label: 'Description', type: 'textarea', value: old?.namespaceDesc || '' },
  ], async (v) => {
    if (old) {
      await api.write('PUT', '/nacos/v1/console/namespaces', { namespace: v.id, namespaceShowName: v.name, namespaceDesc: v.desc });
    } else {
      await api.write('POST', '/nacos/v1/console/namespaces', { customNamespaceId: v.id, namespaceName: v.name, namespaceDesc: v.desc });
    }
    notice(old ? `Namespace ${v.name} saved.` : `Namespace ${v.name} created.`);
    await ctx.refreshNamespaces();
    ctx.refresh();
  });
}

export async function namespacesPage(ctx) {
  const list = await loadNamespaces();
  const rows = list.map((n) => el('tr', { 'data-namespace': n.namespace },
    el('td', {}, n.namespaceShowName),
    el('td', { class: 'mono' }, n.namespace || 'public'),
    el('td', {}, n.namespaceDesc || ''),
    el('td', {}, TYPES[n.type] ?? String(n.type)),
    el('td', { class: 'num' }, n.quota),
    el('td', { class: 'actions' },
      n.type === 0 ? null : el('button', { type: 'button', class: 'link', onclick: () => namespaceDialog(ctx, n) }, 'Edit'),
      n.type === 0 ? null : el('button', { type: 'button', class: 'link danger', onclick: () => confirmDialog(
        `Delete namespace ${n.namespace}? A namespace that has services cannot be deleted.`, async () => {
          await api.write('DELETE', '/nacos/v1/console/namespaces', { namespaceId: n.namespace });
          notice(`Namespace ${n.namespace} deleted.`);
          await ctx.refreshNamespaces();
          ctx.refresh();
        }) }, 'Delete'))));
  return page('Namespaces',
    el('div', { class: 'filters' }, el('span', { class: 'spacer' }),
      el('button', { type: 'button', id: 'create-namespace', class: 'primary', onclick: () => namespaceDialog(ctx) }, 'Create namespace')),
    table('namespaces', ['Name', 'ID', 'Description', 'Type', 'Quota', ''], rows));
}
