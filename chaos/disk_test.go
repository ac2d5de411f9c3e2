package chaos

import (
	"bytes"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// fill writes count persistent instances of svc through n (parallel), returning the
// acked ports.
func fill(t testing.TB, n *Node, svc string, from, count, workers int) map[int]bool {
	return fillAt(t, n, svc, "127.0.0.1", from, count, workers)
}

// fillAt is fill with the instances at ip.
func fillAt(t testing.TB, n *Node, svc, ip string, from, count, workers int) map[int]bool {
	var mu sync.Mutex
	acked := map[int]bool{}
	var wg sync.WaitGroup
	next := make(chan int)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range next {
				if o, _ := putPAt(n, svc, ip, p); o == acked_ {
					mu.Lock()
					acked[p] = true
					mu.Unlock()
				}
			}
		}()
	}
	for p := from; p < from+count; p++ {
		next <- p
	}
	close(next)
	wg.Wait()
	return acked
}

const acked_ = acked

// copyDir copies a data dir (the node must not be running).
func copyDir(t testing.TB, from, to string) {
	out, err := exec.Command("cp", "-a", from+"/.", to).CombinedOutput()
	if err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
}

// damage truncates path at a random offset or flips one random bit.
func damage(t testing.TB, path string, truncate bool, pick func(int) int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) == 0 {
		t.Fatalf("%s is empty", path)
	}
	off := pick(len(b))
	if truncate {
		if err := os.Truncate(path, int64(off)); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("truncated at %d of %d", off, len(b))
	}
	bit := pick(8)
	b[off] ^= 1 << bit
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("bit %d of byte %d of %d flipped", bit, off, len(b))
}

// snapshots lists the Raft snapshot dirs of a data dir, oldest first.
func snapshots(dataDir string) []string {
	dirs, _ := filepath.Glob(filepath.Join(dataDir, "raft", "snapshots", "*"))
	var out []string
	for _, d := range dirs {
		if st, err := os.Stat(d); err == nil && st.IsDir() && !strings.HasSuffix(d, ".tmp") {
			out = append(out, d)
		}
	}
	// Names are term-index-millis: ordered by number, not as text ("2-984" is older
	// than "2-1155").
	key := func(d string) [3]uint64 {
		var k [3]uint64
		for i, part := range strings.SplitN(filepath.Base(d), "-", 3) {
			k[i], _ = strconv.ParseUint(part, 10, 64)
		}
		return k
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := key(out[i]), key(out[j])
		for x := range a {
			if a[x] != b[x] {
				return a[x] < b[x]
			}
		}
		return out[i] < out[j]
	})
	return out
}

