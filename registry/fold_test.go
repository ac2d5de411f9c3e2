package registry

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/roster-registry/roster/naming"
	"github.com/roster-registry/roster/persistence"
)

// Concurrent persistent registrations share Raft log entries (the leader folds them
// into batch entries), and each still gets its own answer: with an instance quota of
// quota and twice as many racing registrations, exactly quota succeed and the rest are
// refused with the quota error, whichever entry each landed in.
func TestConcurrentRegistrationsShareLogEntries(t *testing.T) {
	const quota, writers = 150, 300
	solo := startSolo(t, Config{NamespaceMaxInstances: quota}, true)
	r, store, node, machine, parts := solo.registry, solo.store, solo.node, solo.machine, solo.parts
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	deadline := time.Now().Add(10 * time.Second)
	for !parts.Cluster.Folds() {
		if time.Now().After(deadline) {
			t.Fatal("a node alone never started folding")
		}
		time.Sleep(5 * time.Millisecond) // the cluster's start-up loop sets it; no event to wait on
	}

	logBefore, fsmBefore := node.LogStats(), machine.Stats()
	errs := make([]error, writers)
	var wg sync.WaitGroup
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = r.Register(ctx, key(fmt.Sprintf("svc%d", i%3)), inst(fmt.Sprintf("10.9.%d.%d", i/256, i%256), 8080, false))
		}()
	}
	wg.Wait()
	ok, refused := 0, 0
	for i, err := range errs {
		var ne *naming.Error
		switch {
		case err == nil:
			ok++
		case errors.As(err, &ne) && *ne == *naming.ErrQuota(naming.DefaultNamespace, "instances", quota):
			refused++
		default:
			t.Fatalf("registration %d: %v", i, err)
		}
	}
	if ok != quota || refused != writers-quota {
		t.Fatalf("%d registered and %d refused; want %d and %d", ok, refused, quota, writers-quota)
	}
	var stored int
	if err := store.View(func(tx *persistence.Tx) (err error) {
		_, stored, err = tx.Counts()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if stored != quota {
		t.Fatalf("%d instances stored, want %d", stored, quota)
	}
	entries := node.LogStats().Entries - logBefore.Entries
	commands := machine.Stats().Commands - fsmBefore.Commands
	t.Logf("%d commands in %d log entries (%+v folded)", commands, entries, parts.Cluster.FoldStats())
	if commands == 0 || entries*2 > commands {
		t.Fatalf("%d commands took %d log entries: the registrations were not folded", commands, entries)
	}
}
