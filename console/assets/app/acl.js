// Users, roles and grants: Roster's access control (/roster/v1/acl), kept in Raft.
import * as api from './api.js';
import { el, table, formDialog, confirmDialog, page, notice } from './ui.js';

function shownPassword(cred, what) {
  notice(`${what} ${cred.username}. Password (shown once): ${cred.password}`);
}

export async function aclPage(ctx) {
  const [users, roles, grants] = await Promise.all([
    api.json('GET', '/roster/v1/acl/users'),
    api.json('GET', '/roster/v1/acl/roles'),
    api.json('GET', '/roster/v1/acl/grants'),
  ]);
  const userRows = (users.users || []).map((u) => el('tr', { 'data-user': u.username },
    el('td', {}, u.username), el('td', {}, (u.roles || []).join(', ')),
    el('td', { class: 'actions' },
      el('button', { type: 'button', class: 'link', onclick: () => formDialog(`New password for ${u.username}`, [
        { name: 'password', label: 'Password', type: 'password', hint: 'blank: generated' },
      ], async (v) => {
        const cred = await api.json('PUT', '/roster/v1/acl/users', { username: u.username, password: v.password });
        ctx.refresh();
        shownPassword(cred, 'Password set for');
      }) }, 'Set password'),
      el('button', { type: 'button', class: 'link danger', onclick: () => confirmDialog(`Delete user ${u.username}?`, async () => {
        await api.write('DELETE', '/roster/v1/acl/users', { username: u.username });
        notice(`User ${u.username} deleted.`);
        ctx.refresh();
      }) }, 'Delete'))));
  const roleRows = [];
  for (const [role, members] of Object.entries(roles.roles || {})) {
    for (const user of members) {
      roleRows.push(el('tr', {}, el('td', {}, role), el('td', {}, user), el('td', { class: 'actions' },
        el('button', { type: 'button', class: 'link danger', onclick: () => confirmDialog(`Take role ${role} from ${user}?`, async () => {
          await api.write('DELETE', '/roster/v1/acl/roles', { role, username: user });
          ctx.refresh();
        }, 'Unbind') }, 'Unbind'))));
    }
  }
  const grantRows = (grants.grants || []).map((g) => el('tr', {},
    el('td', {}, g.role), el('td', { class: 'mono' }, g.resource), el('td', {}, g.action),
    el('td', { class: 'actions' }, el('button', { type: 'button', class: 'link danger', onclick: () => confirmDialog(
      `Revoke ${g.action} on ${g.resource} from role ${g.role}?`, async () => {
        await api.write('DELETE', '/roster/v1/acl/grants', g);
        ctx.refresh();
      }, 'Revoke') }, 'Revoke'))));
  const bar = (...b) => el('div', { class: 'filters' }, el('span', { class: 'spacer' }), ...b);
  return page('Users, roles and grants',
    el('h2', {}, 'Users'),
    bar(el('button', { type: 'button', id: 'create-user', class: 'primary', onclick: () => formDialog('Create user', [
      { name: 'username', label: 'Username' },
      { name: 'password', label: 'Password', type: 'password', hint: 'blank: generated' },
    ], async (v) => {
      const cred = await api.json('POST', '/roster/v1/acl/users', v);
      ctx.refresh();
      shownPassword(cred, 'Created user');
    }) }, 'Create user')),
    table('users', ['User', 'Roles', ''], userRows),
    el('h2', {}, 'Roles'),
    bar(el('button', { type: 'button', id: 'bind-role', onclick: () => formDialog('Bind a role to a user', [
      { name: 'role', label: 'Role', hint: 'ROLE_ADMIN is the administrators\' role' },
      { name: 'username', label: 'User' },
    ], async (v) => {
      await api.write('POST', '/roster/v1/acl/roles', v);
      ctx.refresh();
    }, 'Bind') }, 'Bind role')),
    table('roles', ['Role', 'User', ''], roleRows),
    el('h2', {}, 'Grants'),
    bar(el('button', { type: 'button', id: 'add-grant', onclick: () => formDialog('Grant a role access', [
      { name: 'role', label: 'Role' },
      { name: 'resource', label: 'Resource', placeholder: 'namespace or namespace:group' },
      { name: 'action', label: 'Action', type: 'select', options: ['r', 'w', 'rw'], value: 'r' },
    ], async (v) => {
      await api.write('POST', '/roster/v1/acl/grants', v);
      ctx.refresh();
    }, 'Grant') }, 'Add grant')),
    table('grants', ['Role', 'Resource', 'Action', ''], grantRows));
}
