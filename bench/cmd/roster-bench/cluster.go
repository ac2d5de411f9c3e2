package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// startCluster starts three nodes that bootstrap one Raft cluster on loopback, sharing
// a cluster key, and waits until every one is ready.
func (b *bench) startCluster(ctx context.Context, name string) ([]*server, error) {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	keyFile := filepath.Join(b.workDir, name+"-cluster.key")
	if err := os.WriteFile(keyFile, []byte(hex.EncodeToString(key)), 0o600); err != nil {
		return nil, err
	}
	nodes := make([]*server, 3)
	for i := range nodes {
		s, err := b.newServer(fmt.Sprintf("%s-n%d", name, i+1))
		if err != nil {
			return nil, err
		}
		nodes[i] = s
	}
	var join []string
	for _, s := range nodes {
		join = append(join, s.httpAddr)
	}
	for i, s := range nodes {
		s.extra = append(s.extra, "--node-id", fmt.Sprintf("n%d", i+1), "--bootstrap-expect", "3",
			"--join", strings.Join(join, ","), "--cluster-key-file", keyFile)
	}
	errs := make(chan error, 3)
	for _, s := range nodes {
		go func() {
			_, err := s.start(ctx, b.opts.readyTimeout)
			errs <- withLog(s, err)
		}()
	}
	for range nodes {
		if err := <-errs; err != nil {
			return nodes, err
		}
	}
	return nodes, nil
}

