package e2e

import (
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// TestSingleNodeNewRaftAddress (R13 d): a single node restarted on another Raft
// address elects itself, keeps its data and takes writes.
func TestSingleNodeNewRaftAddress(t *testing.T) {
	s := StartServer(t)
	for i := 0; i < 5; i++ {
		if o, err := putInstance(s, "moved", 8000+i); o != acked {
			t.Fatalf("write: %v", err)
		}
	}
	s.Stop()
	s.RaftAddr = "127.0.0.1:" + strconv.Itoa(freePort(t))
	start := time.Now()
	s.Start()
	if o, err := putInstance(s, "moved", 8005); o != acked {
		t.Fatalf("write after the move: %v", err)
	}
	t.Logf("restart on a new raft address to first write: %v", time.Since(start).Round(time.Millisecond))
	got, err := ports(s, "moved", true)
	if err != nil || len(got) != 6 {
		t.Fatalf("after the move: %v %v", got, err)
	}
}

// TestRemovedNodeStaysOut (R13 a, c): a removed node restarted with its old data is
// refused and does not disturb the cluster; an empty node started with
// --bootstrap-expect next to a live cluster joins it instead of forming a second one.
func TestRemovedNodeStaysOut(t *testing.T) {
	c := StartCluster(t, 3)
	leader := c.Leader()
	var removed *Server
	for _, s := range c.Nodes {
		if s != leader {
			removed = s
			break
		}
	}
	removed.Stop()
	req := fmt.Sprintf("%s/roster/v1/operator/raft/peer?id=%s", leader.URL, removed.NodeID)
	if st, body := do(t, "DELETE", req); st != 200 {
		t.Fatalf("remove-peer: %d %s", st, body)
	}
	termBefore := mustRaft(t, leader).Term
	removed.Launch() // it may never become ready: it is not a member any more
	if o, err := putInstance(leader, "stay-out", 9000); o != acked {
		t.Fatalf("write with the removed node back up: %v", err)
	}
	// The survivors keep their leader and term while the removed node runs.
	eventually(t, 5*time.Second, func() error {
		v := mustRaft(t, leader)
		if len(v.Servers) != 2 {
			return fmt.Errorf("configuration has %d servers: %+v", len(v.Servers), v.Servers)
		}
		return nil
	})
	if after := mustRaft(t, leader); after.Term != termBefore || after.Leader != leader.NodeID {
		t.Fatalf("the removed node disturbed the cluster: term %d -> %d, leader %s", termBefore, after.Term, after.Leader)
	}
	removed.kill9()

	// An empty node told to bootstrap 3 with the live members in --join joins them.
	fresh := NewServer(t, "n9")
	join := ""
	for _, s := range c.Running() {
		join += "127.0.0.1:" + strconv.Itoa(s.Port) + ","
	}
	fresh.Extra = []string{"--bootstrap-expect", "3", "--join", join + "127.0.0.1:" + strconv.Itoa(fresh.Port)}
	fresh.Start()
	eventually(t, 10*time.Second, func() error {
		v := mustRaft(t, fresh)
		if v.Leader != leader.NodeID || len(v.Servers) != 3 {
			return fmt.Errorf("fresh node sees leader %q and %d servers", v.Leader, len(v.Servers))
		}
		return nil
	})
	c.Nodes = append(without(c.Nodes, removed), fresh)
	c.waitHas("stay-out", map[int]bool{9000: true}, 10*time.Second)
}

func mustRaft(t *testing.T, s *Server) raftView {
	t.Helper()
	v, err := raftOf(s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func do(t *testing.T, method, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := fastHTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, readAll(resp)
}
