package chaos

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestR1KillUnderLoad: SIGKILL a random node (the leader half the time) under
// persistent write load, restart it; 1 node and 3 nodes.
func TestR1KillUnderLoad(t *testing.T) {
	for _, nodes := range []int{1, 3} {
		t.Run(fmt.Sprintf("%dnode", nodes), func(t *testing.T) {
			scenario(t, fmt.Sprintf("R1/%dnode", nodes), "kill -9 under write load", func(t *testing.T, f *Figures) {
				runR1(t, f, nodes)
			})
		})
	}
}

func runR1(t *testing.T, f *Figures, size3 int) {
	var c *Cluster
	if size3 == 1 {
		c = &Cluster{t: t, links: map[[2]string]*Link{}}
		n := newNode(t, "n1")
		c.Nodes = []*Node{n}
		n.Start()
	} else {
		c = StartCluster(t, 3)
	}
	rng := newRand(1)
	w := NewWorkload("r1", 6, func() []*Node { return c.Nodes })
	w.Run(size(4, 8))
	w.WaitAcked(t, 50, 20*time.Second)
	kills := size(3, 0)
	runFor := size(time.Duration(0), 10*time.Minute)
	start := time.Now()
	var lastRestart time.Time
	for i := 0; ; i++ {
		if runFor > 0 && time.Since(start) > runFor || runFor == 0 && i >= kills {
			break
		}
		victim := c.Nodes[rng.IntN(len(c.Nodes))]
		if len(c.Nodes) > 1 && rng.IntN(2) == 0 {
			victim = c.Leader(20 * time.Second)
		}
		victim.Kill9()
		t.Logf("kill -9 %s", victim.ID)
		if len(c.Nodes) > 1 {
			w.WaitAcked(t, 20, 20*time.Second) // the survivors take writes
		} else {
			time.Sleep(200 * time.Millisecond) // downtime: writes meanwhile are refused
		}
		d := victim.Start()
		f.Max("restart to ready max, s", d.Seconds())
		lastRestart = time.Now()
		w.WaitAcked(t, 30, 30*time.Second)
		pause := size(time.Duration(0), time.Duration(10+rng.IntN(20))*time.Second)
		time.Sleep(pause) // the fault schedule, not synchronisation
	}
	w.Stop()
	d, err := converged(c.Nodes, []string{"r1"}, 10*time.Second)
	_ = d
	f.Secs("state equal after last restart, s", time.Since(lastRestart))
	if err != nil {
		t.Errorf("nodes' states not equal within 10 s of the last restart: %v", err)
	}
	w.Check(t, f, c.Nodes)
}

// leaderWatch records, for every node, the terms in which it said it was the leader:
// two different nodes claiming one term is the split-brain R3 forbids.
type leaderWatch struct {
	mu     sync.Mutex
	claims map[uint64]map[string]bool
	stop   chan struct{}
	done   chan struct{}
}

