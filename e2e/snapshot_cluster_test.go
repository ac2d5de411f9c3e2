package e2e

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/roster-registry/roster/client"
)

// TestSnapshotClusterRestores brings up a 3-node cluster from one node's offline
// restore (the other two start empty with --bootstrap-expect and --join, and receive
// the state from it), then restores a later backup online through a follower (which
// passes it on to the leader): after each, all three nodes serve the snapshot's state,
// a backup saved through a follower holds it, and it survives a restart of every node.
func TestSnapshotClusterRestores(t *testing.T) {
	src := StartServer(t)
	sc := rosterClient(t, src)
	fillForSnapshot(t, sc)
	first := listing(t, sc)
	file1 := filepath.Join(t.TempDir(), "first.snap")
	save(t, src, file1)
	if err := sc.RegisterInstance(ctxT(t), client.ServiceRef{Name: "orders"}, persistentInstance("127.0.0.80", 8080)); err != nil {
		t.Fatal(err)
	}
	if err := sc.DeregisterInstance(ctxT(t), client.ServiceRef{Namespace: "dev", Group: "G2", Name: "inventory"}, persistentInstance("127.0.0.75", 7000)); err != nil {
		t.Fatal(err)
	}
	second := listing(t, sc)
	file2 := filepath.Join(t.TempDir(), "second.snap")
	index2 := save(t, src, file2)

	c := &Cluster{t: t}
	var join []string
	for i := range 3 {
		s := NewServer(t, "n"+strconv.Itoa(i+1))
		c.Nodes = append(c.Nodes, s)
		join = append(join, "127.0.0.1:"+strconv.Itoa(s.Port))
	}
	n1 := c.Nodes[0]
	if code, _, errs := roster(t, "snapshot", "restore", file1, "--data-dir", n1.DataDir, "--node-id", n1.NodeID, "--raft-addr", n1.RaftAddr); code != 0 {
		t.Fatalf("offline restore: %s", errs)
	}
	for _, s := range c.Nodes {
		s.Extra = []string{"--bootstrap-expect", "3", "--join", strings.Join(join, ",")}
		s.Launch()
	}
	restartAll := func() {
		t.Helper()
		for _, s := range c.Nodes {
			if s.running() {
				s.Stop()
			}
		}
		for _, s := range c.Nodes {
			s.Launch()
		}
		for _, s := range c.Nodes {
			s.WaitReady()
		}
		c.Leader()
	}
	for _, s := range c.Nodes {
		s.WaitReady()
	}
	leader := c.Leader()
	everyNodeServes := func(what, want string) {
		t.Helper()
		for _, s := range c.Nodes {
			cl := rosterClient(t, s)
			eventually(t, 10*time.Second, func() error {
				if got := listing(t, cl); got != want {
					return fmt.Errorf("%s: node %s serves:\n%s\nwant:\n%s", what, s.NodeID, got, want)
				}
				return nil
			})
		}
	}
	everyNodeServes("cluster formed around the offline-restored node", first)
	if st, err := raftOf(leader); err != nil || len(st.Servers) != 3 {
		t.Fatalf("configuration %+v, %v: want three voters", st, err)
	}

	var follower *Server
	for _, s := range c.Nodes {
		if s != c.Leader() {
			follower = s
			break
		}
	}
	code, out, errs := roster(t, "snapshot", "restore", file2, "--addr", follower.URL)
	if code != 0 {
		t.Fatalf("online restore through follower %s: exit %d: %s", follower.NodeID, code, errs)
	}
	if !strings.HasPrefix(out, fmt.Sprintf("restored snapshot at index %d: 4 services, 5 instances", index2)) {
		t.Errorf("restore printed %q", out)
	}
	everyNodeServes("after the online restore", second)
	again := filepath.Join(t.TempDir(), "again.snap")
	save(t, follower, again)
	if in := inspect(t, again); in.Services != 4 || in.Instances != 5 {
		t.Errorf("a backup saved through a follower after the restore: %+v", in)
	}

	restartAll()
	everyNodeServes("after every node restarted", second)
	if err := rosterClient(t, follower).RegisterInstance(ctxT(t), client.ServiceRef{Name: "orders"}, persistentInstance("127.0.0.78", 8080)); err != nil {
		t.Fatalf("write after the restarts: %v", err)
	}
}
