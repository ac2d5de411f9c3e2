package registry

import "github.com/roster-registry/roster/persistence"

// OpenSnapshot opens a consistent point-in-time view of all persistent state (services
// and persistent instances, not the ephemeral ones) for streaming with WriteTo; its
// header's index is the Raft index that view reflects. The caller must Release it. The
// view is local: a caller that wants every committed write in it runs a Raft barrier
// on the leader first.
//
// Restoring goes through Raft (RestoreSnapshot): the FSM swaps the store and then reports every service as changed (fsm.OnChange with
// all=true), which drops the cached views and pushes to subscribers (persistentChanged).
func (r *Registry) OpenSnapshot() (*persistence.Snapshot, error) {
	return r.store.OpenSnapshot()
}
