package server_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/roster-registry/roster/server"
	"github.com/roster-registry/roster/server/servertest"
	"github.com/roster-registry/roster/testsupport/freeport"
)

// TestConsistentReadOnCutOffLeaderFails (chaos R3): a leader whose links are cut, with
// Raft answers it was sent just before the cut still on the wire, must refuse a
// consistent=true read instead of confirming itself with those stale answers. Every
// Raft link passes a proxy that delays each chunk, as a network does, and the cut holds
// whatever is read after it while delivering what was already in flight. Writes keep
// AppendEntries in flight at the moment of the cut.
func TestConsistentReadOnCutOffLeaderFails(t *testing.T) {
	const n = 3
	const wire = 100 * time.Millisecond
	raftAddrs := make([]string, n)
	for i := range raftAddrs {
		raftAddrs[i] = reservePort(t)
	}
	// links[i][j] carries what node i dials of node j.
	links := make([][]*delayLink, n)
	for i := range links {
		links[i] = make([]*delayLink, n)
		for j := range links[i] {
			if i != j {
				links[i][j] = startDelayLink(t, raftAddrs[j], wire)
			}
		}
	}
	nodes := servertest.StartCluster(t, n, func(i int, cfg *server.Config) {
		cfg.RaftAddr = raftAddrs[i]
		cfg.ElectionTimeout = time.Second
		cfg.ApplyTimeout = 3 * time.Second
		cfg.Test.PeerProxy = map[string]string{}
		for j := range n {
			if j != i {
				cfg.Test.PeerProxy[raftAddrs[j]] = links[i][j].addr()
			}
		}
	})
	heal := func() {
		for _, row := range links {
			for _, l := range row {
				if l != nil {
					l.held.Store(false)
				}
			}
		}
	}
	t.Cleanup(heal) // before the nodes close

	leader := -1
	for deadline := time.Now().Add(10 * time.Second); leader < 0; {
		for i, srv := range nodes {
			if srv.IsLeader() {
				leader = i
			}
		}
		if leader < 0 && time.Now().After(deadline) {
			t.Fatal("no leader within 10 s")
		}
		if leader < 0 {
			time.Sleep(10 * time.Millisecond)
		}
	}
	base := "http://" + nodes[leader].HTTPAddr() + "/nacos/v1/ns/instance"
	hc := &http.Client{Timeout: 5 * time.Second}

	var acked atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				u := fmt.Sprintf("%s?serviceName=cut&ip=10.0.%d.%d&port=%d&ephemeral=false", base, w, k%250, 1000+k)
				resp, err := hc.Post(u, "", nil)
				if err != nil {
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK && string(b) == "ok" {
					acked.Add(1)
				}
			}
		}()
	}
	defer func() { close(stop); heal(); wg.Wait() }()
	for deadline := time.Now().Add(10 * time.Second); acked.Load() < 30; {
		if time.Now().After(deadline) {
			t.Fatalf("only %d writes acked within 10 s", acked.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}

	// Cut the leader off: nothing read on its links from now on passes.
	for j := range n {
		if j != leader {
			links[leader][j].held.Store(true)
			links[j][leader].held.Store(true)
		}
	}
	t0 := time.Now()
	resp, err := hc.Get(base + "/list?serviceName=cut&consistent=true")
	if err != nil {
		t.Fatalf("consistent read on the cut-off leader: %v (want a prompt refusal)", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	took := time.Since(t0)
	if resp.StatusCode == http.StatusOK {
		t.Fatalf("consistent read on the cut-off leader answered 200 after %v: %.200s", took, b)
	}
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(b), "consistent read refused") {
		t.Errorf("consistent read on the cut-off leader: %d %q, want 503 consistent read refused", resp.StatusCode, b)
	}
	if took > 4*time.Second {
		t.Errorf("consistent read refused after %v, want within the apply timeout", took)
	}
}

// reservePort returns a loopback address whose port was free a moment ago, below the
// ephemeral range: the delay links bind ports the kernel picks (":0") before the nodes
// bind theirs, and one of them could otherwise be handed the port just released.
func reservePort(t *testing.T) string {
	t.Helper()
	return "127.0.0.1:" + strconv.Itoa(freeport.Pick(t))
}

// delayLink is a TCP proxy to one target that delivers each chunk of the target's
// answers wire after it was read; while held, chunks it reads wait in either direction
// (what was read before is still delivered).
type delayLink struct {
	ln     net.Listener
	target string
	wire   time.Duration
	held   atomic.Bool
	closed atomic.Bool

	mu    sync.Mutex
	conns []net.Conn
}

func startDelayLink(t *testing.T, target string, wire time.Duration) *delayLink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &delayLink{ln: ln, target: target, wire: wire}
	go l.serve()
	t.Cleanup(l.close)
	return l
}

func (l *delayLink) addr() string { return l.ln.Addr().String() }

func (l *delayLink) close() {
	l.closed.Store(true)
	l.ln.Close()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.conns {
		c.Close()
	}
}

func (l *delayLink) serve() {
	for {
		in, err := l.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.DialTimeout("tcp", l.target, 5*time.Second)
		if err != nil {
			in.Close()
			continue
		}
		l.mu.Lock()
		l.conns = append(l.conns, in, out)
		l.mu.Unlock()
		go l.pipe(out, in, 0)
		go l.pipe(in, out, l.wire)
	}
}

type wireChunk struct {
	b  []byte
	at time.Time
}

// pipe copies src to dst, each chunk delivered wire after it was read.
func (l *delayLink) pipe(dst, src net.Conn, wire time.Duration) {
	chunks := make(chan wireChunk, 4096)
	go func() {
		defer dst.Close()
		for c := range chunks {
			time.Sleep(time.Until(c.at))
			if _, err := dst.Write(c.b); err != nil {
				return
			}
		}
	}()
	defer close(chunks)
	buf := make([]byte, 32<<10)
	for {
		k, err := src.Read(buf)
		if k > 0 {
			for l.held.Load() {
				if l.closed.Load() {
					return
				}
				time.Sleep(2 * time.Millisecond)
			}
			chunks <- wireChunk{b: append([]byte(nil), buf[:k]...), at: time.Now().Add(wire)}
		}
		if err != nil {
			return
		}
	}
}