// warmUp waits until a registration through each node succeeds, retrying for up to
// timeout; the writes use indexes from first on, apart from the measured ones.
func warmUp(ctx context.Context, ops []func(context.Context, int) error, first int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for i, op := range ops {
		for {
			err := op(ctx, first+i)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("cluster: no write through node %d succeeded within %s: %w", i+1, timeout, err)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}

// leaderOf returns the index of the node that says it leads, or -1.
func leaderOf(ctx context.Context, nodes []*server) int {
	for i, s := range nodes {
		if !s.running() {
			continue
		}
		cl := newClient(s.httpAddr, 1)
		v, err := cl.promValue(ctx, "roster_raft_is_leader")
		cl.close()
		if err == nil && v == 1 {
			return i
		}
	}
	return -1
}

// runCluster: on a fresh 3-node cluster, persistent registrations/s with 64 clients
// spread over the three nodes (beside raw bbolt on the same disk); then leader
// SIGKILL -> first successful write, five times; then the catch-up time of a node
// that was stopped while the others took writes.
func runCluster(ctx context.Context, b *bench, p params, runIdx int) (figures, error) {
	f := figures{}
	nodes, err := b.startCluster(ctx, "cluster")
	if err != nil {
		return f, err
	}
	clients := make([]*client, len(nodes))
	for i, s := range nodes {
		clients[i] = newClient(s.httpAddr, p.clients)
		defer clients[i].close()
	}
	ops := make([]func(context.Context, int) error, len(nodes))
	for i := range nodes {
		ops[i] = registerOp(clients[i])
	}
	base := runIdx * 10_000_000
	// A freshly formed cluster may still be settling its leader (more so on a loaded
	// machine): measure from the first write every node has taken.
	if err := warmUp(ctx, ops, base+9_000_000, 30*time.Second); err != nil {
		return f, withLog(nodes[0], err)
	}
	r := b.runFor(ctx, "cluster: register", p.duration, p.clients, base, func(ctx context.Context, i int) error {
		return ops[i%len(ops)](ctx, i)
	})
	if r.Errors > 0 {
		return f, withLog(nodes[0], fmt.Errorf("%d registrations failed: %v", r.Errors, r.FirstErrors))
	}
	f["register"] = r.Rate
	b.logf("cluster: %.0f registrations/s (p50 %.1fms p99 %.1fms)", r.Rate, r.Latency.P50MS, r.Latency.P99MS)
	next := base + r.OK + 1_000_000

	raw, err := openRawBolt(b.workDir, "raw-cluster.db")
	if err != nil {
		return f, err
	}
	fr, err := raw.run(ctx, p.duration, 1)
	raw.close()
	if err != nil {
		return f, err
	}
	f["raw"] = fr.Rate

	// Failover: SIGKILL the leader; time until a write sent after the kill succeeds
	// through a surviving node (which holds it until a new leader takes it).
	kills := 5
	if p.quick {
		kills = 1
	}
	var times []float64
	for k := range kills {
		li := leaderOf(ctx, nodes)
		if li < 0 {
			return f, fmt.Errorf("failover %d: no leader", k+1)
		}
		var survivors []int
		for i := range nodes {
			if i != li {
				survivors = append(survivors, i)
			}
		}
		t0 := time.Now()
		if err := nodes[li].kill(); err != nil {
			return f, err
		}
		var done time.Duration
		for try := 0; ; try++ {
			next++
			c := clients[survivors[try%len(survivors)]]
			if err := registerOp(c)(ctx, next); err == nil {
				done = time.Since(t0)
				break
			}
			if time.Since(t0) > time.Minute || ctx.Err() != nil {
				return f, fmt.Errorf("failover %d: no successful write within a minute", k+1)
			}
			time.Sleep(5 * time.Millisecond)
		}
		times = append(times, ms(done))
		b.logf("cluster: failover %d: leader %s killed, write ok after %.0fms", k+1, nodes[li].name, ms(done))
		if _, err := nodes[li].start(ctx, b.opts.readyTimeout); err != nil {
			return f, withLog(nodes[li], err)
		}
		clients[li].close()
		clients[li] = newClient(nodes[li].httpAddr, p.clients)
	}
	slices.Sort(times)
	f["failover_p50"] = times[len(times)/2]
	f["failover_p99"] = times[len(times)-1] // of five, the 99th percentile is the largest
	f["failover_max"] = times[len(times)-1]

	// Catch-up: stop a follower, write n registrations through the others, restart it
	// and time exec -> its applied index reaching the leader's commit index.
	n := 100000
	if p.quick {
		n = 500
	}
	if p.catchUp > 0 {
		n = p.catchUp
	}
	li := leaderOf(ctx, nodes)
	fi := (li + 1) % len(nodes)
	if li < 0 {
		return f, fmt.Errorf("catch-up: no leader")
	}
	if _, err := b.stopServer(nodes[fi]); err != nil {
		return f, err
	}
	clients[fi].close()
	lc := clients[li]
	first := next + 1
	w := b.runN(ctx, "cluster: catch-up writes", n, p.clients, func(ctx context.Context, i int) error {
		return registerOp(lc)(ctx, first+i)
	})
	if w.Errors > 0 {
		return f, withLog(nodes[li], fmt.Errorf("catch-up writes: %d errors: %v", w.Errors, w.FirstErrors))
	}
	target, err := lc.promValue(ctx, "roster_raft_commit_index")
	if err != nil {
		return f, err
	}
	t0 := time.Now()
	var applied atomic.Int64
	if _, err := nodes[fi].start(ctx, b.opts.readyTimeout); err != nil {
		return f, withLog(nodes[fi], err)
	}
	fc := newClient(nodes[fi].httpAddr, 1)
	defer fc.close()
	for {
		v, err := fc.promValue(ctx, "roster_raft_applied_index")
		if err == nil {
			applied.Store(int64(v))
			if v >= target {
				break
			}
		}
		if time.Since(t0) > 5*time.Minute || ctx.Err() != nil {
			return f, fmt.Errorf("catch-up: applied %d of %.0f after 5 minutes", applied.Load(), target)
		}
		time.Sleep(5 * time.Millisecond)
	}
	f["catchup"] = ms(time.Since(t0))
	f["catchup_writes"] = float64(n)
	b.logf("cluster: a node that missed %d writes caught up in %.0fms (exec to applied index %.0f)", n, f["catchup"], target)
	for _, s := range nodes {
		if _, err := b.stopServer(s); err != nil {
			return f, err
		}
	}
	return f, nil
}