func watchLeaders(c *Cluster) *leaderWatch {
	lw := &leaderWatch{claims: map[uint64]map[string]bool{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(lw.done)
		for {
			for _, n := range c.Nodes {
				if !n.Up() {
					continue
				}
				if v, err := raftOf(n); err == nil && v.Leader == n.ID {
					lw.mu.Lock()
					if lw.claims[v.Term] == nil {
						lw.claims[v.Term] = map[string]bool{}
					}
					lw.claims[v.Term][n.ID] = true
					lw.mu.Unlock()
				}
			}
			select {
			case <-lw.stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	return lw
}

// Stop ends the watch and returns the number of terms with two leaders.
func (lw *leaderWatch) Stop() (int, string) {
	close(lw.stop)
	<-lw.done
	lw.mu.Lock()
	defer lw.mu.Unlock()
	bad, ex := 0, ""
	for term, ids := range lw.claims {
		if len(ids) > 1 {
			bad++
			ex = fmt.Sprintf("term %d: %v", term, ids)
		}
	}
	return bad, ex
}

func termOf(t testing.TB, c *Cluster) uint64 {
	var max uint64
	for _, n := range c.Running() {
		if v, err := raftOf(n); err == nil && v.Term > max {
			max = v.Term
		}
	}
	return max
}

// TestR3Partitions: isolate the leader, isolate a follower, a 2/1 split, a partial
// partition, and random rounds, under load.
func TestR3Partitions(t *testing.T) {
	scenario(t, "R3", "partitions via TCP proxies", func(t *testing.T, f *Figures) {
		c := StartCluster(t, 3)
		lw := watchLeaders(c)
		w := NewWorkload("r3", 6, func() []*Node { return c.Nodes })
		// minority: the isolated node and when its isolation began.
		var mu sync.Mutex
		var minority *Node
		var since time.Time
		badAcks := 0
		w.onAnswer = func(n *Node, o outcome, code int, call time.Time) {
			mu.Lock()
			defer mu.Unlock()
			if minority == n && o == acked && call.After(since) {
				badAcks++
				t.Logf("write through isolated %s called %v after the fault was acked after %v", n.ID, call.Sub(since).Round(time.Millisecond), time.Since(call).Round(time.Millisecond))
			}
		}
		// The writes' call time matters, not their answer's: set minority before the
		// fault and give in-flight writes through the node before it a moment.
		w.Run(4)
		w.WaitAcked(t, 40, 20*time.Second)
		hold := size(3*time.Second, 10*time.Second)
		type round struct {
			name string
			do   func() *Node // applies the fault, returns the minority node (if one)
		}
		rounds := []round{
			{"isolate leader", func() *Node { l := c.Leader(20 * time.Second); c.Isolate(l); return l }},
			{"isolate follower", func() *Node { fl := c.Followers(c.Leader(20 * time.Second))[0]; c.Isolate(fl); return fl }},
			{"2/1 split", func() *Node { n := c.Nodes[newRand(7).IntN(3)]; c.Isolate(n); return n }},
			{"partial A-C", func() *Node {
				l := c.Leader(20 * time.Second)
				c.Cut(l, c.Followers(l)[0])
				return nil
			}},
		}
		rng := newRand(3)
		for i := range size(2, 10) {
			kind := rng.IntN(4)
			rounds = append(rounds, round{fmt.Sprintf("random %d", i), rounds[kind].do})
		}
		elections, leaderLosses, healthyLapses := 0, 0, 0
		for _, r := range rounds {
			before := termOf(t, c)
			oldLeader := c.Leader(20 * time.Second)
			// Writes answered before this instant may have been sent before the fault.
			mu.Lock()
			minority, since = nil, time.Now().Add(time.Hour)
			mu.Unlock()
			logFrom := map[string]int{}
			for _, n := range c.Nodes {
				logFrom[n.ID] = len(n.Log())
			}
			m := r.do()
			faulted := c.faultedPairs()
			mu.Lock()
			minority, since = m, time.Now()
			mu.Unlock()
			if m != nil {
				// A consistent read on the minority side must be refused (503), not
				// answered, and refused within the server's bounds: a leader's barrier
				// waits applyTimeout, a follower's forward to a leader it cannot reach
				// forwardTimeout.
				bound := max(applyTimeout, forwardTimeout) + answerSlack
				t0 := time.Now()
				code, err := consistentReadStatus(m, "r3")
				el := time.Since(t0)
				f.Max("minority consistent read answered after max, s", el.Seconds())
				switch {
				case err != nil:
					t.Errorf("%s: consistent=true read on isolated %s: no answer after %v (%v); want 503 within %v", r.name, m.ID, el.Round(time.Millisecond), err, bound)
				case code == 200:
					t.Errorf("%s: consistent=true read on isolated %s answered", r.name, m.ID)
				case code != 503:
					t.Errorf("%s: consistent=true read on isolated %s: %d, want 503", r.name, m.ID, code)
				case el > bound:
					t.Errorf("%s: consistent=true read on isolated %s refused after %v, want within %v", r.name, m.ID, el.Round(time.Millisecond), bound)
				}
				// A write on the minority side must not be acked, and is answered within
				// the same bounds (a follower's hold for a leader is shorter).
				t0 = time.Now()
				o, code, _, _ := doFormWith(probe, http.MethodPost, m.URL+"/nacos/v1/ns/instance", url.Values{
					"serviceName": {"r3"}, "ip": {"127.0.0.1"}, "port": {"9000"}, "ephemeral": {"false"}})
				if o == acked {
					t.Errorf("%s: write on isolated %s acked", r.name, m.ID)
				}
				el = time.Since(t0)
				f.Max("minority write answered after max, s", el.Seconds())
				if code == 0 || el > bound {
					t.Errorf("%s: minority write answered %d after %v, want an answer within %v", r.name, code, el.Round(time.Millisecond), bound)
				}
			}
			time.Sleep(hold) // the fault's duration, by design
			mu.Lock()
			minority = nil
			mu.Unlock()
			c.Heal()
			newLeader := c.Leader(20 * time.Second)
			d, err := converged(c.Nodes, []string{"r3"}, 10*time.Second)
			f.Max("states equal after heal max, s", d.Seconds())
			if err != nil {
				t.Errorf("%s: states not equal 10 s after heal: %v", r.name, err)
			}
			after := termOf(t, c)
			lost := newLeader != oldLeader
			if lost {
				leaderLosses++
			}
			elections += int(after - before)
			if after-before > 1 {
				// The fault accounts for one election. A further one that began with a
				// leader stepping down for lack of contact with a member it had a healthy
				// link to was not the fault's doing: on this shared 2-core machine a
				// member (or the test process, whose proxies carry every link) is now and
				// then starved past the 500 ms leader lease. It is counted, not failed;
				// anything else (the rejoining node disrupting the others, repeated
				// split votes) fails.
				if ex, ok := healthySideLeaseLapse(c, logFrom, faulted); ok {
					healthyLapses++
					t.Logf("%s: term moved %d → %d; the extra election followed a lease lapse on a healthy link (%s)", r.name, before, after, ex)
				} else {
					t.Errorf("%s: term moved %d → %d: more than one election for one fault", r.name, before, after)
				}
			}
			t.Logf("%s: minority %v, leader %s → %s, term %d → %d", r.name, m != nil, oldLeader.ID, newLeader.ID, before, after)
			w.WaitAcked(t, 10, 20*time.Second)
		}
		w.Stop()
		bad, ex := lw.Stop()
		f.Set("rounds", float64(len(rounds)))
		f.Set("terms with two leaders", float64(bad))
		f.Set("elections", float64(elections))
		f.Set("leader losses", float64(leaderLosses))
		f.Set("extra elections after a lease lapse on a healthy link", float64(healthyLapses))
		mu.Lock()
		f.Set("minority writes acked", float64(badAcks))
		if badAcks > 0 {
			t.Errorf("%d writes through an isolated node were acked", badAcks)
		}
		mu.Unlock()
		if bad > 0 {
			t.Errorf("two leaders in one term: %s", ex)
		}
		w.Check(t, f, c.Nodes)
	})
}

// TestR2WholeClusterCrash: SIGKILL all three at once mid-load, start them in random
// order 0–10 s apart while ephemeral clients keep beating.
func TestR2WholeClusterCrash(t *testing.T) {
	scenario(t, "R2", "whole-cluster crash and restart", func(t *testing.T, f *Figures) {
		c := StartCluster(t, 3)
		rng := newRand(2)
		w := NewWorkload("r2", 4, func() []*Node { return c.Nodes })
		b := NewBeaters("r2-eph", func() []*Node { return c.Nodes })
		for p := range size(30, 300) {
			b.Start(10000+p, "")
		}
		w.Run(4)
		w.WaitAcked(t, 60, 20*time.Second)
		for _, n := range c.Nodes {
			go n.Kill9()
		}
		for _, n := range c.Nodes {
			for n.Running() {
				n.Kill9()
			}
		}
		order := rng.Perm(3)
		gap := size(2*time.Second, 10*time.Second)
		var second time.Time
		for i, idx := range order {
			if i > 0 {
				time.Sleep(time.Duration(rng.Int64N(int64(gap)))) // the start schedule
			}
			c.Nodes[idx].Launch()
			if i == 1 {
				second = time.Now()
				// Leader among the first two ≤ 5 s after the second is up.
				first := c.Nodes[order[0]]
				err := within(10*time.Second, func() error {
					for _, n := range []*Node{first, c.Nodes[idx]} {
						v, err := raftOf(n)
						if err != nil || v.Leader == "" {
							return fmt.Errorf("%s knows no leader", n.ID)
						}
					}
					return nil
				})
				el := time.Since(second)
				f.Secs("leader after second node up, s", el)
				if err != nil || el > 5*time.Second {
					t.Errorf("leader %v after the second node was up (want ≤ 5 s): %v", el, err)
				}
			}
		}
		for _, n := range c.Nodes {
			n.WaitReady()
		}
		allUp := time.Now()
		// Clients registered after the restart must never be deleted by the sync.
		for p := range 5 {
			b.Start(11000+p, "")
		}
		// Every beating client listed again on every node.
		err := within(30*time.Second, func() error {
			if m, ex := b.missing(c.Nodes); m > 0 {
				return fmt.Errorf("%d missing (%s)", m, ex)
			}
			return nil
		})
		relisted := time.Since(allUp)
		f.Secs("beating clients listed everywhere after restart, s", relisted)
		if err != nil || relisted > 10*time.Second {
			t.Errorf("beating clients listed %v after restart (want ≤ 10 s): %v", relisted, err)
		}
		// Sample for a while: nothing registered after the start disappears.
		missing := 0
		for range 5 {
			m, ex := b.missing(c.Nodes)
			if m > 0 {
				t.Logf("missing: %s", ex)
			}
			missing += m
			time.Sleep(time.Second)
		}
		f.Set("live instances missing after relisting", float64(missing))
		if missing > 0 {
			t.Errorf("%d live instance samples missing after the restart", missing)
		}
		b.StopAll()
		w.Stop()
		w.Check(t, f, c.Nodes)
	})
}

// TestR5Pause: SIGSTOP the leader, then SIGCONT; separately SIGSTOP a Distro owner.
func TestR5Pause(t *testing.T) {
	scenario(t, "R5", "process pause", func(t *testing.T, f *Figures) {
		c := StartCluster(t, 3)
		w := NewWorkload("r5", 6, func() []*Node { return c.Nodes })
		b := NewBeaters("r5-eph", func() []*Node { return c.Nodes })
		for p := range size(30, 300) {
			b.Start(10000+p, "")
		}
		w.Run(4)
		w.WaitAcked(t, 40, 20*time.Second)
		leader := c.Leader(20 * time.Second)
		leader.Pause()
		pause := size(4*time.Second, 30*time.Second)
		others := c.Followers(leader)
		var newLeader *Node
		eventually(t, 20*time.Second, func() error {
			newLeader = c.Leader(20*time.Second, others...)
			if newLeader == leader {
				return fmt.Errorf("the others still follow paused %s", leader.ID)
			}
			return nil
		})
		t.Logf("paused leader %s; %s took over", leader.ID, newLeader.ID)
		time.Sleep(pause) // the pause's length, by design
		leader.Cont()
		t0 := time.Now()
		eventually(t, 10*time.Second, func() error {
			v, err := raftOf(leader)
			if err != nil {
				return err
			}
			if v.Leader == leader.ID {
				return fmt.Errorf("resumed %s still says it leads (term %d)", leader.ID, v.Term)
			}
			return nil
		})
		f.Secs("resumed leader stepped down after, s", time.Since(t0))
		w.WaitAcked(t, 40, 20*time.Second)

		// A Distro owner paused: still-beating clients must not be removed anywhere.
		victim := c.Followers(c.Leader(20 * time.Second))[0]
		victim.Pause()
		missing := 0
		end := time.Now().Add(size(8*time.Second, 60*time.Second))
		for time.Now().Before(end) {
			m, ex := b.missing(c.Followers(victim))
			if m > 0 {
				t.Logf("while %s paused: %s", victim.ID, ex)
			}
			missing += m
			time.Sleep(time.Second)
		}
		victim.Cont()
		for range 5 {
			m, ex := b.missing(c.Nodes)
			if m > 0 {
				t.Logf("after %s resumed: %s", victim.ID, ex)
			}
			missing += m
			time.Sleep(time.Second)
		}
		f.Set("still-beating instances missing (samples)", float64(missing))
		if missing > 0 {
			t.Errorf("%d samples of a still-beating instance missing", missing)
		}
		b.StopAll()
		w.Stop()
		w.Check(t, f, c.Nodes)
		if strings.Contains(leader.Log(), "panic") {
			t.Error("the paused node panicked")
		}
	})
}

// consistentReadStatus asks n for a consistent=true list of svc through the probe client
// and returns the status code (err: no answer at all).
func consistentReadStatus(n *Node, svc string) (int, error) {
	resp, err := probe.Get(n.URL + "/nacos/v1/ns/instance/list?consistent=true&serviceName=" + url.QueryEscape(svc))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// faultedPairs is the set of members (by id, either order) whose link in either
// direction has a fault now.
func (c *Cluster) faultedPairs() map[[2]string]bool {
	out := map[[2]string]bool{}
	for k, l := range c.links {
		if l.get() != Healthy {
			out[[2]string{k[0], k[1]}] = true
			out[[2]string{k[1], k[0]}] = true
		}
	}
	return out
}

// healthySideLeaseLapse looks in each node's log since logFrom for a leader that
// stepped down ("failed to contact quorum of nodes") having failed to contact a member
// over a link without a fault, and describes the first it finds.
func healthySideLeaseLapse(c *Cluster, logFrom map[string]int, faulted map[[2]string]bool) (string, bool) {
	for _, n := range c.Nodes {
		log := n.Log()
		if from := logFrom[n.ID]; from <= len(log) {
			log = log[from:]
		}
		if !strings.Contains(log, "failed to contact quorum of nodes, stepping down") {
			continue
		}
		for _, line := range strings.Split(log, "\n") {
			if !strings.Contains(line, `msg="failed to contact"`) {
				continue
			}
			_, rest, ok := strings.Cut(line, "server-id=")
			if !ok {
				continue
			}
			peer, _, _ := strings.Cut(rest, " ")
			if !faulted[[2]string{n.ID, peer}] {
				return fmt.Sprintf("%s lost contact with %s: %s", n.ID, peer, strings.TrimSpace(line)), true
			}
		}
	}
	return "", false
}
