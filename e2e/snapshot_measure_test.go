package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/roster-registry/roster/client"
)

// TestMeasureSnapshot: snapshot size and save, inspect and restore times for 100 000
// persistent instances (ROSTER_MEASURE_INSTANCES to change), filled over HTTP by 64
// concurrent clients; and how long a node holding them takes to start (which reads
// every record once, Store.Check). Not a test; run without -race:
//
//	cd e2e && ROSTER_MEASURE=1 go test -run TestMeasureSnapshot -v -timeout 30m ./
func TestMeasureSnapshot(t *testing.T) {
	measuring(t)
	n := 100000
	if v, err := strconv.Atoi(os.Getenv("ROSTER_MEASURE_INSTANCES")); err == nil {
		n = v
	}
	s1 := StartServer(t)
	c1, err := client.New(s1.URL, client.WithTimeout(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var next, failures atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				in := persistentInstance(fmt.Sprintf("127.%d.%d.%d", 10+i/65536, i/256%256, i%256), 8080)
				in.Metadata = map[string]string{"zone": "zone-" + strconv.Itoa(int(i%3)), "version": "1.2.3"}
				svc := client.ServiceRef{Name: "measure-" + strconv.Itoa(int(i%100))}
				if err := c1.RegisterInstance(context.Background(), svc, in); err != nil {
					failures.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	fill := time.Since(start)
	t.Logf("filled %d persistent instances in 100 services over HTTP (64 clients) in %v: %.0f/s, %d failed",
		n, fill.Round(time.Millisecond), float64(n)/fill.Seconds(), failures.Load())

	dir := t.TempDir()
	file := filepath.Join(dir, "measure.snap")
	start = time.Now()
	index := save(t, s1, file)
	saveTime := time.Since(start)
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("snapshot save (download, fsync, verify, rename): %v; index %d; %d bytes (%.1f MiB, %.0f bytes per instance)",
		saveTime.Round(time.Millisecond), index, fi.Size(), float64(fi.Size())/(1<<20), float64(fi.Size())/float64(n))

	start = time.Now()
	in := inspect(t, file)
	t.Logf("snapshot inspect (full verification): %v; %d services, %d instances", time.Since(start).Round(time.Millisecond), in.Services, in.Instances)

	s2 := StartServer(t)
	start = time.Now()
	if code, _, errs := roster(t, "snapshot", "restore", file, "--addr", s2.URL); code != 0 {
		t.Fatalf("restore: %s", errs)
	}
	t.Logf("snapshot restore online into a running node (upload, verify, raft.Restore, answer): %v", time.Since(start).Round(time.Millisecond))
	m, err := rosterClient(t, s2).Metrics(ctxT(t))
	if err != nil || m.InstanceCount != n {
		t.Fatalf("restored node counts %+v, %v; want %d instances", m, err, n)
	}

	s3 := NewServer(t, "n3")
	start = time.Now()
	if code, _, errs := roster(t, "snapshot", "restore", file, "--data-dir", s3.DataDir, "--node-id", "n3", "--raft-addr", s3.RaftAddr); code != 0 {
		t.Fatalf("offline restore: %s", errs)
	}
	t.Logf("snapshot restore offline into an empty data dir: %v", time.Since(start).Round(time.Millisecond))
	start = time.Now()
	s3.Start()
	t.Logf("node on the offline-restored dir ready in %v", time.Since(start).Round(time.Millisecond))

	s1.Stop()
	start = time.Now()
	s1.Start()
	t.Logf("restart of the node holding %d instances: ready in %v (includes reading every fsm.db record)", n, time.Since(start).Round(time.Millisecond))
}
