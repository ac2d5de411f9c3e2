package e2e

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/roster-registry/roster/testsupport/linearcheck"
)

// TestClusterLinearizable: clients on all three nodes register, deregister and read
// (consistent=true) a few instances concurrently while the leader is killed once and
// restarted. Every acknowledged unique registration is present on every node
// afterwards, and porcupine finds the recorded history linearizable (writes with an
// unknown outcome count as either).
func TestClusterLinearizable(t *testing.T) {
	c := StartCluster(t, 3)
	const (
		svc     = "linearizable"
		keys    = 6
		workers = 6
		// Each phase ends once enough writes were acknowledged in it, not after a fixed
		// time: with production's election timeout a loaded machine may spend several
		// seconds of a fixed run on the failover alone.
		beforeKill   = 150
		bySurvivors  = 100
		afterRestart = 50
	)
	start := time.Now()
	history := linearcheck.NewHistory()
	var shared []int
	for k := 7000; k < 7000+keys; k++ {
		shared = append(shared, k)
	}
	var (
		mu      sync.Mutex
		mustSee = map[int]bool{}
		counts  = map[outcome]int{}
	)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			node := c.Nodes[w%3]
			rng := rand.New(rand.NewPCG(uint64(w), 42))
			unique := 20000 + w*1000
			for {
				select {
				case <-stop:
					return
				default:
				}
				if !node.running() {
					time.Sleep(20 * time.Millisecond) // the node is down: wait for its restart
					continue
				}
				switch r := rng.IntN(10); {
				case r < 7:
					key := 7000 + rng.IntN(keys)
					present := r < 4
					call := history.Now()
					var o outcome
					if present {
						o, _ = putInstance(node, svc, key)
					} else {
						o, _ = delInstance(node, svc, key)
					}
					ret := history.Now()
					mu.Lock()
					counts[o]++
					mu.Unlock()
					switch o {
					case acked:
						history.Acked(w, key, present, call, ret)
					case unknown:
						history.Unknown(w, key, present, call)
					}
				case r < 9:
					call := history.Now()
					got, err := ports(node, svc, true)
					ret := history.Now()
					if err != nil {
						continue // a refused read says nothing
					}
					history.Read(w, shared, got, call, ret)
				default:
					unique++
					if o, _ := putInstance(node, svc, unique); o == acked {
						mu.Lock()
						mustSee[unique] = true
						mu.Unlock()
					}
				}
			}
		}(w)
	}

	var stopOnce sync.Once
	halt := func() {
		stopOnce.Do(func() { close(stop) })
		wg.Wait()
	}
	defer halt() // a failed wait below leaves no worker running

	ackedSoFar := func() int {
		mu.Lock()
		defer mu.Unlock()
		return counts[acked]
	}
	// waitAcked waits for want more acknowledged writes than there were at from.
	waitAcked := func(from, want int, what string) {
		t.Helper()
		eventually(t, 30*time.Second, func() error {
			if n := ackedSoFar() - from; n < want {
				return fmt.Errorf("%d writes acknowledged %s, want %d", n, what, want)
			}
			return nil
		})
	}
	// Kill the leader once the load is under way, restart it once the survivors have
	// taken writes of their own, and stop once the restarted node is back in the load.
	waitAcked(0, beforeKill, "before the kill")
	leader := c.Leader()
	leader.kill9()
	before := ackedSoFar()
	t.Logf("killed leader %s at %v after %d acknowledged writes", leader.NodeID, time.Since(start).Round(time.Millisecond), before)
	waitAcked(before, bySurvivors, "by the survivors")
	leader.Start()
	waitAcked(ackedSoFar(), afterRestart, "after the restart")
	halt()

	t.Logf("writes: %d acked, %d unknown, %d refused; %d operations recorded", counts[acked], counts[unknown], counts[failed], history.Len())
	if counts[acked] < 50 {
		t.Fatalf("too few acknowledged writes (%d) for a meaningful check", counts[acked])
	}
	c.waitHas(svc, mustSee, 20*time.Second)
	if err := history.Check(time.Minute); err != nil {
		t.Fatal(err)
	}
}