// TestR9CorruptFiles: damage raft.db, fsm.db, the newest and an older Raft snapshot,
// and a `roster snapshot` file; the node refuses naming the file, or (newest snapshot
// only) serves exactly the state it had.
func TestR9CorruptFiles(t *testing.T) {
	scenario(t, "R9", "corrupt and truncated files", func(t *testing.T, f *Figures) {
		src := newNode(t, "n1")
		src.Extra = []string{"--snapshot-threshold", "100", "--trailing-logs", "50", "--snapshot-interval", "100ms"}
		src.Start()
		fill(t, src, "r9", 7000, size(400, 2000), 8)
		// The leader folds concurrent writes into one log entry, so the fill may not
		// reach the snapshot threshold twice: one writer at a time adds an entry per
		// registration until two snapshots exist.
		more := 7000 + size(400, 2000)
		eventually(t, 60*time.Second, func() error {
			if s := snapshots(src.DataDir); len(s) < 2 {
				fill(t, src, "r9", more, 50, 1)
				more += 50
				return fmt.Errorf("%d Raft snapshots, want 2", len(s))
			}
			return nil
		})
		want, err := stateOf(src, []string{"r9"})
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(t.TempDir(), "r9.snap")
		if code, _, errs, err := runCLI("snapshot", "save", file, "--addr", src.URL); code != 0 || err != nil {
			t.Fatalf("snapshot save: %d %v %s", code, err, errs)
		}
		if _, err := src.Term(); err != nil {
			t.Fatal(err)
		}
		snaps := snapshots(src.DataDir)
		rng := newRand(9)
		targets := []struct{ name, rel string }{
			{"raft.db", "raft/raft.db"},
			{"fsm.db", "fsm.db"},
			{"newest snapshot", strings.TrimPrefix(filepath.Join(snaps[len(snaps)-1], "state.bin"), src.DataDir+"/")},
			{"older snapshot", strings.TrimPrefix(filepath.Join(snaps[0], "state.bin"), src.DataDir+"/")},
		}
		refused, intact := 0, 0
		for _, tg := range targets {
			for _, truncate := range []bool{true, false} {
				n := newNode(t, "n1")
				n.Port, n.URL, n.RaftAddr = src.Port, src.URL, src.RaftAddr
				copyDir(t, src.DataDir, n.DataDir)
				how := damage(t, filepath.Join(n.DataDir, tg.rel), truncate, rng.IntN)
				exited := n.Launch()
				t0 := time.Now()
				err := n.waitReady(exited, 10*time.Second)
				if err != nil {
					st, _ := n.Reap(5 * time.Second)
					el := time.Since(t0)
					f.Max("refused within max, s", el.Seconds())
					base := filepath.Base(tg.rel)
					switch {
					case st == nil || st.ExitCode() == 0:
						t.Errorf("%s %s: not ready and no non-zero exit (%v)", tg.name, how, st)
					case !strings.Contains(n.Log(), base) && !strings.Contains(n.Log(), filepath.Base(filepath.Dir(tg.rel))):
						t.Errorf("%s %s: exit %d without naming %s:\n%s", tg.name, how, st.ExitCode(), base, tail(n.logPath, 5))
					case el > 5*time.Second:
						t.Errorf("%s %s: refused after %v, want ≤ 5 s", tg.name, how, el)
					}
					refused++
					t.Logf("%s %s: refused with exit %d in %v", tg.name, how, st.ExitCode(), el.Round(time.Millisecond))
					continue
				}
				// It started: it must serve exactly what it had, never less.
				got, err := stateOf(n, []string{"r9"})
				if err != nil || got != want {
					t.Errorf("%s %s: started and serves a different state (%v)", tg.name, how, err)
				} else {
					intact++
					t.Logf("%s %s: started and serves the full state", tg.name, how)
				}
				n.Kill9()
			}
		}
		f.Set("damaged starts refused", float64(refused))
		f.Set("damaged starts serving the full state", float64(intact))
		// A damaged CLI snapshot is refused and changes nothing.
		n := newNode(t, "n1")
		n.Port, n.URL, n.RaftAddr = src.Port, src.URL, src.RaftAddr
		copyDir(t, src.DataDir, n.DataDir)
		n.Start()
		cliRefused := 0
		for _, truncate := range []bool{true, false} {
			bad := filepath.Join(t.TempDir(), "bad.snap")
			b, _ := os.ReadFile(file)
			_ = os.WriteFile(bad, b, 0o600)
			how := damage(t, bad, truncate, rng.IntN)
			code, _, errs, _ := runCLI("snapshot", "restore", bad, "--addr", n.URL)
			if code == 0 {
				t.Errorf("restore of a snapshot with %s succeeded", how)
			} else {
				cliRefused++
			}
			if got, _ := stateOf(n, []string{"r9"}); got != want {
				t.Errorf("a refused restore (%s) changed the state; stderr %s", how, errs)
			}
		}
		f.Set("damaged CLI snapshots refused", float64(cliRefused))
	})
}

