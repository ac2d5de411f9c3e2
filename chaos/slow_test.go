package chaos

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// snapshotIndex is the Raft index of n's newest snapshot (0 when none): hashicorp/raft
// names snapshot dirs term-index-timestamp.
func snapshotIndex(n *Node) uint64 {
	var best uint64
	for _, d := range snapshots(n.DataDir) {
		parts := strings.Split(filepath.Base(d), "-")
		if len(parts) >= 2 {
			if i, err := strconv.ParseUint(parts[1], 10, 64); err == nil && i > best {
				best = i
			}
		}
	}
	return best
}

// TestR4SlowFollower: blackhole a follower until the leader has compacted well past it,
// heal, and measure the catch-up by snapshot install; then a 75 ± 50 ms delay.
func TestR4SlowFollower(t *testing.T) {
	scenario(t, "R4", "slow follower and snapshot install", func(t *testing.T, f *Figures) {
		threshold, trailing, past := size(200, 1000), size(100, 500), size(1000, 5000)
		c := StartCluster(t, 3, "--snapshot-threshold", strconv.Itoa(threshold), "--trailing-logs", strconv.Itoa(trailing), "--snapshot-interval", "200ms")
		leader := c.Leader(20 * time.Second)
		slow := c.Followers(leader)[0]
		healthy := []*Node{leader, c.Followers(leader)[1]}
		if healthy[1] == slow {
			healthy[1] = c.Followers(leader)[0]
		}
		lw := watchLeaders(c)
		w := NewWorkload("r4", 4, func() []*Node { return healthy })
		w.Run(4)
		w.WaitAcked(t, int64(size(200, 1000)), 60*time.Second)
		base, baseN := w.p99(0)
		f.Set("baseline write p99, ms", float64(base.Milliseconds()))
		c.Isolate(slow)
		sv, err := raftOf(slow)
		if err != nil {
			t.Fatal(err)
		}
		frozen := sv.AppliedIndex
		t.Logf("isolated %s at applied index %d (leader %s)", slow.ID, frozen, leader.ID)
		eventually(t, 5*time.Minute, func() error {
			v, err := raftOf(leader)
			if err != nil {
				return err
			}
			if v.AppliedIndex < frozen+uint64(past) {
				return fmt.Errorf("leader at %d, follower at %d: want %d past", v.AppliedIndex, frozen, past)
			}
			if s := snapshotIndex(leader); s < frozen+uint64(trailing)+1 {
				return fmt.Errorf("leader's newest snapshot at %d does not compact past %d", s, frozen)
			}
			return nil
		})
		installsBefore := strings.Count(slow.Log(), "Installed remote snapshot")
		from := w.latencyCount()
		lv, err := raftOf(leader)
		if err != nil {
			t.Fatal(err)
		}
		c.Heal()
		t0 := time.Now()
		err = within(30*time.Second, func() error {
			sv, err := raftOf(slow)
			if err != nil {
				return err
			}
			if sv.AppliedIndex < lv.AppliedIndex {
				return fmt.Errorf("follower at %d, leader was at %d at the heal", sv.AppliedIndex, lv.AppliedIndex)
			}
			return nil
		})
		caught := time.Since(t0)
		if lv, err := raftOf(leader); err == nil {
			t.Logf("healed: leader at %d, newest snapshot %d", lv.AppliedIndex, snapshotIndex(leader))
		}
		f.Secs("follower caught up after heal, s", caught)
		if err != nil {
			t.Errorf("follower did not catch up within 30 s: %v", err)
		}
		during, n := w.p99(from)
		f.Set("write p99 during install, ms", float64(during.Milliseconds()))
		if n > 20 && baseN > 20 && during > 3*base && during-3*base > 100*time.Millisecond {
			t.Errorf("write p99 %v during the install > 3 × baseline %v", during, base)
		}
		installs := 0
		_ = within(5*time.Second, func() error { // the log line follows the install
			installs = strings.Count(slow.Log(), "Installed remote snapshot") - installsBefore
			if installs == 0 {
				return fmt.Errorf("no install logged")
			}
			return nil
		})
		f.Set("InstallSnapshot rounds", float64(installs))
		if installs < 1 || installs > 2 {
			t.Errorf("%d snapshot installs on the slow follower, want 1 or 2", installs)
		}
		// A delayed follower: 75 ± 50 ms on every link to and from it.
		d := Fault{Delay: 75 * time.Millisecond, Jitter: 50 * time.Millisecond}
		for _, o := range c.Nodes {
			if o != slow {
				c.Link(slow, o).Set(d)
				c.Link(o, slow).Set(d)
			}
		}
		time.Sleep(size(5*time.Second, 60*time.Second)) // the delay's length, by design
		c.Heal()
		w.Stop()
		if got := c.Leader(20 * time.Second); got != leader {
			t.Errorf("leader changed %s → %s because of the slow follower", leader.ID, got.ID)
		}
		bad, ex := lw.Stop()
		if bad > 0 {
			t.Errorf("two leaders in one term: %s", ex)
		}
		dd, err := converged(c.Nodes, []string{"r4"}, 10*time.Second)
		f.Secs("states equal after, s", dd)
		if err != nil {
			t.Error(err)
		}
		w.Check(t, f, c.Nodes)
	})
}

