// Services: the list (Nacos' catalog), a service's detail with its clusters and
// instances, and its subscribers.
import * as api from './api.js';
import { el, table, formDialog, confirmDialog, guard, metadataText, metadataJSON, page, notice } from './ui.js';

const PAGE_SIZE = 20;
const DEFAULT_GROUP = 'DEFAULT_GROUP';

function serviceHash(base, group, name) {
  return `${base}?` + new URLSearchParams({ group, name });
}

async function selectorTypes() {
  try {
    const r = await api.json('GET', '/nacos/v1/ns/service/selector/types');
    if (Array.isArray(r.data) && r.data.length) return r.data;
  } catch {
    // an older node: Nacos 1.4's console has these two built in
  }
  return ['none', 'label'];
}

// serviceDialog creates (old undefined) or edits a service.
async function serviceDialog(ctx, old) {
  const types = await selectorTypes();
  const sel = old?.selector || { type: 'none' };
  formDialog(old ? `Edit service ${old.name}` : 'Create service', [
    { name: 'serviceName', label: 'Service name', value: old?.name, readonly: !!old },
    { name: 'groupName', label: 'Group', value: old?.groupName || DEFAULT_GROUP, readonly: !!old },
    { name: 'protectThreshold', label: 'Protect threshold (0 to 1)', value: String(old?.protectThreshold ?? 0) },
    { name: 'metadata', label: 'Metadata', type: 'textarea', value: metadataText(old?.metadata), placeholder: 'key=value, one a line' },
    { name: 'selectorType', label: 'Selector type', type: 'select', options: types, value: sel.type || 'none' },
    { name: 'selectorExpression', label: 'Selector expression', value: sel.expression || '', hint: 'for the label selector' },
  ], async (v) => {
    const selector = { type: v.selectorType };
    if (v.selectorType !== 'none' && v.selectorExpression) selector.expression = v.selectorExpression;
    await api.write(old ? 'PUT' : 'POST', '/nacos/v1/ns/service', {
      namespaceId: ctx.namespace, serviceName: v.serviceName, groupName: v.groupName,
      protectThreshold: v.protectThreshold, metadata: metadataJSON(v.metadata),
      selector: JSON.stringify(selector),
    });
    notice(old ? `Service ${v.serviceName} saved.` : `Service ${v.serviceName} created.`);
    ctx.refresh();
  });
}

async function editService(ctx, group, name) {
  await guard(async () => {
    const d = await api.json('GET', '/nacos/v1/ns/catalog/service', { namespaceId: ctx.namespace, serviceName: name, groupName: group });
    await serviceDialog(ctx, d.service);
  });
}

function deleteService(ctx, group, name, after) {
  confirmDialog(`Delete service ${group}@@${name}? Nacos refuses while it has instances.`, async () => {
    await api.write('DELETE', '/nacos/v1/ns/service', { namespaceId: ctx.namespace, serviceName: name, groupName: group });
    notice(`Service ${name} deleted.`);
    after();
  });
}

export async function servicesPage(ctx, q) {
  const pageNo = Number(q.page || 1);
  const filters = { name: q.name || '', group: q.group || '', hideEmpty: q.hideEmpty === 'true' };
  const list = await api.json('GET', '/nacos/v1/ns/catalog/services', {
    namespaceId: ctx.namespace, pageNo, pageSize: PAGE_SIZE, withInstances: false,
    serviceNameParam: filters.name, groupNameParam: filters.group, hasIpCount: filters.hideEmpty,
  });
  const rows = (list.serviceList || []).map((s) => el('tr', { class: s.healthyInstanceCount === 0 ? 'unhealthy' : '', 'data-service': `${s.groupName}@@${s.name}` },
    el('td', {}, el('a', { href: serviceHash('#/service', s.groupName, s.name) }, s.name)),
    el('td', {}, s.groupName),
    el('td', { class: 'num' }, s.clusterCount),
    el('td', { class: 'num' }, s.ipCount),
    el('td', { class: 'num' }, s.healthyInstanceCount),
    el('td', {}, String(s.triggerFlag) === 'true' ? el('span', { class: 'tag warn' }, 'triggered') : 'no'),
    el('td', { class: 'actions' },
      el('a', { href: serviceHash('#/service', s.groupName, s.name) }, 'Detail'),
      el('a', { href: serviceHash('#/subscribers', s.groupName, s.name) }, 'Subscribers'),
      el('button', { type: 'button', class: 'link', onclick: () => editService(ctx, s.groupName, s.name) }, 'Edit'),
      el('button', { type: 'button', class: 'link danger delete-service', onclick: () => deleteService(ctx, s.groupName, s.name, ctx.refresh) }, 'Delete'))));
  const filterForm = el('form', { class: 'filters', id: 'service-filter', onsubmit: (ev) => {
    ev.preventDefault();
    const f = ev.target.elements;
    ctx.go('#/services?' + new URLSearchParams({ name: f.name.value, group: f.group.value, hideEmpty: f.hideEmpty.checked }));
  } },
  el('input', { name: 'name', placeholder: 'Service name contains', value: filters.name }),
  el('input', { name: 'group', placeholder: 'Group contains', value: filters.group }),
  el('label', { class: 'check' }, el('input', { type: 'checkbox', name: 'hideEmpty', checked: filters.hideEmpty }), 'Hide empty services'),
  el('button', { type: 'submit' }, 'Search'),
  el('span', { class: 'spacer' }),
  el('button', { type: 'button', id: 'create-service', class: 'primary', onclick: () => serviceDialog(ctx) }, 'Create service'));
  const pages = Math.max(1, Math.ceil((list.count || 0) / PAGE_SIZE));
  const pageLink = (n, label) => el('a', { href: '#/services?' + new URLSearchParams({ ...q, page: n }), class: n === pageNo ? 'active' : '' }, label);
  return page('Services', filterForm,
    table('services', ['Service', 'Group', 'Clusters', 'Instances', 'Healthy', 'Protect threshold', ''], rows),
    el('p', { class: 'pager muted' }, `${list.count || 0} services · page ${pageNo} of ${pages} `,
      pageNo > 1 ? pageLink(pageNo - 1, '‹ previous') : null, ' ',
      pageNo < pages ? pageLink(pageNo + 1, 'next ›') : null));
}