// TestR10DiskFull: the data dir on a small tmpfs; write until it is full, free space.
func TestR10DiskFull(t *testing.T) {
	scenario(t, "R10", "disk full", func(t *testing.T, f *Figures) {
		n := newNode(t, "n1")
		mnt := n.DataDir
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64m", "roster-chaos", mnt).CombinedOutput(); err != nil {
			t.Skipf("cannot mount a tmpfs (needs root): %v %s", err, out)
		}
		t.Cleanup(func() {
			n.Kill9()
			if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
				t.Errorf("umount %s: %v %s", mnt, err, out)
			}
		})
		n.DataDir = filepath.Join(mnt, "data")
		n.Start()
		// Ballast leaves a few MiB so that the fill is quick; deleting it frees space.
		var st syscall.Statfs_t
		_ = syscall.Statfs(mnt, &st)
		free := int64(st.Bavail) * st.Bsize
		ballast := filepath.Join(mnt, "ballast")
		if err := os.WriteFile(ballast, make([]byte, max(free-6<<20, 0)), 0o600); err != nil {
			t.Fatal(err)
		}
		meta := strings.Repeat("x", 900)
		var acked []int
		firstFail := -1
		afterFail2xx, afterFail := 0, 0
		for p := 7000; p < 7000+200000 && afterFail < size(5, 50); p++ {
			o, code, body, _ := doForm(http.MethodPost, n.URL+"/nacos/v1/ns/instance", url.Values{
				"serviceName": {"r10"}, "ip": {"127.0.0.1"}, "port": {strconv.Itoa(p)}, "ephemeral": {"false"},
				"metadata": {`{"pad":"` + meta + `"}`}})
			switch {
			case o == acked_:
				acked = append(acked, p)
				if firstFail >= 0 {
					afterFail2xx++
				}
			case firstFail < 0:
				firstFail = p
				t.Logf("first refused write #%d: %d %s", len(acked), code, strings.TrimSpace(body))
				if code != 0 && code < 500 {
					t.Errorf("a write on a full disk answered %d (want 5xx)", code)
				}
			}
			if firstFail >= 0 {
				afterFail++
			}
			if !n.Running() {
				break
			}
		}
		f.Set("acked before full", float64(len(acked)-afterFail2xx))
		f.Set("acked after the first ENOSPC", float64(afterFail2xx))
		if firstFail < 0 {
			t.Fatal("the disk never filled")
		}
		select {
		case <-n.Exited():
			st, _ := n.Reap(time.Second)
			t.Logf("node exited on a full disk: %v", st)
			f.Set("exited on full disk", 1)
		default:
			f.Set("exited on full disk", 0)
		}
		_ = os.Remove(ballast)
		if !n.Running() {
			n.Start()
		}
		// Writes succeed again without a restart (or after the clean exit's restart).
		t0 := time.Now()
		eventually(t, 30*time.Second, func() error {
			if o, code := putP(n, "r10", 6000); o != acked_ {
				return fmt.Errorf("write after freeing space: %v %d", o, code)
			}
			return nil
		})
		f.Secs("writes succeed after space freed, s", time.Since(t0))
		check := func(when string) {
			got, err := portSet(n, "r10", false)
			if err != nil {
				t.Fatal(err)
			}
			lost := 0
			for _, p := range acked {
				if !got[p] {
					lost++
				}
			}
			f.Max("acked writes lost", float64(lost))
			if lost > 0 {
				t.Errorf("%s: %d of %d acked writes missing", when, lost, len(acked))
			}
		}
		check("after freeing space")
		// A restart reads every record of fsm.db (store.Check): a damaged file refuses.
		if _, err := n.Term(); err != nil {
			t.Fatal(err)
		}
		n.Start()
		check("after a restart")
	})
}

