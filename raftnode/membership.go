package raftnode

import (
	"time"

	"github.com/hashicorp/raft"
)

// Servers returns the latest Raft configuration (committed or not), in raft's order.
func (n *Node) Servers() ([]Server, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, leaderError("get configuration", err)
	}
	cfg := f.Configuration()
	out := make([]Server, 0, len(cfg.Servers))
	for _, s := range cfg.Servers {
		out = append(out, Server{ID: string(s.ID), Address: string(s.Address), Voter: s.Suffrage == raft.Voter})
	}
	return out, nil
}

// AddVoter adds (or, for a known id, re-addresses) a voting server. It must run on the
// leader. timeout bounds the wait to start the change; 0 means ApplyTimeout. Errors are
// those of Apply: the change is idempotent, so ErrUnknownOutcome can be retried.
func (n *Node) AddVoter(id, addr string, timeout time.Duration) error {
	if timeout <= 0 {
		timeout = n.applyTimeout
	}
	// A solo node's leader lease is as short as its election timeout, and raft cannot
	// reload a lease: with a second voter it would step down between heartbeats. A
	// restart picks the configured timeouts once the node is no longer alone.
	if n.solo {
		return ErrSolo
	}
	f := n.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, timeout)
	if err := f.Error(); err != nil {
		return applyError("add voter "+id, err, f.Index())
	}
	return nil
}

// RemoveServer removes a server from the configuration. It must run on the leader; a
// leader removing itself steps down once the change commits.
func (n *Node) RemoveServer(id string) error {
	f := n.raft.RemoveServer(raft.ServerID(id), 0, n.applyTimeout)
	if err := f.Error(); err != nil {
		return applyError("remove server "+id, err, f.Index())
	}
	return nil
}

// TransferLeadership hands leadership to the most up-to-date voter. It must run on the
// leader and returns once the transfer finished or failed.
func (n *Node) TransferLeadership() error {
	if err := n.raft.LeadershipTransfer().Error(); err != nil {
		return leaderError("transfer leadership", err)
	}
	return nil
}
