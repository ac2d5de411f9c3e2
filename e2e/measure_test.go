package e2e

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The measurements below are not tests: they report figures for the notes and the
// README. Run them with ROSTER_MEASURE=1, e.g.
//
//	cd e2e && ROSTER_MEASURE=1 go test -run TestMeasure -v -timeout 30m ./
func measuring(t *testing.T) {
	if os.Getenv("ROSTER_MEASURE") == "" {
		t.Skip("set ROSTER_MEASURE=1 to run measurements")
	}
}

// TestMeasureFailover: leader kill -9 → first acknowledged write through a survivor,
// five times, with the default election timeout (1 s).
func TestMeasureFailover(t *testing.T) {
	measuring(t)
	c := StartCluster(t, 3, "--election-timeout", "1s")
	var times []time.Duration
	port := 40000
	for round := 0; round < 5; round++ {
		leader := c.Leader()
		var survivor *Server
		for _, s := range c.Running() {
			if s != leader {
				survivor = s
				break
			}
		}
		start := time.Now()
		leader.kill9()
		for {
			port++
			if o, _ := putInstance(survivor, "failover-measure", port); o == acked {
				break
			}
			if time.Since(start) > 30*time.Second {
				t.Fatal("no write acknowledged within 30 s")
			}
		}
		d := time.Since(start)
		times = append(times, d)
		t.Logf("round %d: leader %s killed, first acknowledged write after %v", round+1, leader.NodeID, d.Round(time.Millisecond))
		leader.Start()
		c.Leader()
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	t.Logf("failover over 5 kills: median %v, worst %v, best %v", times[2].Round(time.Millisecond), times[4].Round(time.Millisecond), times[0].Round(time.Millisecond))
}

// TestMeasureCatchUp: a follower is stopped, 100 000 persistent instances are written,
// and the follower is restarted: how long until it has applied everything the leader
// committed (it needs a snapshot, since the log was compacted meanwhile).
func TestMeasureCatchUp(t *testing.T) {
	measuring(t)
	n := 100000
	if v, err := strconv.Atoi(os.Getenv("ROSTER_MEASURE_INSTANCES")); err == nil {
		n = v
	}
	c := StartCluster(t, 3, "--election-timeout", "1s")
	leader := c.Leader()
	var follower *Server
	for _, s := range c.Nodes {
		if s != leader {
			follower = s
			break
		}
	}
	follower.Stop()
	start := time.Now()
	var next, failures atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 64; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				svc := "catchup-" + strconv.Itoa(int(i%100))
				if o, _ := putInstance(leader, svc, 10000+int(i/100)); o != acked {
					failures.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("wrote %d persistent instances in %v (%d failed)", n, time.Since(start).Round(time.Millisecond), failures.Load())
	target := mustRaft(t, leader)
	st, err := raftStats(leader)
	if err != nil {
		t.Fatal(err)
	}
	restart := time.Now()
	follower.Start()
	eventually(t, 5*time.Minute, func() error {
		fs, err := raftStats(follower)
		if err != nil {
			return err
		}
		if fs.AppliedIndex < st.CommitIndex {
			return fmt.Errorf("follower applied %d of %d", fs.AppliedIndex, st.CommitIndex)
		}
		return nil
	})
	t.Logf("rejoining follower caught up on %d instances (commit index %d, term %d) in %v after its restart",
		n, st.CommitIndex, target.Term, time.Since(restart).Round(time.Millisecond))
}

type raftIndexes struct {
	CommitIndex  uint64 `json:"commitIndex"`
	AppliedIndex uint64 `json:"appliedIndex"`
}

func raftStats(s *Server) (raftIndexes, error) {
	var v raftIndexes
	resp, err := fastHTTP.Get(s.URL + "/roster/v1/operator/raft")
	if err != nil {
		return v, err
	}
	defer resp.Body.Close()
	return v, jsonDecode(resp.Body, &v)
}

// TestMeasureRestartHistory: restart time after 1 000 writes against 100 000 writes that
// churn over the same 1 000 instances (history grows, data does not), and after 100 000
// distinct instances. Five timed restarts each, medians reported.
func TestMeasureRestartHistory(t *testing.T) {
	measuring(t)
	cases := []struct {
		writes, keys int
	}{{1000, 1000}, {100000, 1000}, {100000, 100000}}
	for _, cs := range cases {
		s := StartServer(t)
		var next atomic.Int64
		var wg sync.WaitGroup
		for w := 0; w < 64; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1) - 1)
					if i >= cs.writes {
						return
					}
					k := i % cs.keys
					svc := "history-" + strconv.Itoa(k%1000)
					if o, err := putInstance(s, svc, 1000+k/1000); o != acked {
						t.Errorf("write %d: %v", i, err)
						return
					}
				}
			}()
		}
		wg.Wait()
		var times []time.Duration
		for run := 0; run < 5; run++ {
			s.Stop()
			start := time.Now()
			s.Start()
			times = append(times, time.Since(start))
		}
		sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
		t.Logf("%d writes over %d instances: restart (exec to ready) median %v, min %v, max %v",
			cs.writes, cs.keys, times[2].Round(time.Millisecond), times[0].Round(time.Millisecond), times[4].Round(time.Millisecond))
	}
}
