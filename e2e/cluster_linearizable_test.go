package e2e

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// regInput is one operation on the presence register of one instance (a port).
type regInput struct {
	Key   int
	Write bool // true: set present to Value; false: read
	Value bool
}

// presenceModel is a register per key: is the instance registered? Writes are
// register (true) and deregister (false); reads are consistent=true lists.
var presenceModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[int][]porcupine.Operation{}
		for _, op := range history {
			k := op.Input.(regInput).Key
			byKey[k] = append(byKey[k], op)
		}
		var out [][]porcupine.Operation
		for _, ops := range byKey {
			out = append(out, ops)
		}
		return out
	},
	Init: func() any { return false },
	Step: func(state, input, output any) (bool, any) {
		in := input.(regInput)
		if in.Write {
			return true, in.Value
		}
		return output.(bool) == state.(bool), state
	},
	Equal: func(a, b any) bool { return a.(bool) == b.(bool) },
	DescribeOperation: func(input, output any) string {
		in := input.(regInput)
		if in.Write {
			return fmt.Sprintf("set(%d)=%v", in.Key, in.Value)
		}
		return fmt.Sprintf("get(%d)->%v", in.Key, output)
	},
}

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
		runFor  = 8 * time.Second
	)
	start := time.Now()
	now := func() int64 { return int64(time.Since(start)) }
	var (
		mu      sync.Mutex
		history []porcupine.Operation
		mustSee = map[int]bool{}
		counts  = map[outcome]int{}
	)
	record := func(op porcupine.Operation) {
		mu.Lock()
		history = append(history, op)
		mu.Unlock()
	}

	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			node := c.Nodes[w%3]
			rng := rand.New(rand.NewPCG(uint64(w), 42))
			unique := 20000 + w*1000
			for i := 0; time.Since(start) < runFor; i++ {
				if !node.running() {
					time.Sleep(20 * time.Millisecond) // the node is down: wait for its restart
					continue
				}
				switch r := rng.IntN(10); {
				case r < 7:
					key := 7000 + rng.IntN(keys)
					present := r < 4
					call := now()
					var o outcome
					if present {
						o, _ = putInstance(node, svc, key)
					} else {
						o, _ = delInstance(node, svc, key)
					}
					ret := now()
					mu.Lock()
					counts[o]++
					mu.Unlock()
					switch o {
					case acked:
						record(porcupine.Operation{ClientId: w, Input: regInput{Key: key, Write: true, Value: present}, Call: call, Return: ret})
					case unknown:
						// May have happened at any point from its call on.
						record(porcupine.Operation{ClientId: w, Input: regInput{Key: key, Write: true, Value: present}, Call: call, Return: math.MaxInt64})
					}
				case r < 9:
					call := now()
					got, err := ports(node, svc, true)
					ret := now()
					if err != nil {
						continue // a refused read says nothing
					}
					for k := 7000; k < 7000+keys; k++ {
						record(porcupine.Operation{ClientId: w, Input: regInput{Key: k}, Output: got[k], Call: call, Return: ret})
					}
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

	ackedSoFar := func() int {
		mu.Lock()
		defer mu.Unlock()
		return counts[acked]
	}
	// Kill the leader once the load is under way, and restart it once the survivors
	// have taken writes of their own.
	eventually(t, 10*time.Second, func() error {
		if n := ackedSoFar(); n < 150 {
			return fmt.Errorf("%d writes acknowledged before the kill, want 150", n)
		}
		return nil
	})
	leader := c.Leader()
	leader.kill9()
	before := ackedSoFar()
	t.Logf("killed leader %s at %v after %d acknowledged writes", leader.NodeID, time.Since(start).Round(time.Millisecond), before)
	eventually(t, 10*time.Second, func() error {
		if n := ackedSoFar() - before; n < 100 {
			return fmt.Errorf("%d writes acknowledged by the survivors, want 100", n)
		}
		return nil
	})
	leader.Start()
	wg.Wait()

	t.Logf("writes: %d acked, %d unknown, %d refused; %d operations recorded", counts[acked], counts[unknown], counts[failed], len(history))
	if counts[acked] < 50 {
		t.Fatalf("too few acknowledged writes (%d) for a meaningful check", counts[acked])
	}
	c.waitHas(svc, mustSee, 20*time.Second)
	res := porcupine.CheckOperationsTimeout(presenceModel, history, time.Minute)
	if res == porcupine.Illegal {
		t.Fatal("history is not linearizable")
	}
	if res == porcupine.Unknown {
		t.Fatal("linearizability check timed out")
	}
}
