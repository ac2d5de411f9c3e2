package cluster

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/roster-registry/roster/raftnode"
)

// Many writes a follower takes at once reach the leader in shared requests, and each
// one's client can read it on the follower as soon as its Apply returns.
func TestConcurrentForwardedWritesShareRequests(t *testing.T) {
	tc := newCluster(t, 3, nodeOptions{})
	ctx := ctxFor(t, 30*time.Second)
	const writes = 200
	for attempt := 1; attempt <= retries; attempt++ {
		f := tc.follower()
		var wg sync.WaitGroup
		errs := make([]error, writes)
		for i := range writes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				in := instance(fmt.Sprintf("10.3.%d.%d", attempt, i), 9000+i)
				if _, err := f.c.Apply(ctx, register(t, ordersKey, in)); err != nil {
					errs[i] = err
					return
				}
				if f.stored(ordersKey, in) == nil {
					errs[i] = fmt.Errorf("write %d not applied on %s when its Apply returned", i, f.id)
				}
			}()
		}
		wg.Wait()
		unsure := 0
		for _, err := range errs {
			switch {
			case errors.Is(err, raftnode.ErrUnknownOutcome):
				unsure++ // a leadership change while the write was in flight
			case err != nil:
				t.Fatal(err)
			}
		}
		if unsure == 0 && !f.c.node.IsLeader() {
			return
		}
		t.Logf("attempt %d: leadership moved during the writes (%d outcomes unknown); again", attempt, unsure)
	}
	t.Fatalf("no follower kept its role for %d tries", retries)
}

// A leader that takes no batches (an older build answering 404) still gets every
// forwarded write, one request each.
func TestForwardFallsBackToSingleApply(t *testing.T) {
	tc := newCluster(t, 3, nodeOptions{})
	ctx := ctxFor(t, 20*time.Second)
	for _, n := range tc.nodes {
		n.setFault(PathApplyBatch, func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) })
	}
	in := instance("10.4.0.1", 8080)
	f, res, err := tc.forwardedApply(ctx, register(t, ordersKey, in))
	if err != nil || res != nil {
		t.Fatalf("register on follower %s: res %v, err %v; want nil, nil", f.id, res, err)
	}
	if f.stored(ordersKey, in) == nil {
		t.Fatalf("follower %s has not applied its own write when Apply returned", f.id)
	}
}

func TestBatchFramesRoundTripAndRefuseMalformed(t *testing.T) {
	cmds := [][]byte{[]byte("a"), bytes.Repeat([]byte("b"), 300), []byte("c")}
	var body []byte
	for _, c := range cmds {
		body = appendFrame(body, c)
	}
	got, err := splitBatch(body)
	if err != nil || len(got) != len(cmds) {
		t.Fatalf("splitBatch = %d commands, %v; want %d", len(got), err, len(cmds))
	}
	for i := range cmds {
		if !bytes.Equal(got[i], cmds[i]) {
			t.Fatalf("command %d = %q, want %q", i, got[i], cmds[i])
		}
	}
	var tooMany []byte
	for range maxForwardBatch + 1 {
		tooMany = appendFrame(tooMany, []byte("x"))
	}
	for name, bad := range map[string][]byte{
		"empty":          nil,
		"truncated":      body[:len(body)-1],
		"zero length":    {0},
		"bad varint":     {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		"too many":       tooMany,
		"length too big": binary.AppendUvarint(nil, maxCommand+1),
	} {
		if _, err := splitBatch(bad); err == nil {
			t.Errorf("%s: splitBatch accepted it", name)
		}
	}
}