// TestR11RestartTime: restart time after N and N/10 persistent writes (churn over N/10
// keys, with compaction), and raft.db growth over five snapshot cycles.
func TestR11RestartTime(t *testing.T) {
	scenario(t, "R11", "restart time and disk growth", func(t *testing.T, f *Figures) {
		total := size(15000, 1000000)
		keys := total / 10
		threshold := size(2000, 20000)
		n := newNode(t, "n1")
		n.Extra = []string{"--snapshot-threshold", strconv.Itoa(threshold), "--trailing-logs", strconv.Itoa(threshold / 2), "--snapshot-interval", "200ms"}
		n.Start()
		raftDB := filepath.Join(n.DataDir, "raft", "raft.db")
		sizeOf := func() int64 { st, _ := os.Stat(raftDB); return st.Size() }
		var restarts []time.Duration
		var afterFirst, after5 int64
		// freelist[db] is the db's freelist length (pages) after each snapshot cycle.
		freelist := map[string][]float64{}
		written := 0
		churn := func(count int) {
			var wg sync.WaitGroup
			per := count / 8
			for w := range 8 {
				wg.Add(1)
				go func(w int) {
					defer wg.Done()
					for i := range per {
						idx := written + w*per + i
						k := 7000 + idx%keys
						if (idx/keys)%2 == 0 {
							putP(n, "r11", k)
						} else {
							delP(n, "r11", k)
						}
					}
				}(w)
			}
			wg.Wait()
			written += per * 8
		}
		restart := func() time.Duration {
			if _, err := n.Term(); err != nil {
				t.Fatal(err)
			}
			return n.Start()
		}
		t0 := time.Now()
		churn(total / 10)
		restarts = append(restarts, restart())
		for cycle := 1; cycle <= 5; cycle++ {
			newest := func() string {
				s := snapshots(n.DataDir)
				if len(s) == 0 {
					return ""
				}
				return s[len(s)-1]
			}
			before := newest()
			for i := 0; newest() == before; i++ {
				if i == 20 {
					t.Fatalf("no snapshot after cycle %d", cycle)
				}
				churn(threshold / 2)
			}
			for _, db := range []string{"fsm", "raft"} {
				pages := metric(t, n, "roster_"+db+"_db_freelist_pages")
				if pages < 0 {
					t.Fatalf("no roster_%s_db_freelist_pages in /metrics", db)
				}
				freelist[db] = append(freelist[db], pages)
			}
			if cycle == 1 {
				afterFirst = sizeOf()
			}
			if cycle == 5 {
				after5 = sizeOf()
			}
		}
		for written < total {
			churn(min(total-written, total/10))
		}
		f.Secs("write phase, s", time.Since(t0))
		f.Set("writes", float64(written))
		restarts = append(restarts, restart())
		f.Secs("restart at N/10, s", restarts[0])
		f.Secs("restart at N, s", restarts[1])
		f.Set("raft.db after 1 cycle, MiB", float64(afterFirst)/(1<<20))
		f.Set("raft.db after 5 cycles, MiB", float64(after5)/(1<<20))
		if restarts[1] > 3*time.Second {
			t.Errorf("ready %v after the restart at %d writes, want ≤ 3 s", restarts[1], written)
		}
		if restarts[1] > restarts[0]*3/2 && restarts[1]-restarts[0] > 500*time.Millisecond {
			t.Errorf("restart at N writes %v > 1.5 × at N/10 (%v)", restarts[1], restarts[0])
		}
		if after5 > 2*afterFirst {
			t.Errorf("raft.db %d bytes after 5 snapshot cycles > 2 × %d after the first", after5, afterFirst)
		}
		for _, db := range []string{"fsm", "raft"} {
			fl := freelist[db]
			f.Set(db+".db freelist after 1 cycle, pages", fl[0])
			f.Set(db+".db freelist after 5 cycles, pages", fl[len(fl)-1])
			peak := slices.Max(fl)
			f.Max(db+".db freelist peak, pages", peak)
			// Churn at a steady load frees and reuses pages: the list may move from cycle
			// to cycle but not keep growing. A bound of twice the first cycle's (plus a
			// floor, as a short run's first list can be a handful of pages) is the same
			// bound R11 puts on raft.db's size.
			if limit := 2*fl[0] + freelistFloorPages; peak > limit {
				t.Errorf("%s.db freelist reached %v pages over 5 snapshot cycles (after each: %v), want ≤ %v", db, peak, fl, limit)
			}
		}
	})
}

// freelistFloorPages is the slack on R11's freelist bound: 1 MiB of 4 KiB pages.
const freelistFloorPages = 256

// metric reads one unlabelled metric from /metrics; -1 when absent.
func metric(t testing.TB, n *Node, name string) float64 {
	resp, err := hc.Get(n.URL + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	for _, line := range strings.Split(b.String(), "\n") {
		if strings.HasPrefix(line, name+" ") || strings.HasPrefix(line, name+"{") {
			fields := strings.Fields(line)
			v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
			if err == nil {
				return v
			}
		}
	}
	return -1
}

var _ fs.FileMode
