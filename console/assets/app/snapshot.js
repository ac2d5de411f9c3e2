// Snapshot download: the leader's consistent snapshot of all persistent state
// (GET /roster/v1/snapshot), saved as a file. Restore is the CLI's
// (`roster snapshot restore`), which verifies the file before it replaces anything.
import * as api from './api.js';
import { el, guard, page, notice } from './ui.js';

async function download() {
  const resp = await api.request('GET', '/roster/v1/snapshot');
  const name = /filename="([^"]+)"/.exec(resp.headers.get('Content-Disposition') || '')?.[1] || 'roster.snap';
  const blob = await resp.blob();
  const url = URL.createObjectURL(blob);
  const a = el('a', { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
  const h = (k) => resp.headers.get(k) || '?';
  notice(`Saved ${name}: ${blob.size} bytes, Raft index ${h('X-Roster-Snapshot-Index')}, term ${h('X-Roster-Snapshot-Term')}, ` +
    `${h('X-Roster-Snapshot-Services')} services, ${h('X-Roster-Snapshot-Instances')} persistent instances.`);
}

export async function snapshotPage() {
  return page('Snapshot',
    el('section', { class: 'card' },
      el('p', {}, 'A snapshot holds every persistent service, instance, namespace and the access-control state, as of one Raft index. ' +
        'Ephemeral instances are not in it: their clients register them again.'),
      el('p', { class: 'muted' }, 'Restore a snapshot with roster snapshot restore FILE; it checks the file\'s checksum before anything changes.'),
      el('button', { type: 'button', id: 'download-snapshot', class: 'primary', onclick: () => guard(download) }, 'Download snapshot')));
}
