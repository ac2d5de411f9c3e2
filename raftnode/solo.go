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

// snapshotHasOthers reports whether the newest snapshot's configuration names a voter
// other than self: a cheap guard against running solo on a cluster member's data. It
// does not read the log (that would cost a pass over every entry at each start).
func snapshotHasOthers(self raft.ServerID, snaps raft.SnapshotStore) bool {
	metas, err := snaps.List()
	if err != nil || len(metas) == 0 {
		return false
	}
	for _, s := range metas[0].Configuration.Servers {
		if s.Suffrage == raft.Voter && s.ID != self {
			return true
		}
	}
	return false
}

// ErrSolo refuses a membership change on a node that runs on solo timeouts.
var ErrSolo = errors.New("raftnode: this node runs alone with solo election timeouts; restart it before adding voters")
