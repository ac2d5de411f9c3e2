package raftnode

import (
	"errors"
	"fmt"

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
