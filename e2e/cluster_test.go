package e2e

import (
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestClusterFormsAndReplicates: three empty nodes started with --bootstrap-expect 3
// form one cluster; writes through every node are seen on every node.
func TestClusterFormsAndReplicates(t *testing.T) {
	c := StartCluster(t, 3)
	// Every member learns the others' HTTP addresses within a sync interval.
	eventually(t, 5*time.Second, func() error {
		v, err := raftOf(c.Nodes[0])
		if err != nil {
			return err
		}
		if len(v.Servers) != 3 {
			return fmt.Errorf("configuration has %d servers, want 3: %+v", len(v.Servers), v)
		}
		for _, s := range v.Servers {
			if !s.Voter || s.HTTPAddr == "" {
				return fmt.Errorf("server %+v: want a voter with its HTTP address", s)
			}
		}
		return nil
	})
	want := map[int]bool{}
	for i, s := range c.Nodes {
		for j := 0; j < 5; j++ {
			port := 1000 + i*10 + j
			if o, err := putInstance(s, "replicated", port); o != acked {
				t.Fatalf("register through %s: %v", s.NodeID, err)
			}
			want[port] = true
		}
	}
	c.waitHas("replicated", want, 10*time.Second)
	// A consistent read on a follower goes through the leader and sees everything.
	leader := c.Leader()
	for _, s := range c.Nodes {
		if s == leader {
			continue
		}
		got, err := ports(s, "replicated", true)
		if err != nil || len(got) != len(want) {
			t.Fatalf("consistent read on %s: %d ports, %v", s.NodeID, len(got), err)
		}
	}
	// The Nacos views show the same members.
	for _, path := range []string{"/nacos/v1/core/cluster/nodes", "/nacos/v1/ns/operator/servers"} {
		eventually(t, 5*time.Second, func() error {
			resp, err := fastHTTP.Get(c.Nodes[1].URL + path)
			if err != nil {
				return err
			}
			b := readAll(resp)
			for _, s := range c.Nodes {
				if !strings.Contains(b, `"address":"127.0.0.1:`+strconv.Itoa(s.Port)+`"`) {
					return fmt.Errorf("%s lacks %s: %s", path, s.NodeID, b)
				}
			}
			return nil
		})
	}
}

// TestClusterLeaderKill: kill -9 of the leader; a new leader is elected, writes through
// the survivors succeed, the killed node catches up after its restart, and no
// acknowledged write is missing anywhere.
func TestClusterLeaderKill(t *testing.T) {
	c := StartCluster(t, 3)
	want := map[int]bool{}
	for i := 0; i < 20; i++ {
		if o, err := putInstance(c.Nodes[i%3], "failover", 2000+i); o != acked {
			t.Fatalf("write %d: %v", i, err)
		}
		want[2000+i] = true
	}
	old := c.Leader()
	killed := time.Now()
	old.kill9()
	survivor := c.Running()[0]
	// First successful write after the kill measures the failover.
	port := 3000
	eventually(t, 20*time.Second, func() error {
		o, err := putInstance(survivor, "failover", port)
		if o == acked {
			return nil
		}
		if o == unknown {
			port++ // an unknown outcome may still land: never reuse its key as "acked"
		}
		return fmt.Errorf("write after kill: %v", err)
	})
	t.Logf("failover: leader kill -> first acknowledged write in %v", time.Since(killed).Round(time.Millisecond))
	want[port] = true
	newLeader := c.Leader()
	if newLeader == old {
		t.Fatal("the killed node is still the leader")
	}
	for i := 0; i < 10; i++ {
		s := c.Running()[i%2]
		if o, err := putInstance(s, "failover", 4000+i); o != acked {
			t.Fatalf("write through survivor %s: %v", s.NodeID, err)
		}
		want[4000+i] = true
	}
	old.Start()
	c.waitHas("failover", want, 20*time.Second)
}

// TestClusterMembership: remove-peer takes a follower out; a new node joins with --join
// and catches up from a snapshot; a node restarted on a new Raft address keeps its data
// and its place.
func TestClusterMembership(t *testing.T) {
	c := StartCluster(t, 3, "--snapshot-threshold", "16", "--trailing-logs", "8", "--snapshot-interval", "200ms")
	want := map[int]bool{}
	for i := 0; i < 60; i++ {
		if o, err := putInstance(c.Nodes[i%3], "members", 5000+i); o != acked {
			t.Fatalf("write %d: %v", i, err)
		}
		want[5000+i] = true
	}
	leader := c.Leader()
	var follower *Server
	for _, s := range c.Nodes {
		if s != leader {
			follower = s
			break
		}
	}

	// remove-peer through the CLI, against a node that may not be the leader.
	bin, _ := binaries(t)
	out, err := exec.Command(bin, "operator", "raft", "remove-peer", "--id", follower.NodeID, "--addr", c.Nodes[0].URL).CombinedOutput()
	if err != nil {
		t.Fatalf("remove-peer: %v\n%s", err, out)
	}
	eventually(t, 10*time.Second, func() error {
		v, err := raftOf(leader)
		if err != nil {
			return err
		}
		for _, s := range v.Servers {
			if s.ID == follower.NodeID {
				return fmt.Errorf("%s still in the configuration", follower.NodeID)
			}
		}
		return nil
	})
	follower.kill9()
	c.Nodes = without(c.Nodes, follower)

	// A new node joins and catches up; the log was compacted, so it needs a snapshot.
	fresh := NewServer(t, "n4")
	fresh.Extra = []string{"--join", "127.0.0.1:" + strconv.Itoa(leader.Port), "--snapshot-threshold", "16", "--trailing-logs", "8"}
	fresh.Start()
	c.Nodes = append(c.Nodes, fresh)
	c.waitHas("members", want, 20*time.Second)
	out, err = exec.Command(bin, "operator", "raft", "list-peers", "--addr", fresh.URL, "-o", "json").CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"id": "n4"`) || strings.Contains(string(out), `"id": "`+follower.NodeID+`"`) {
		t.Fatalf("list-peers after the change: %v\n%s", err, out)
	}

	// A follower restarted on a new Raft address keeps its data and its place.
	var mover *Server
	for _, s := range c.Running() {
		if s != c.Leader() {
			mover = s
			break
		}
	}
	mover.Stop()
	mover.RaftAddr = "127.0.0.1:" + strconv.Itoa(freePort(t))
	mover.Start()
	eventually(t, 15*time.Second, func() error {
		v, err := raftOf(c.Leader())
		if err != nil {
			return err
		}
		for _, s := range v.Servers {
			if s.ID == mover.NodeID && s.RaftAddr == mover.RaftAddr {
				return nil
			}
		}
		return fmt.Errorf("%s not in the configuration at %s: %+v", mover.NodeID, mover.RaftAddr, v.Servers)
	})
	if o, err := putInstance(mover, "members", 6000); o != acked {
		t.Fatalf("write through the moved node: %v", err)
	}
	want[6000] = true
	c.waitHas("members", want, 15*time.Second)
}

func without(list []*Server, s *Server) []*Server {
	var out []*Server
	for _, x := range list {
		if x != s {
			out = append(out, x)
		}
	}
	return out
}