function checkerText(hc) {
  if (!hc) return 'none';
  let s = hc.type;
  if (hc.type === 'HTTP') s += ` ${hc.path || '/'}` + (hc.expectedResponseCode ? ` expects ${hc.expectedResponseCode}` : '') + (hc.headers ? ` headers ${hc.headers}` : '');
  return s;
}

function clusterDialog(ctx, group, name, c) {
  const hc = c.healthChecker || { type: 'TCP' };
  formDialog(`Edit cluster ${c.name}`, [
    { name: 'type', label: 'Health checker', type: 'select', options: ['TCP', 'HTTP', 'NONE'], value: hc.type },
    { name: 'path', label: 'HTTP path', value: hc.path || '' },
    { name: 'headers', label: 'HTTP headers', value: hc.headers || '', placeholder: 'Name:value|Name:value' },
    { name: 'expectedResponseCode', label: 'Expected HTTP status', value: String(hc.expectedResponseCode || 200) },
    { name: 'checkPort', label: 'Check port', value: String(c.defaultCheckPort ?? 80) },
    { name: 'useInstancePort4Check', label: 'Check the instance port', type: 'checkbox', value: c.useIPPort4Check },
    { name: 'metadata', label: 'Metadata', type: 'textarea', value: metadataText(c.metadata), placeholder: 'key=value, one a line' },
  ], async (v) => {
    const checker = { type: v.type };
    if (v.type === 'HTTP') Object.assign(checker, { path: v.path, headers: v.headers, expectedResponseCode: Number(v.expectedResponseCode) });
    await api.write('PUT', '/nacos/v1/ns/cluster', {
      namespaceId: ctx.namespace, serviceName: `${group}@@${name}`, clusterName: c.name,
      checkPort: v.checkPort, useInstancePort4Check: v.useInstancePort4Check, healthChecker: JSON.stringify(checker),
      metadata: metadataJSON(v.metadata),
    });
    notice(`Cluster ${c.name} saved.`);
    ctx.refresh();
  });
}

// saveInstance is the console's one instance write: PUT /nacos/v1/ns/instance with
// every field, as Nacos' console sends it.
async function saveInstance(ctx, group, name, inst, change) {
  const next = { ...inst, ...change };
  await api.write('PUT', '/nacos/v1/ns/instance', {
    namespaceId: ctx.namespace, serviceName: name, groupName: group, clusterName: inst.clusterName,
    ip: inst.ip, port: inst.port, ephemeral: inst.ephemeral, weight: next.weight, enabled: next.enabled,
    metadata: JSON.stringify(next.metadata || {}),
  });
}

function instanceDialog(ctx, group, name, inst) {
  formDialog(`Edit instance ${inst.ip}:${inst.port}`, [
    { name: 'weight', label: 'Weight', value: String(inst.weight) },
    { name: 'enabled', label: 'Online (enabled)', type: 'checkbox', value: inst.enabled },
    { name: 'metadata', label: 'Metadata (JSON)', type: 'textarea', value: JSON.stringify(inst.metadata || {}, null, 1) },
  ], async (v) => {
    let metadata;
    try {
      metadata = JSON.parse(v.metadata || '{}');
    } catch (err) {
      throw new Error('Metadata is not JSON: ' + err.message);
    }
    await saveInstance(ctx, group, name, inst, { weight: v.weight, enabled: v.enabled, metadata });
    notice(`Instance ${inst.ip}:${inst.port} saved.`);
    ctx.refresh();
  });
}

