// Cluster: the Raft configuration with the leader, term and indexes
// (/roster/v1/operator/raft), each member's state as Nacos reports it
// (/nacos/v1/core/cluster/nodes), and removing a member.
import * as api from './api.js';
import { el, table, confirmDialog, guard, page, notice } from './ui.js';

export async function clusterPage(ctx) {
  const raft = await api.json('GET', '/roster/v1/operator/raft');
  let states = {};
  await guard(async () => {
    const nodes = await api.json('GET', '/nacos/v1/core/cluster/nodes', { withInstances: false, pageNo: 1, pageSize: 100, keyword: '' });
    states = Object.fromEntries((nodes.data || []).map((m) => [m.address, m.state]));
  });
  const rows = (raft.servers || []).map((s) => el('tr', { 'data-member': s.id },
    el('td', { class: 'mono' }, s.id),
    el('td', { class: 'mono' }, s.httpAddr),
    el('td', { class: 'mono' }, s.raftAddr),
    el('td', {}, s.leader ? el('span', { class: 'tag ok' }, 'leader') : 'follower'),
    el('td', {}, s.voter ? 'voter' : 'non-voter'),
    el('td', {}, states[s.httpAddr] ? el('span', { class: states[s.httpAddr] === 'UP' ? 'tag ok' : 'tag bad' }, states[s.httpAddr]) : '—'),
    el('td', { class: 'actions' },
      ctx.me.globalAdmin ? el('button', { type: 'button', class: 'link danger', onclick: () => confirmDialog(
        `Remove member ${s.id} (${s.raftAddr}) from the Raft configuration?`, async () => {
          await api.write('DELETE', '/roster/v1/operator/raft/peer', { id: s.id });
          notice(`Member ${s.id} removed.`);
          ctx.refresh();
        }, 'Remove') }, 'Remove') : null)));
  const leader = (raft.servers || []).find((s) => s.leader);
  return page('Cluster',
    el('section', { class: 'card', id: 'raft-state' }, el('dl', {},
      el('dt', {}, 'Leader'), el('dd', { id: 'raft-leader' }, leader ? `${leader.id} (${leader.httpAddr})` : raft.leader || 'none'),
      el('dt', {}, 'Term'), el('dd', { id: 'raft-term' }, raft.term),
      el('dt', {}, 'Commit index'), el('dd', { id: 'raft-commit' }, raft.commitIndex),
      el('dt', {}, 'Applied index'), el('dd', { id: 'raft-applied' }, raft.appliedIndex)),
    ctx.me.globalAdmin ? el('div', { class: 'actions' }, el('button', { type: 'button', onclick: () => guard(async () => {
      await api.write('POST', '/roster/v1/operator/raft/transfer-leader', {});
      notice('Leadership transfer started.');
      ctx.refresh();
    }) }, 'Transfer leadership')) : null),
    table('members', ['Node', 'HTTP address', 'Raft address', 'Role', 'Vote', 'State', ''], rows));
}
