package raftnode

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/hashicorp/raft"
)

// ErrAlreadyBootstrapped means BootstrapServers found existing state: another member's
// configuration reached this node first, or it was bootstrapped before.
var ErrAlreadyBootstrapped = errors.New("raftnode: raft state exists; not bootstrapping")

// HasState reports whether this node knows any Raft configuration: it was
// bootstrapped, has joined a cluster, or has data from before.
func (n *Node) HasState() bool {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return true
	}
	return len(f.Configuration().Servers) > 0
}

// BootstrapServers starts a new cluster with the given voters. Every member that is
// part of the same formation must call it with the same list; hashicorp/raft makes
// that safe. A node that already has state answers ErrAlreadyBootstrapped.
func (n *Node) BootstrapServers(servers []Server) error {
	if err := n.checkOpen("bootstrap"); err != nil {
		return err
	}
	conf := raft.Configuration{}
	for _, s := range servers {
		suffrage := raft.Voter
		if !s.Voter {
			suffrage = raft.Nonvoter
		}
		conf.Servers = append(conf.Servers, raft.Server{Suffrage: suffrage, ID: raft.ServerID(s.ID), Address: raft.ServerAddress(s.Address)})
	}
	err := n.raft.BootstrapCluster(conf).Error()
	if errors.Is(err, raft.ErrCantBootstrap) {
		return ErrAlreadyBootstrapped
	}
	if err != nil {
		return fmt.Errorf("raftnode: bootstrap: %w", err)
	}
	n.logger.Info("bootstrapped cluster", "servers", len(servers))
	return nil
}

// barrierTerm is the term in which this node, as leader, last completed a Barrier: all
// entries of earlier terms are applied locally from then on.
type barrierTerm struct{ atomic.Uint64 }

// ConsistentRead makes a following local read linearizable: the node confirms it is
// still the leader (VerifyLeader alone is not enough: a new leader may not have applied
// what earlier leaders committed) and that a Barrier has completed in its current term.
func (n *Node) ConsistentRead(ctx context.Context) error {
	if !n.IsLeader() {
		return ErrNotLeader
	}
	term := n.raft.CurrentTerm()
	if err := n.VerifyLeader(ctx); err != nil {
		return err
	}
	if n.readBarrier.Load() == term {
		return nil
	}
	if err := n.Barrier(ctx); err != nil {
		return err
	}
	n.readBarrier.Store(term)
	return nil
}
