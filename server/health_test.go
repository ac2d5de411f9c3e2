package server_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/roster-registry/roster/fsm"
	"github.com/roster-registry/roster/naming"
	"github.com/roster-registry/roster/registry"
	"github.com/roster-registry/roster/server"
	"github.com/roster-registry/roster/server/servertest"
)

// TestHealthFlipAcrossMembers: a follower's prober reads its targets from its own store,
// its flip is forwarded to the leader and applied on every member, and a stale flip sent
// through another member comes back as the same typed refusal.
func TestHealthFlipAcrossMembers(t *testing.T) {
	nodes := servertest.StartCluster(t, 3)
	_, followers := splitByRole(nodes)
	if len(followers) != 2 {
		t.Fatalf("%d followers among three nodes", len(followers))
	}
	ctx := context.Background()
	svc := key("public", "probed")
	if err := followers[0].Registry().Register(ctx, svc, inst("127.0.0.1", 7, false)); err != nil {
		t.Fatal(err)
	}
	target := func(n *server.Server) (registry.ProbeTarget, bool) {
		list, err := n.Registry().ProbeTargets()
		if err != nil {
			t.Fatal(err)
		}
		for _, pt := range list {
			if pt.Service == svc {
				return pt, true
			}
		}
		return registry.ProbeTarget{}, false
	}
	var seen registry.ProbeTarget
	eventually(t, 10*time.Second, func() (bool, string) {
		var ok bool
		seen, ok = target(followers[0])
		return ok, "the follower has no probe target yet"
	})
	view := registry.ProbeView{Prober: followers[0].NodeID(), Members: sortedIDs(nodes), Epoch: 1}
	if err := followers[0].Registry().FlipHealth(ctx, svc, seen.Ref(), false, seen.Revision, view); err != nil {
		t.Fatalf("flip through a follower: %v", err)
	}
	var flipped registry.ProbeTarget
	for _, n := range nodes {
		eventually(t, 10*time.Second, func() (bool, string) {
			in, err := n.Registry().Instance(ctx, svc, "127.0.0.1", 7, naming.DefaultCluster)
			pt, _ := target(n)
			flipped = pt
			return err == nil && !in.Healthy && !pt.Healthy && pt.Revision > seen.Revision,
				fmt.Sprintf("%s: instance %+v (%v), target %+v", n.NodeID(), in, err, pt)
		})
	}
	err := followers[1].Registry().FlipHealth(ctx, svc, seen.Ref(), true, seen.Revision, view)
	var rej *fsm.FlipRejection
	if !errors.As(err, &rej) || rej.Outcome != fsm.FlipStaleRevision || rej.Revision != flipped.Revision {
		t.Fatalf("stale flip through the other follower = %v, want a stale-revision refusal at %d", err, flipped.Revision)
	}
}

func sortedIDs(nodes []*server.Server) []string {
	var ids []string
	for _, n := range nodes {
		ids = append(ids, n.NodeID())
	}
	slices.Sort(ids)
	return ids
}
