package registry

import (
	"context"
	"time"

	"github.com/roster-registry/roster/auth"
	"github.com/roster-registry/roster/fsm"
)

// ApplyAuth commits an access-control change through Raft. A change the state refuses
// comes back as a *naming.Error.
func (r *Registry) ApplyAuth(ctx context.Context, c auth.Change) error {
	_, err := r.apply(ctx, fsm.AuthChange{Change: c})
	return err
}

// EnsureSigningKey proposes a first token signing key until the replicated state has
// one. Every node may call it at start: the FSM keeps the first key committed and
// ignores later proposals, so the key is generated once per cluster and never leaves
// it except through Raft.
func (r *Registry) EnsureSigningKey(ctx context.Context, a *auth.Authority) error {
	for !a.HasKey() {
		k, err := auth.NewKey(time.Now())
		if err != nil {
			return err
		}
		if err := r.ApplyAuth(ctx, auth.Change{Op: auth.OpInitKey, Key: k}); err != nil {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(200 * time.Millisecond): // no leader yet; try again
			}
			continue
		}
		// The change is committed and applied on the node that took it; this node's
		// copy arrives with replication.
		for !a.HasKey() {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	return nil
}
