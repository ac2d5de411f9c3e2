package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/roster-registry/roster/naming"
)

// fsyncResult is the raw bbolt ceiling: one read-write transaction (one commit, with
// bbolt's fdatasync calls) per write.
type fsyncResult struct {
	Goroutines   int            `json:"goroutines"`
	Commits      int            `json:"commits"`
	Seconds      float64        `json:"seconds"`
	Rate         float64        `json:"commits_per_second"`
	PayloadBytes int            `json:"payload_bytes"`
	Latency      latencySummary `json:"latency"` // of db.Update, including the wait for bbolt's writer lock

	samples latencies
}

// rawPayload is an instance record as Roster's store encodes one (JSON of
// naming.Instance), padded with metadata to about 300 bytes.
func rawPayload(i int) (key, value []byte) {
	inst := naming.Instance{
		IP: ipFor(i), Port: 8080, ClusterName: "DEFAULT", Weight: 1, Healthy: true, Enabled: true,
		Metadata: map[string]string{"app": "bench", "version": "1.0.0", "zone": "zone-a", "idx": strconv.Itoa(i)},
	}
	v, _ := json.Marshal(&inst)
	if pad := 300 - len(v) - len(`,"pad":""`); pad > 0 {
		inst.Metadata["pad"] = strings.Repeat("x", pad)
		v, _ = json.Marshal(&inst)
	}
	return []byte(inst.Key()), v
}

// rawBolt is a bbolt file with the options Roster's stores use (NoSync false) in
// which the bench measures the raw commit rate.
type rawBolt struct {
	db     *bolt.DB
	path   string
	bucket []byte
	next   atomic.Int64 // key number, unique across rounds
}

func openRawBolt(dir, name string) (*rawBolt, error) {
	path := filepath.Join(dir, name)
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout: time.Second, NoSync: false, InitialMmapSize: 64 << 20, FreelistType: bolt.FreelistMapType,
	})
	if err != nil {
		return nil, fmt.Errorf("raw bbolt: open %s: %w", path, err)
	}
	r := &rawBolt{db: db, path: path, bucket: []byte("instances")}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(r.bucket)
		return err
	}); err != nil {
		db.Close()
		os.Remove(path)
		return nil, fmt.Errorf("raw bbolt: %s: %w", path, err)
	}
	return r, nil
}

func (r *rawBolt) close() {
	r.db.Close()
	os.Remove(r.path)
}

// run commits one ~300-byte write per db.Update for d, from goroutines goroutines
// at once (bbolt serialises writers, so more goroutines only queue).
func (r *rawBolt) run(ctx context.Context, d time.Duration, goroutines int) (fsyncResult, error) {
	var (
		wg       sync.WaitGroup
		firstErr atomic.Pointer[error]
		parts    = make([]latencies, goroutines)
	)
	deadline := time.Now().Add(d)
	t0 := time.Now()
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) && ctx.Err() == nil {
				k, v := rawPayload(int(r.next.Add(1)))
				start := time.Now()
				err := r.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(r.bucket).Put(k, v) })
				if err != nil {
					firstErr.CompareAndSwap(nil, &err)
					return
				}
				parts[g].add(time.Since(start))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(t0)
	if e := firstErr.Load(); e != nil {
		return fsyncResult{}, fmt.Errorf("raw bbolt: %s: %w", r.path, *e)
	}
	_, sample := rawPayload(0)
	lat := merge(parts)
	return fsyncResult{
		Goroutines:   goroutines,
		Commits:      len(lat),
		Seconds:      elapsed.Seconds(),
		Rate:         float64(len(lat)) / elapsed.Seconds(),
		PayloadBytes: len(sample),
		Latency:      lat.summarize(),
		samples:      lat,
	}, ctx.Err()
}

// combineFsync adds up the rounds of one raw measurement.
func combineFsync(parts ...fsyncResult) fsyncResult {
	var out fsyncResult
	var all []latencies
	for _, p := range parts {
		out.Goroutines, out.PayloadBytes = p.Goroutines, p.PayloadBytes
		out.Commits += p.Commits
		out.Seconds += p.Seconds
		all = append(all, p.samples)
	}
	out.samples = merge(all)
	out.Latency = out.samples.summarize()
	if out.Seconds > 0 {
		out.Rate = float64(out.Commits) / out.Seconds
	}
	return out
}

// fsType names the filesystem holding dir, since fsync costs depend on it (on tmpfs
// they are free and the comparison means nothing).
func fsType(dir string) string {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return "unknown"
	}
	switch uint64(st.Type) {
	case 0xEF53:
		return "ext4"
	case 0x58465342:
		return "xfs"
	case 0x9123683E:
		return "btrfs"
	case 0x01021994:
		return "tmpfs"
	case 0x794C7630:
		return "overlayfs"
	case 0x2FC12FC1:
		return "zfs"
	default:
		return fmt.Sprintf("0x%x", uint64(st.Type))
	}
}
