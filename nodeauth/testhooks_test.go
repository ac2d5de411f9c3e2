package nodeauth

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// TestCheckAcceptsAFiveMinuteStepAndReportsIt: a member whose wall clock was stepped by
// five minutes is still accepted (it used to be refused beyond two, which cut it off
// from Distro and forwarding and removed live instances: chaos R12), and the skew is
// reported to OnSkew so that the server can log it.
func TestCheckAcceptsAFiveMinuteStepAndReportsIt(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	sender, receiver := mustKey(t, string(key)), mustKey(t, string(key))
	sender.Wall = func() time.Time { return time.Now().Add(5 * time.Minute) }
	var seen atomic.Int64
	receiver.OnSkew = func(d time.Duration) { seen.Store(int64(d)) }
	srv := httptest.NewServer(receiver.RequireFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") }))
	defer srv.Close()
	resp, err := sender.Client(5 * time.Second).Get(srv.URL + "/roster/v1/cluster/info")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("a 5-minute skew answered %d, want 200", resp.StatusCode)
	}
	if d := time.Duration(seen.Load()); d > -4*time.Minute {
		t.Fatalf("OnSkew saw %v, want about -5m", d)
	}
}

// TestDialRewriteCoversRaftAndHTTP: with DialRewrite, both the Raft stream layer and the
// HTTP transport dial the mapped address, so a test's fault proxy sees every
// node-to-node connection.
func TestDialRewriteCoversRaftAndHTTP(t *testing.T) {
	c := mustKey(t, "0123456789abcdef0123456789abcdef")
	httpSrv := httptest.NewServer(c.RequireFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") }))
	defer httpSrv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	raftLayer := c.NewStreamLayer(ln, nil, nil)
	defer raftLayer.Close()
	go func() {
		if conn, err := raftLayer.Accept(); err == nil {
			conn.Close()
		}
	}()
	// Addresses nothing listens on: only the rewrite makes them reachable.
	const fakeHTTP, fakeRaft = "127.0.0.1:1", "127.0.0.1:2"
	dialer := mustKey(t, "0123456789abcdef0123456789abcdef")
	dialer.DialRewrite = map[string]string{fakeHTTP: httpSrv.Listener.Addr().String(), fakeRaft: ln.Addr().String()}
	resp, err := dialer.Client(5 * time.Second).Get("http://" + fakeHTTP + "/x")
	if err != nil {
		t.Fatalf("HTTP through the rewrite: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("HTTP through the rewrite: %d", resp.StatusCode)
	}
	dl := dialer.NewStreamLayer(mustListen(t), nil, nil)
	defer dl.Close()
	conn, err := dl.Dial(raft.ServerAddress(fakeRaft), 5*time.Second)
	if err != nil {
		t.Fatalf("Raft dial through the rewrite: %v", err)
	}
	conn.Close()
}

func mustListen(t *testing.T) net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}
