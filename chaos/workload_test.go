package chaos

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/roster-registry/roster/testsupport/linearcheck"
)

// Workload is the persistent load of R1/R3/R5/R14: clients on every node register and
// deregister a few shared keys, read them with consistent=true, and register unique
// keys (each acked one must survive). Every operation goes into a porcupine history.
type Workload struct {
	Service string
	Keys    int
	nodes   func() []*Node
	// history is every operation on the shared keys, for porcupine.
	history *linearcheck.History
	shared  []int

	mu sync.Mutex
	// mustHave: acked unique registrations; mustNot: unique keys registered and then
	// acked as deregistered.
	mustHave map[int]bool
	mustNot  map[int]bool
	// callAt is when each acked unique registration was sent, ackAt when its answer came.
	callAt map[int]time.Time
	ackAt  map[int]time.Time
	counts map[outcome]int
	// ackedOn counts acks per node; latencies of acked writes feed the p99.
	ackedOn   map[string]int
	latencies []time.Duration
	// onAck, when set, is told every acked write (node, status).
	onAnswer func(n *Node, o outcome, code int, call time.Time)

	stop chan struct{}
	wg   sync.WaitGroup
	acks atomic.Int64
}

func NewWorkload(svc string, keys int, nodes func() []*Node) *Workload {
	var shared []int
	for k := 7000; k < 7000+keys; k++ {
		shared = append(shared, k)
	}
	return &Workload{Service: svc, Keys: keys, nodes: nodes, history: linearcheck.NewHistory(), shared: shared,
		mustHave: map[int]bool{}, mustNot: map[int]bool{}, callAt: map[int]time.Time{}, ackAt: map[int]time.Time{}, counts: map[outcome]int{}, ackedOn: map[string]int{}, stop: make(chan struct{})}
}

// Run starts workers clients.
func (w *Workload) Run(workers int) {
	for i := range workers {
		w.wg.Add(1)
		go w.worker(i)
	}
}

func (w *Workload) Stop() {
	close(w.stop)
	w.wg.Wait()
}

func (w *Workload) Acked() int64 { return w.acks.Load() }

