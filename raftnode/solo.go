package raftnode

import (
	"errors"
	"time"

	"github.com/hashicorp/raft"
)

// soloTimeout is the heartbeat and election timeout of a node that is the only voter of
// its configuration. With no other voter there is nobody to disagree with and no network
// to wait for, so a short timeout only makes start-up fast: a lone node is leader
// within milliseconds instead of after a full election timeout.
const soloTimeout = 20 * time.Millisecond

// soleVoter reports whether the latest configuration on disk (the newest snapshot's
// configuration plus configuration entries after it), or the one about to be
// bootstrapped, has exactly one voter: this node.
func soleVoter(self raft.ServerID, bootstrapping bool, logs raft.LogStore, snaps raft.SnapshotStore) bool {
	if bootstrapping {
		return true
	}
	var conf raft.Configuration
	var from uint64 = 1
	if metas, err := snaps.List(); err == nil && len(metas) > 0 {
		conf = metas[0].Configuration
		from = metas[0].Index + 1
	}
	last, err := logs.LastIndex()
	if err != nil {
		return false
	}
	if first, err := logs.FirstIndex(); err == nil && first > from {
		from = first
	}
	for i := from; i <= last && i > 0; i++ {
		var entry raft.Log
		if err := logs.GetLog(i, &entry); err != nil {
			continue
		}
		if entry.Type == raft.LogConfiguration {
			conf = raft.DecodeConfiguration(entry.Data)
		}
	}
	voters := 0
	selfVoter := false
	for _, s := range conf.Servers {
		if s.Suffrage == raft.Voter {
			voters++
			selfVoter = selfVoter || s.ID == self
		}
	}
	return voters == 1 && selfVoter
}

// ErrSolo refuses a membership change on a node that runs on solo timeouts.
var ErrSolo = errors.New("raftnode: this node runs alone with solo election timeouts; restart it before adding voters")
