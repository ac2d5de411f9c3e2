package chaos

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

var (
	flagSoak          = flag.Duration("soak", 0, "run R15 for this long (make soak: 2h); 0 skips it")
	flagSoakInstances = flag.Int("soak-instances", 100000, "R15's ephemeral instances")
)

// procStat reads a process's RSS (bytes) and CPU time (user+system) from /proc.
func procStat(pid int) (rss int64, cpu time.Duration, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	pages, _ := strconv.ParseInt(f[21], 10, 64)
	return pages * int64(os.Getpagesize()), time.Duration(utime+stime) * (time.Second / 100), nil
}

func (n *Node) pid() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return 0
	}
	return n.cmd.Process.Pid
}

// TestR15Soak: ephemeral instances at 5 s beats plus 50 persistent writes/s on three
// nodes for -soak; RSS, goroutines, idle CPU, raft.db size and false removals.
func TestR15Soak(t *testing.T) {
	if *flagSoak == 0 {
		t.Skip("R15 runs with -soak DURATION (make soak)")
	}
	scenario(t, "R15", "soak", func(t *testing.T, f *Figures) {
		setBeatTiming(t, 5*time.Second, 15*time.Second, 30*time.Second)
		c := StartCluster(t, 3, "--snapshot-threshold", "8192")
		// Ports are unique within a service: 50 000 clients per service.
		var bs []*Beaters
		for i := range *flagSoakInstances {
			if i%50000 == 0 {
				b := NewBeaters(fmt.Sprintf("r15-%d", i/50000), func() []*Node { return c.Nodes })
				defer b.StopAll()
				bs = append(bs, b)
			}
			bs[len(bs)-1].Start(10000+i%50000, "")
		}
		var ews []*expiryWatch
		for _, b := range bs {
			ews = append(ews, watchExpiry(c.Nodes, b, 5*time.Second))
		}
		stopW := make(chan struct{})
		go func() { // 50 persistent writes/s over 1 000 keys
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for i := 0; ; i++ {
				select {
				case <-stopW:
					return
				case <-tick.C:
				}
				n := c.Nodes[i%3]
				if i/1000%2 == 0 {
					putP(n, "r15p", 7000+i%1000)
				} else {
					delP(n, "r15p", 7000+i%1000)
				}
			}
		}()
		sample := func() (rss int64, gor float64, db int64) {
			for _, n := range c.Nodes {
				r, _, _ := procStat(n.pid())
				rss += r
				gor += metric(t, n, "go_goroutines")
				if st, err := os.Stat(filepath.Join(n.DataDir, "raft", "raft.db")); err == nil {
					db = max(db, st.Size())
				}
			}
			return
		}
		time.Sleep(min(10*time.Minute, *flagSoak/4)) // warm-up, by design
		rss0, gor0, db0 := sample()
		time.Sleep(*flagSoak - min(10*time.Minute, *flagSoak/4))
		rss1, gor1, db1 := sample()
		close(stopW)
		missing := 0
		for i, b := range bs {
			b.StopAll()
			ews[i].Stop()
			missing += ews[i].liveMissing
		}
		// Idle CPU with no load.
		time.Sleep(deleteTimeout + 5*time.Second) // let the instances expire
		var cpu0 time.Duration
		for _, n := range c.Nodes {
			_, cp, _ := procStat(n.pid())
			cpu0 += cp
		}
		idle := 30 * time.Second
		time.Sleep(idle) // the idle measurement window
		var cpu1 time.Duration
		for _, n := range c.Nodes {
			_, cp, _ := procStat(n.pid())
			cpu1 += cp
		}
		growth := float64(rss1-rss0) / float64(rss0) * 100
		f.Set("RSS growth after warm-up, %", growth)
		f.Set("goroutines change, %", (gor1-gor0)/gor0*100)
		f.Set("idle CPU per node, % of a core", float64(cpu1-cpu0)/float64(idle)/3*100)
		f.Set("raft.db growth, ×", float64(db1)/float64(max(db0, 1)))
		f.Set("live instance samples missing", float64(missing))
		if growth > 5 {
			t.Errorf("RSS grew %.1f %% after the warm-up", growth)
		}
		if d := (gor1 - gor0) / gor0 * 100; d > 1 || d < -1 {
			t.Errorf("goroutines %v → %v", gor0, gor1)
		}
		if missing > 0 {
			t.Errorf("%d live samples missing", missing)
		}
	})
}
