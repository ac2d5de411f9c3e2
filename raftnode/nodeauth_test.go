package raftnode

import (
	"bytes"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/roster-registry/roster/nodeauth"
)

// nodeState is what a forged Raft message must not change.
type nodeState struct {
	Leader      string
	Term        uint64
	CommitIndex uint64
	LastLog     uint64
	Counts      string
}

func stateOf(n *Node, f *counterFSM) nodeState {
	st := n.Stats()
	leader, _ := n.Leader()
	f.mu.Lock()
	counts := fmt.Sprint(f.counts)
	f.mu.Unlock()
	return nodeState{Leader: leader, Term: st.Term, CommitIndex: st.CommitIndex, LastLog: st.LastLogIndex, Counts: counts}
}

// plainTransport is raft's own TCP transport, with no credential: what anyone who can
// reach the Raft port could run.
func plainTransport(t *testing.T) *raft.NetworkTransport {
	t.Helper()
	trans, err := raft.NewTCPTransportWithLogger("127.0.0.1:0", nil, 1, 2*time.Second, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { trans.Close() })
	return trans
}

// credTransport is a transport that proves cred.
func credTransport(t *testing.T, cred *nodeauth.Credential) *raft.NetworkTransport {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: cred.NewStreamLayer(ln, nil, nil), MaxPool: 1, Timeout: 2 * time.Second, Logger: hclog.NewNullLogger(),
	})
	t.Cleanup(func() { trans.Close() })
	return trans
}

// forge sends a follower an AppendEntries with a higher term and a new entry that
// commits, and an InstallSnapshot of a higher term that would replace its state.
func forge(trans *raft.NetworkTransport, target *Node, st nodeState) (appendErr, snapErr error) {
	id, addr := raft.ServerID(target.ID()), raft.ServerAddress(target.Addr())
	evilTerm := st.Term + 10
	var aresp raft.AppendEntriesResponse
	appendErr = trans.AppendEntries(id, addr, &raft.AppendEntriesRequest{
		RPCHeader:         raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("intruder"), Addr: []byte(trans.LocalAddr())},
		Term:              evilTerm,
		PrevLogEntry:      st.LastLog,
		PrevLogTerm:       st.Term,
		Entries:           []*raft.Log{{Index: st.LastLog + 1, Term: evilTerm, Type: raft.LogCommand, Data: []byte("incr:evil")}},
		LeaderCommitIndex: st.LastLog + 1,
	}, &aresp)

	snap := []byte(`{"Counts":{"evil":1000},"Applied":100000}`)
	var sresp raft.InstallSnapshotResponse
	snapErr = trans.InstallSnapshot(id, addr, &raft.InstallSnapshotRequest{
		RPCHeader:          raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("intruder"), Addr: []byte(trans.LocalAddr())},
		SnapshotVersion:    raft.SnapshotVersionMax,
		Term:               evilTerm,
		LastLogIndex:       100000,
		LastLogTerm:        evilTerm,
		Configuration:      raft.EncodeConfiguration(raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: "intruder", Address: trans.LocalAddr()}}}),
		ConfigurationIndex: 100000,
		Size:               int64(len(snap)),
	}, &sresp, bytes.NewReader(snap))
	return appendErr, snapErr
}

// TestRaftPortDropsMessagesWithoutTheCredential: a raw TCP connection to the Raft port
// without the cluster credential sends an AppendEntries and a snapshot install; both
// are dropped, and the cluster's state and term are unchanged on every node.
func TestRaftPortDropsMessagesWithoutTheCredential(t *testing.T) {
	fsms := []*counterFSM{newCounterFSM(), newCounterFSM(), newCounterFSM()}
	nodes := make([]*Node, 3)
	for i := range nodes {
		cfg := testConfig(t, fmt.Sprintf("n%d", i+1), t.TempDir())
		cfg.Bootstrap = i == 0
		// Room enough that no election happens by itself while the test looks.
		withClusterTiming(&cfg)
		nodes[i] = startNode(t, cfg, fsms[i])
	}
	waitSelfLeader(t, nodes[0])
	for _, n := range nodes[1:] {
		if err := nodes[0].AddVoter(n.ID(), n.Addr(), 5*time.Second); err != nil {
			t.Fatalf("AddVoter(%s): %v", n.ID(), err)
		}
	}
	for range 3 {
		mustApply(t, nodes[0], "incr:good")
	}
	waitFor(t, 10*time.Second, "every node to apply the same entries", func() bool {
		for i, n := range nodes {
			if fsms[i].count("good") != 3 || n.Stats().CommitIndex != nodes[0].Stats().CommitIndex {
				return false
			}
		}
		return true
	})
	before := make([]nodeState, len(nodes))
	for i, n := range nodes {
		before[i] = stateOf(n, fsms[i])
	}

	strangers := map[string]*raft.NetworkTransport{
		"no credential": plainTransport(t),
		"another key":   credTransport(t, nodeauth.Ephemeral()),
	}
	for name, trans := range strangers {
		for i, n := range nodes {
			appendErr, snapErr := forge(trans, n, before[i])
			if appendErr == nil {
				t.Errorf("%s: AppendEntries to %s was answered", name, n.ID())
			}
			if snapErr == nil {
				t.Errorf("%s: InstallSnapshot to %s was answered", name, n.ID())
			}
		}
	}

	// The same forged AppendEntries from a holder of the key reaches Raft (and is
	// answered): the refusals above are the credential's doing, not an unreachable port.
	follower := nodes[1]
	var resp raft.AppendEntriesResponse
	err := credTransport(t, testCredential).AppendEntries(raft.ServerID(follower.ID()), raft.ServerAddress(follower.Addr()),
		&raft.AppendEntriesRequest{RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax}, Term: 0}, &resp)
	if err != nil {
		t.Fatalf("a stale AppendEntries with the key was not answered: %v", err)
	}
	if resp.Success || resp.Term != before[1].Term {
		t.Fatalf("stale AppendEntries answer %+v; want a refusal naming term %d", resp, before[1].Term)
	}

	for i, n := range nodes {
		if after := stateOf(n, fsms[i]); after != before[i] {
			t.Errorf("%s changed: before %+v, after %+v", n.ID(), before[i], after)
		}
		if fsms[i].count("evil") != 0 || fsms[i].restoreCount() != 0 {
			t.Errorf("%s applied forged state: evil=%d restores=%d", n.ID(), fsms[i].count("evil"), fsms[i].restoreCount())
		}
	}
	// The cluster still works.
	mustApply(t, nodes[0], "incr:good")
	waitFor(t, 10*time.Second, "every node to apply a write after the attack", func() bool {
		for _, f := range fsms {
			if f.count("good") != 4 {
				return false
			}
		}
		return true
	})
}
