package registry

import (
	"context"
	"errors"

	"github.com/roster-registry/roster/cluster"
	"github.com/roster-registry/roster/fsm"
	"github.com/roster-registry/roster/naming"
	"github.com/roster-registry/roster/raftnode"
)

// CP writes: a command validated once (validate, or by the caller's own checks) is
// marshalled and committed through the leader by cluster.Apply, which forwards from a
// follower. The FSM's rejection comes back as the caller's *naming.Error.

// limits are this node's validation limits: the node that takes a write checks it.
func (r *Registry) limits() fsm.Limits {
	return fsm.Limits{MaxMetadata: r.cfg.MaxMetadata, Timing: r.cfg.Timing}
}

// validate applies the command table's rules to a command.
func (r *Registry) validate(cmd fsm.Command) error { return fsm.Validate(cmd, r.limits()) }

// apply validates and proposes a command whose input nothing else has validated.
func (r *Registry) apply(ctx context.Context, cmd fsm.Command) (any, error) {
	if err := r.validate(cmd); err != nil {
		return nil, err
	}
	return r.propose(ctx, cmd)
}

// propose commits a validated command and returns the FSM's answer.
func (r *Registry) propose(ctx context.Context, cmd fsm.Command) (any, error) {
	data, err := fsm.Marshal(cmd)
	if err != nil {
		return nil, err
	}
	res, err := r.cluster.Apply(ctx, data)
	if err != nil {
		return nil, clientError(err)
	}
	if e, ok := res.(error); ok {
		return nil, e
	}
	return res, nil
}

// clientError is the one translation of the Raft and cluster sentinels into what a
// client is told; every front then answers *naming.Error in its own table. Lost
// leadership or a timeout after the entry was enqueued is an unknown outcome: never a
// success.
func clientError(err error) error {
	var ne *naming.Error
	switch {
	case errors.As(err, &ne):
		return ne
	case errors.Is(err, raftnode.ErrUnknownOutcome), errors.Is(err, cluster.ErrCallOutcome):
		return naming.Unavailable("write outcome unknown: leadership was lost before it was confirmed; retry or read back")
	case errors.Is(err, raftnode.ErrNotLeader), errors.Is(err, raftnode.ErrNoLeader), errors.Is(err, raftnode.ErrShutdown):
		return naming.Unavailable("no leader is available to take the write; retry later")
	}
	return err
}