async function instancesTable(ctx, group, name, cluster) {
  const r = await api.json('GET', '/nacos/v1/ns/catalog/instances', {
    namespaceId: ctx.namespace, serviceName: name, groupName: group, clusterName: cluster, pageNo: 1, pageSize: 100,
  });
  const rows = (r.list || []).map((i) => el('tr', { class: i.healthy ? '' : 'unhealthy', 'data-instance': `${i.ip}:${i.port}` },
    el('td', {}, i.ip),
    el('td', { class: 'num' }, i.port),
    el('td', {}, i.ephemeral ? 'yes' : 'no'),
    el('td', { class: 'num weight' }, i.weight),
    el('td', {}, i.healthy ? el('span', { class: 'tag ok' }, 'healthy') : el('span', { class: 'tag bad' }, 'unhealthy')),
    el('td', { class: 'state' }, i.enabled ? el('span', { class: 'tag ok' }, 'online') : el('span', { class: 'tag' }, 'offline')),
    el('td', { class: 'md' }, metadataText(i.metadata)),
    el('td', { class: 'actions' },
      el('button', { type: 'button', class: 'link edit-instance', onclick: () => instanceDialog(ctx, group, name, i) }, 'Edit'),
      el('button', { type: 'button', class: 'link toggle-instance', onclick: () => guard(async () => {
        await saveInstance(ctx, group, name, i, { enabled: !i.enabled });
        notice(`Instance ${i.ip}:${i.port} is ${i.enabled ? 'offline' : 'online'}.`);
        ctx.refresh();
      }) }, i.enabled ? 'Take offline' : 'Bring online'))));
  return [table(`instances-${cluster}`, ['IP', 'Port', 'Ephemeral', 'Weight', 'Health', 'State', 'Metadata', ''], rows),
    r.count > rows.length ? el('p', { class: 'muted' }, `showing ${rows.length} of ${r.count}`) : null];
}

export async function serviceDetailPage(ctx, q) {
  const group = q.group || DEFAULT_GROUP;
  const name = q.name;
  const d = await api.json('GET', '/nacos/v1/ns/catalog/service', { namespaceId: ctx.namespace, serviceName: name, groupName: group });
  const s = d.service;
  const info = el('section', { class: 'card', id: 'service-info' },
    el('dl', {},
      el('dt', {}, 'Service'), el('dd', {}, s.name),
      el('dt', {}, 'Group'), el('dd', {}, s.groupName),
      el('dt', {}, 'Protect threshold'), el('dd', {}, s.protectThreshold),
      el('dt', {}, 'Selector'), el('dd', {}, s.selector?.type + (s.selector?.expression ? ` ${s.selector.expression}` : '')),
      el('dt', {}, 'Metadata'), el('dd', { class: 'md' }, metadataText(s.metadata) || '—')),
    el('div', { class: 'actions' },
      el('button', { type: 'button', id: 'edit-service', onclick: () => serviceDialog(ctx, s) }, 'Edit service'),
      el('a', { href: serviceHash('#/subscribers', group, name) }, 'Subscribers'),
      el('button', { type: 'button', class: 'danger', onclick: () => deleteService(ctx, group, name, () => ctx.go('#/services')) }, 'Delete service')));
  const clusters = [];
  for (const c of d.clusters || []) {
    clusters.push(el('section', { class: 'card cluster', 'data-cluster': c.name },
      el('h2', {}, `Cluster ${c.name}`),
      el('p', { class: 'muted' }, `Health check: ${checkerText(c.healthChecker)} · check port ${c.useIPPort4Check ? 'of each instance' : c.defaultCheckPort}`,
        Object.keys(c.metadata || {}).length ? ` · metadata ${metadataText(c.metadata).replaceAll('\n', ', ')}` : '',
        ' ', el('button', { type: 'button', class: 'link edit-cluster', onclick: () => clusterDialog(ctx, group, name, c) }, 'Edit cluster')),
      ...(await instancesTable(ctx, group, name, c.name))));
  }
  if (!clusters.length) clusters.push(el('p', { class: 'muted' }, 'No instances registered.'));
  return page(`Service ${group}@@${name}`, el('p', {}, el('a', { href: '#/services' }, '‹ all services')), info, ...clusters);
}

export async function subscribersPage(ctx, q) {
  const group = q.group || DEFAULT_GROUP;
  const name = q.name || '';
  const form = el('form', { class: 'filters', id: 'subscriber-filter', onsubmit: (ev) => {
    ev.preventDefault();
    const f = ev.target.elements;
    ctx.go(serviceHash('#/subscribers', f.group.value || DEFAULT_GROUP, f.name.value));
  } },
  el('input', { name: 'name', placeholder: 'Service name', value: name, required: true }),
  el('input', { name: 'group', placeholder: 'Group', value: group }),
  el('button', { type: 'submit' }, 'Show subscribers'));
  if (!name) return page('Subscribers', form, el('p', { class: 'muted' }, 'Choose a service to see who subscribes to it.'));
  const r = await api.json('GET', '/nacos/v1/ns/service/subscribers', { namespaceId: ctx.namespace, serviceName: name, groupName: group, pageNo: 1, pageSize: 100 });
  const rows = (r.subscribers || []).map((s) => el('tr', {},
    el('td', {}, s.serviceName), el('td', {}, s.addrStr), el('td', {}, s.agent), el('td', {}, s.app), el('td', {}, s.cluster)));
  return page(`Subscribers of ${group}@@${name}`, form,
    table('subscribers', ['Service', 'Address', 'Client version', 'Application', 'Clusters'], rows),
    el('p', { class: 'muted' }, `${r.count || 0} subscribers`));
}