func (w *Workload) worker(id int) {
	defer w.wg.Done()
	rng := newRand(uint64(1000 + id))
	unique := 20000 + id*2000
	var mine []int // this worker's acked unique keys
	for i := 0; ; i++ {
		select {
		case <-w.stop:
			return
		default:
		}
		nodes := w.nodes()
		n := nodes[(id+i)%len(nodes)]
		if !n.Up() {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		r := rng.IntN(10)
		switch {
		case r < 6:
			key := 7000 + rng.IntN(w.Keys)
			present := r < 3
			call := w.history.Now()
			t0 := time.Now()
			var o outcome
			var code int
			if present {
				o, code = putP(n, w.Service, key)
			} else {
				o, code = delP(n, w.Service, key)
			}
			w.answer(n, o, code, time.Since(t0))
			switch o {
			case acked:
				w.history.Acked(id, key, present, call, w.history.Now())
			case unknown:
				w.history.Unknown(id, key, present, call)
			}
		case r < 9:
			call := w.history.Now()
			got, err := portSet(n, w.Service, true)
			ret := w.history.Now()
			if err != nil {
				continue
			}
			w.history.Read(id, w.shared, got, call, ret)
		default:
			if len(mine) > 0 && rng.IntN(3) == 0 {
				k := mine[len(mine)-1]
				t0 := time.Now()
				o, code := delP(n, w.Service, k)
				w.answer(n, o, code, time.Since(t0))
				if o == acked {
					mine = mine[:len(mine)-1]
					w.mu.Lock()
					delete(w.mustHave, k)
					w.mustNot[k] = true
					w.mu.Unlock()
				} else if o == unknown {
					mine = mine[:len(mine)-1]
					w.mu.Lock()
					delete(w.mustHave, k) // either outcome is allowed now
					w.mu.Unlock()
				}
				continue
			}
			unique++
			t0 := time.Now()
			o, code := putP(n, w.Service, unique)
			answered := time.Now()
			w.answer(n, o, code, answered.Sub(t0))
			if o == acked {
				mine = append(mine, unique)
				w.mu.Lock()
				w.mustHave[unique] = true
				w.callAt[unique] = t0
				w.ackAt[unique] = answered
				w.mu.Unlock()
			}
		}
	}
}

func (w *Workload) answer(n *Node, o outcome, code int, d time.Duration) {
	call := time.Now().Add(-d)
	w.mu.Lock()
	w.counts[o]++
	if o == acked {
		w.ackedOn[n.ID]++
		w.latencies = append(w.latencies, d)
	}
	cb := w.onAnswer
	w.mu.Unlock()
	if o == acked {
		w.acks.Add(1)
	}
	if cb != nil {
		cb(n, o, code, call)
	}
}

// WaitAcked waits until at least more writes have been acked since the call.
func (w *Workload) WaitAcked(t testing.TB, more int64, timeout time.Duration) {
	t.Helper()
	base := w.Acked()
	eventually(t, timeout, func() error {
		if got := w.Acked() - base; got < more {
			return fmt.Errorf("%d of %d more writes acked", got, more)
		}
		return nil
	})
}

// Check verifies, after Stop, that every node serves every acked unique registration
// and none of the acked unique deregistrations, and that the history is linearizable.
func (w *Workload) Check(t testing.TB, f *Figures, nodes []*Node) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	f.Set("acked writes", float64(w.counts[acked]))
	f.Set("unknown writes", float64(w.counts[unknown]))
	if w.counts[acked] < 20 {
		t.Fatalf("only %d acked writes: too few for a meaningful check", w.counts[acked])
	}
	lost, ghosts := 0, 0
	for _, n := range nodes {
		var got map[int]bool
		err := within(20*time.Second, func() error {
			var err error
			got, err = portSet(n, w.Service, false)
			if err != nil {
				return err
			}
			for k := range w.mustHave {
				if !got[k] {
					return fmt.Errorf("%s lacks acked key %d", n.ID, k)
				}
			}
			for k := range w.mustNot {
				if got[k] {
					return fmt.Errorf("%s still has deregistered key %d", n.ID, k)
				}
			}
			return nil
		})
		if err != nil {
			for k := range w.mustHave {
				if !got[k] {
					lost++
				}
			}
			for k := range w.mustNot {
				if got[k] {
					ghosts++
				}
			}
			t.Errorf("after convergence: %v", err)
		}
	}
	f.Set("acked registrations missing", float64(lost))
	f.Set("acked deregistrations present", float64(ghosts))
	switch err := w.history.Check(time.Minute); {
	case errors.Is(err, linearcheck.ErrNotLinearizable):
		f.Set("linearizable", 0)
		t.Error(err)
	case err != nil:
		t.Error(err) // the check timed out: no verdict
	default:
		f.Set("linearizable", 1)
	}
	f.Set("history ops", float64(w.history.Len()))
}

// p99 of acked write latencies recorded from index from on.
func (w *Workload) p99(from int) (time.Duration, int) {
	w.mu.Lock()
	l := append([]time.Duration(nil), w.latencies[min(from, len(w.latencies)):]...)
	w.mu.Unlock()
	if len(l) == 0 {
		return 0, 0
	}
	for i := 1; i < len(l); i++ {
		for j := i; j > 0 && l[j] < l[j-1]; j-- {
			l[j], l[j-1] = l[j-1], l[j]
		}
	}
	return l[len(l)*99/100], len(l)
}

func (w *Workload) latencyCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.latencies)
}

// ackedAfter reports whether the acked unique registration k was sent after at. The
// caller holds w.mu.
func (w *Workload) ackedAfter(k int, at time.Time) bool { return w.callAt[k].After(at) }
