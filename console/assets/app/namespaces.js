// Namespaces: Nacos' console endpoints (/nacos/v1/console/namespaces), RestResult
// shaped ({code, data}).
import * as api from './api.js';
import { el, table, formDialog, confirmDialog, page, notice } from './ui.js';

const TYPES = { 0: 'public', 1: 'default', 2: 'created', 3: 'in use, not created' };

const limit = (n) => (n > 0 ? String(n) : 'no limit');

export async function loadNamespaces() {
  const r = await api.json('GET', '/nacos/v1/console/namespaces');
  return r.data || [];
}

function namespaceDialog(ctx, old) {
  formDialog(old ? `Edit namespace ${old.namespace}` : 'Create namespace', [
    { name: 'id', label: 'Namespace ID', value: old?.namespace || '', readonly: !!old, hint: old ? null : 'blank: generated' },
    { name: 'name', label: 'Name', value: old?.namespaceShowName || '' },
    { name: 'desc', label: 'Description', type: 'textarea', value: old?.namespaceDesc || '' },
    { name: 'maxServices', label: 'Service quota', value: old ? String(old.quota ?? '') : '', hint: '0: no limit; blank: the server\'s default' },
    { name: 'maxInstances', label: 'Instance quota', value: old ? String(old.instanceQuota ?? '') : '', hint: '0: no limit; blank: the server\'s default' },
  ], async (v) => {
    const quota = {};
    if (v.maxServices.trim() !== '') quota.maxServices = v.maxServices.trim();
    if (v.maxInstances.trim() !== '') quota.maxInstances = v.maxInstances.trim();
    if (old) {
      await api.write('PUT', '/nacos/v1/console/namespaces', { namespace: v.id, namespaceShowName: v.name, namespaceDesc: v.desc, ...quota });
    } else {
      await api.write('POST', '/nacos/v1/console/namespaces', { customNamespaceId: v.id, namespaceName: v.name, namespaceDesc: v.desc, ...quota });
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
    el('td', { class: 'num' }, n.serviceCount ?? ''),
    el('td', { class: 'num' }, n.instanceCount ?? ''),
    el('td', { class: 'num' }, limit(n.quota)),
    el('td', { class: 'num' }, limit(n.instanceQuota)),
    el('td', { class: 'actions' },
      n.type === 0 ? null : el('button', { type: 'button', class: 'link edit-namespace', onclick: () => namespaceDialog(ctx, n) }, 'Edit'),
      n.type === 0 ? null : el('button', { type: 'button', class: 'link danger delete-namespace', onclick: () => confirmDialog(
        `Delete namespace ${n.namespace}? A namespace that has services cannot be deleted.`, async () => {
          await api.write('DELETE', '/nacos/v1/console/namespaces', { namespaceId: n.namespace });
          notice(`Namespace ${n.namespace} deleted.`);
          await ctx.refreshNamespaces();
          ctx.refresh();
        }) }, 'Delete'))));
  return page('Namespaces',
    el('div', { class: 'filters' }, el('span', { class: 'spacer' }),
      el('button', { type: 'button', id: 'create-namespace', class: 'primary', onclick: () => namespaceDialog(ctx) }, 'Create namespace')),
    table('namespaces', ['Name', 'ID', 'Description', 'Type', 'Services', 'Instances', 'Service quota', 'Instance quota', ''], rows));
}
