// The console proper: the frame (navigation, namespace selector, who is signed in) and
// the router from the URL's fragment to a page. Each page module renders into <main>.
import * as api from './api.js';
import { el, clearError, guard } from './ui.js';
import { servicesPage, serviceDetailPage, subscribersPage } from './services.js';
import { namespacesPage, loadNamespaces } from './namespaces.js';
import { clusterPage } from './cluster.js';
import { aclPage } from './acl.js';
import { snapshotPage } from './snapshot.js';

const NS_KEY = 'roster.namespace';

// ctx is what every page gets: who is signed in, the chosen namespace and a way to
// re-render.
const ctx = {
  me: null,
  namespace: sessionStorage.getItem(NS_KEY) || '',
  namespaces: [],
  go: (hash) => { location.hash = hash; },
  refresh: () => route({ keepNotice: true }),
  refreshNamespaces: () => fillNamespaces(),
};

const pages = [
  { hash: '#/services', label: 'Services', render: servicesPage, namespaced: true },
  { hash: '#/service', render: serviceDetailPage, namespaced: true, under: '#/services' },
  { hash: '#/subscribers', label: 'Subscribers', render: subscribersPage, namespaced: true },
  { hash: '#/namespaces', label: 'Namespaces', render: namespacesPage },
  { hash: '#/cluster', label: 'Cluster', render: clusterPage },
  { hash: '#/acl', label: 'Users & roles', render: aclPage, admin: true },
  { hash: '#/snapshot', label: 'Snapshot', render: snapshotPage, admin: true },
];

export async function start({ token, me, signOut }) {
  ctx.me = me;
  api.setSession(token, signOut);
  const root = document.getElementById('app');
  const visible = pages.filter((p) => p.label && (!p.admin || me.globalAdmin));
  root.replaceChildren(
    el('header', { class: 'top' },
      el('a', { class: 'brand', href: '#/services' }, 'Roster'),
      el('nav', {}, visible.map((p) => el('a', { href: p.hash, 'data-page': p.hash }, p.label))),
      el('span', { class: 'spacer' }),
      el('label', { class: 'ns' }, 'Namespace ', el('select', { id: 'namespace-select', onchange: (ev) => chooseNamespace(ev.target.value) })),
      me.authEnabled ? el('span', { id: 'whoami', class: 'muted' }, me.username) : el('span', { class: 'muted' }, 'auth off'),
      me.authEnabled ? el('button', { id: 'sign-out', type: 'button', onclick: signOut }, 'Sign out') : null),
    el('div', { id: 'error', class: 'error banner', role: 'alert', hidden: true }),
    el('div', { id: 'notice', class: 'notice banner', hidden: true }),
    el('main', { id: 'page' }));
  root.hidden = false;
  await fillNamespaces();
  window.addEventListener('hashchange', () => route());
  if (!location.hash) location.hash = '#/services';
  else route();
}

// fillNamespaces loads the namespaces the user may see into the selector and keeps
// the chosen one if it is still there.
async function fillNamespaces() {
  await guard(async () => {
    ctx.namespaces = (await loadNamespaces()).filter(mayWorkIn);
  });
  const ids = ctx.namespaces.map((n) => n.namespace);
  if (!ids.includes(ctx.namespace)) ctx.namespace = ids[0] ?? '';
  sessionStorage.setItem(NS_KEY, ctx.namespace);
  const sel = document.getElementById('namespace-select');
  sel.replaceChildren(...ctx.namespaces.map((n) =>
    el('option', { value: n.namespace, selected: n.namespace === ctx.namespace }, n.namespaceShowName || n.namespace || 'public')));
}

// mayWorkIn keeps, for a user who is not an administrator, the namespaces its grants
// name: the node lists public to everyone, as Nacos does, but a user granted one
// namespace has nothing to do in another.
function mayWorkIn(ns) {
  const me = ctx.me;
  if (!me.authEnabled || me.globalAdmin || !Array.isArray(me.grants)) return true;
  const id = ns.namespace || 'public';
  return me.grants.some((g) => g.resource === '*' || g.resource.split(':')[0] === id);
}

function chooseNamespace(id) {
  ctx.namespace = id;
  sessionStorage.setItem(NS_KEY, id);
  route();
}

// params reads the fragment's query: #/service?group=G&name=S.
function params() {
  const q = location.hash.split('?')[1] || '';
  return Object.fromEntries(new URLSearchParams(q));
}

// route renders the page the fragment names. A refresh after an action keeps the
// action's notice; moving to another page drops it.
async function route({ keepNotice = false } = {}) {
  const base = location.hash.split('?')[0] || '#/services';
  const p = pages.find((x) => x.hash === base) || pages[0];
  for (const a of document.querySelectorAll('header nav a')) {
    a.classList.toggle('active', a.dataset.page === (p.under || p.hash));
  }
  if (!keepNotice) document.getElementById('notice').hidden = true;
  clearError();
  const main = document.getElementById('page');
  main.dataset.page = p.hash.slice(2);
  main.dataset.ready = 'false';
  main.replaceChildren(el('p', { class: 'muted' }, 'Loading…'));
  const nodes = await guard(() => p.render(ctx, params()));
  main.replaceChildren(...(nodes || []));
  main.dataset.ready = 'true';
}