// TestR7MembershipChurn: under ephemeral load add a 4th node, remove it, remove a
// follower, transfer leadership, kill the node that owns a third of the clients.
func TestR7MembershipChurn(t *testing.T) {
	scenario(t, "R7", "membership churn with ephemeral load", func(t *testing.T, f *Figures) {
		if *flagFull {
			setBeatTiming(t, 5*time.Second, 15*time.Second, 30*time.Second)
		}
		c := StartCluster(t, 3)
		count := size(150, 10000)
		b, _ := ephemeralLoad(c, "r7", count, 0)
		defer b.StopAll()
		eventually(t, 60*time.Second, func() error {
			if live := len(b.Live(0)); live < count {
				return fmt.Errorf("%d of %d clients registered", live, count)
			}
			return nil
		})
		ew := watchExpiry(c.Nodes, b, size(250*time.Millisecond, time.Second))
		// A subscriber on every member: none may push an empty list while clients beat.
		var subs []*Subscriber
		subscribe := func(n *Node) {
			eventually(t, 30*time.Second, func() error {
				s, err := Subscribe(n, "r7", 5*time.Second)
				if err == nil {
					subs = append(subs, s)
				}
				return err
			})
		}
		for _, n := range c.Nodes {
			subscribe(n)
		}
		defer func() {
			for _, s := range subs {
				s.Close()
			}
		}()
		var joined atomic.Pointer[Node]
		rw := watchResponsibility(func() []*Node {
			nodes := c.Running()
			if n := joined.Load(); n != nil {
				nodes = append(nodes, n)
			}
			return nodes
		}, b, time.Second)
		step := func(name string, fn func()) {
			fn()
			t.Logf("%s done", name)
		}
		// Add a 4th node.
		n4 := newNode(t, "n4")
		var join []string
		for _, n := range c.Nodes {
			join = append(join, "127.0.0.1:"+strconv.Itoa(n.Port))
		}
		n4.Extra = []string{"--join", strings.Join(join, ",")}
		step("add n4", func() { n4.Start(); joined.Store(n4); subscribe(n4) })
		time.Sleep(2 * time.Second) // load runs with four members
		removePeer := func(n *Node) {
			leader := c.Leader(20*time.Second, c.Followers(n)...)
			req, _ := http.NewRequest(http.MethodDelete, leader.URL+"/roster/v1/operator/raft/peer?id="+n.ID, nil)
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != 200 {
				t.Fatalf("remove %s: %s %s", n.ID, resp.Status, readBody(resp))
			}
			resp.Body.Close()
			if _, err := n.Term(); err != nil {
				t.Fatal(err)
			}
		}
		var losses []time.Time // when a member left: removed or killed
		step("remove n4", func() { removePeer(n4); losses = append(losses, time.Now()) })
		leader := c.Leader(20 * time.Second)
		gone := c.Followers(leader)[0]
		step("remove a follower", func() { removePeer(gone); losses = append(losses, time.Now()) })
		step("transfer leadership", func() {
			resp, err := hc.Post(leader.URL+"/roster/v1/operator/raft/transfer-leader", "", nil)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != 200 {
				t.Fatalf("transfer leadership: %s %s", resp.Status, readBody(resp))
			}
			resp.Body.Close()
		})
		time.Sleep(2 * time.Second) // load runs under the new leader
		// Kill the node that owns a share of the clients (one of the two left).
		left := c.Running()
		victim := left[newRand(77).IntN(len(left))]
		step("kill "+victim.ID, func() { losses = append(losses, time.Now()); victim.Kill9() })
		last := time.Now()
		// Stop some clients: they must still disappear (no ghosts).
		stopped := map[int]time.Time{}
		for i := range count / 20 {
			stopped[10000+i] = b.StopOne(10000 + i)
		}
		survivors := c.Running()
		err := within(10*time.Second+deleteTimeout, func() error {
			var first string
			for i, n := range survivors {
				got, err := portSet(n, "r7", false)
				if err != nil {
					return err
				}
				s := fmt.Sprint(sortedKeys(got))
				if i == 0 {
					first = s
				} else if s != first {
					return fmt.Errorf("%s lists another set than %s", n.ID, survivors[0].ID)
				}
			}
			return nil
		})
		f.Secs("ephemeral sets equal after the last change, s", time.Since(last))
		if err != nil {
			t.Errorf("sets not equal: %v", err)
		}
		time.Sleep(deleteTimeout + 5*time.Second) // past the stopped clients' delete timeout
		ew.Stop()
		rw.Stop()
		f.Set("responsibility samples", float64(rw.samples))
		f.Max("responsibility samples with a member not answering", float64(rw.incomplete))
		if rw.samples < 10 {
			t.Errorf("only %d responsibility samples were answered", rw.samples)
		}
		// A member that leaves or dies holds its clients until the others see it gone
		// (distro's DeadAfter, 3 s, of 1 s pings) or the client's next beat reaches one
		// of them: samples in that window may find its clients held by nobody. Outside
		// it, none may.
		const lossWindow = 5 * time.Second
		inWindow, outside, worst := 0, 0, 0
		for _, o := range rw.bad {
			worst = max(worst, o.Clients)
			after := false
			for _, at := range losses {
				if !o.At.Before(at) && o.At.Sub(at) <= lossWindow {
					after = true
				}
			}
			if after {
				inWindow++
				continue
			}
			outside++
			t.Errorf("sample at %s, not within %v of a member leaving: %s", o.At.Format(time.StampMilli), lossWindow, o.Example)
		}
		f.Max("samples with a client no member held, within 5 s of a member leaving", float64(inWindow))
		f.Max("samples with a client no member held, otherwise", float64(outside))
		f.Max("clients no member held, worst sample", float64(worst))
		pushes, empty := 0, 0
		for _, s := range subs {
			for _, l := range s.Lists() {
				if !l.Push {
					continue
				}
				pushes++
				if len(l.Ports) == 0 {
					empty++
					t.Errorf("%s pushed an empty host list for r7 at %s while %d clients beat", s.Node.ID, l.At.Format(time.StampMilli), len(b.Live(0)))
				}
			}
		}
		for _, s := range subs {
			for _, n := range survivors {
				if s.Node == n {
					if err := s.Ended(); err != nil {
						t.Errorf("the subscription on %s, still running, ended: %v", n.ID, err)
					}
				}
			}
		}
		f.Set("pushes to subscribers", float64(pushes))
		f.Max("empty pushes", float64(empty))
		if pushes == 0 {
			t.Error("no subscriber received a push during the churn")
		}
		ghosts := 0
		for _, n := range survivors {
			got, _ := portSet(n, "r7", false)
			for p := range stopped {
				if got[p] {
					ghosts++
				}
			}
		}
		f.Set("ghosts", float64(ghosts))
		if ghosts > 0 {
			t.Errorf("%d ghosts", ghosts)
		}
		ew.mu.Lock()
		f.Set("live instance samples missing", float64(ew.liveMissing))
		if ew.liveMissing > 0 {
			t.Errorf("%d samples of a live instance missing (e.g. %s)", ew.liveMissing, ew.example)
		}
		ew.mu.Unlock()
	})
}
