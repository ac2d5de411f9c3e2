package grpcapi

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/roster-registry/roster/cluster"
	"github.com/roster-registry/roster/distro"
	"github.com/roster-registry/roster/fsm"
	nacospb "github.com/roster-registry/roster/grpcapi/proto"
	"github.com/roster-registry/roster/naming"
	"github.com/roster-registry/roster/persistence"
	"github.com/roster-registry/roster/raftnode"
	"github.com/roster-registry/roster/registry"
	"github.com/roster-registry/roster/registry/udppush"
)

// stack is one real node in-process: bbolt in a temp dir, Raft over TCP on 127.0.0.1,
// the distro store, the registry and the gRPC front on a real listener.
type stack struct {
	t      *testing.T
	reg    *registry.Registry
	distro *distro.Store
	srv    *Server
	addr   string
	ready  *atomic.Bool
}

func newStack(t *testing.T, cfg Config) *stack {
	t.Helper()
	dir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	store, err := persistence.Open(filepath.Join(dir, "fsm.db"), persistence.Options{OpenTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	machine := fsm.New(store, log)
	node, err := raftnode.New(raftnode.Config{
		NodeID: "n1", RaftAddr: "127.0.0.1:0", DataDir: filepath.Join(dir, "raft"), Bootstrap: true,
		HeartbeatTimeout: 50 * time.Millisecond, ElectionTimeout: 50 * time.Millisecond,
		LeaderLeaseTimeout: 50 * time.Millisecond, CommitTimeout: 5 * time.Millisecond,
		FSMAppliedIndex: func() uint64 { i, _ := store.Applied(); return i },
		Logger:          log,
	}, machine)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := node.WaitLeader(ctx); err != nil {
		t.Fatalf("no leader: %v", err)
	}
	if err := node.Barrier(ctx); err != nil {
		t.Fatal(err)
	}
	timing := naming.DefaultTiming()
	d := distro.New(distro.Config{Timing: timing, CheckInterval: time.Hour, Logger: log})
	reg, err := registry.New(registry.Config{Timing: timing, Logger: log,
		Push: udppush.Config{ListenAddr: "127.0.0.1:0", Delay: 20 * time.Millisecond, Logger: log}}, soloParts(t, dir, node, machine, d))
	if err != nil {
		t.Fatal(err)
	}
	reg.Start()
	if cfg.Auth != nil {
		machine.OnAuthChange(func(doc []byte) { _ = cfg.Auth.Load(doc) })
		if err := reg.EnsureSigningKey(ctx, cfg.Auth); err != nil {
			t.Fatal(err)
		}
	}
	ready := &atomic.Bool{}
	ready.Store(true)
	cfg.Ready = ready.Load
	cfg.Logger = log
	srv := New(cfg, reg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Stop()
		reg.Close()
		d.Stop()
		_ = node.Shutdown()
		_ = store.Close()
	})
	return &stack{t: t, reg: reg, distro: d, srv: srv, addr: ln.Addr().String(), ready: ready}
}

// client is a raw Nacos 2.x client: one gRPC connection, unary calls and the stream.
// It answers ClientDetectionRequest and acks pushes unless told not to, and records
// every server request it receives.
type client struct {
	t      *testing.T
	cc     *grpc.ClientConn
	req    nacospb.RequestClient
	stream nacospb.BiRequestStream_RequestBiStreamClient
	connID string

	noAck    atomic.Bool // do not ack pushes
	noDetect atomic.Bool // do not answer detection
	noRead   bool        // never read the stream

	mu       sync.Mutex
	received []Envelope
	notify   chan struct{}
}

func (s *stack) dial(opts ...grpc.DialOption) *client {
	s.t.Helper()
	cc, err := grpc.NewClient(s.addr, append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)...)
	if err != nil {
		s.t.Fatal(err)
	}
	c := &client{t: s.t, cc: cc, req: nacospb.NewRequestClient(cc), notify: make(chan struct{}, 1)}
	s.t.Cleanup(func() { _ = cc.Close() })
	return c
}

// connect does what Nacos clients do: ServerCheckRequest, open the stream, send
// ConnectionSetupRequest (no answer), then wait until requests are accepted.
func (s *stack) connect() *client { return s.connectWith(false) }

// connectWith connects; a client that does not read leaves the server's pushes unread
// on its stream (with a fixed 64 KiB window, so the server's sends block).
func (s *stack) connectWith(noRead bool, opts ...grpc.DialOption) *client {
	s.t.Helper()
	c := s.dial(opts...)
	c.noRead = noRead
	typ, body := c.call("ServerCheckRequest", map[string]any{"module": "internal"})
	if typ != "ServerCheckResponse" {
		s.t.Fatalf("ServerCheckRequest = %s %s", typ, body)
	}
	var sc struct {
		ConnectionID string `json:"connectionId"`
	}
	if err := json.Unmarshal([]byte(body), &sc); err != nil || sc.ConnectionID == "" {
		s.t.Fatalf("ServerCheckResponse %s has no connectionId (%v)", body, err)
	}
	c.connID = sc.ConnectionID
	c.openStream()
	c.streamSend("ConnectionSetupRequest", `{"clientVersion":"Nacos-Go-Client:v2.3.2","tenant":"","labels":{"source":"sdk","module":"naming"},"clientAbilities":{},"module":"internal"}`)
	waitFor(s.t, 5*time.Second, "connection registered", func() bool {
		typ, _ := c.call("HealthCheckRequest", map[string]any{"module": "internal"})
		return typ == "HealthCheckResponse"
	})
	return c
}

func (c *client) openStream() {
	c.t.Helper()
	st, err := nacospb.NewBiRequestStreamClient(c.cc).RequestBiStream(context.Background())
	if err != nil {
		c.t.Fatal(err)
	}
	c.stream = st
	if !c.noRead {
		go c.read()
	}
}

func (c *client) read() {
	for {
		p, err := c.stream.Recv()
		if err != nil {
			return
		}
		env, err := DecodeEnvelope(p)
		if err != nil {
			continue
		}
		c.mu.Lock()
		c.received = append(c.received, env)
		c.mu.Unlock()
		select {
		case c.notify <- struct{}{}:
		default:
		}
		var head struct {
			RequestID string `json:"requestId"`
		}
		_ = json.Unmarshal(env.Body, &head)
		switch env.Type {
		case "NotifySubscriberRequest":
			if !c.noAck.Load() {
				c.streamSend("NotifySubscriberResponse", `{"resultCode":200,"errorCode":0,"success":true,"requestId":"`+head.RequestID+`"}`)
			}
		case "ClientDetectionRequest":
			if !c.noDetect.Load() {
				// G2 answers success:false with resultCode 200 (PROTOCOL.md §6.2).
				c.streamSend("ClientDetectionResponse", `{"resultCode":200,"errorCode":0,"success":false,"requestId":"`+head.RequestID+`"}`)
			}
		}
	}
}

var sendMu sync.Mutex

func (c *client) streamSend(typ, body string) {
	sendMu.Lock()
	defer sendMu.Unlock()
	_ = c.stream.Send(EncodePayload(typ, []byte(body)))
}

// call sends one unary request with a JSON body (a string is sent verbatim).
func (c *client) call(typ string, body any) (string, string) {
	c.t.Helper()
	var raw []byte
	switch b := body.(type) {
	case string:
		raw = []byte(b)
	case []byte:
		raw = b
	default:
		var err error
		if raw, err = json.Marshal(b); err != nil {
			c.t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := c.req.Request(ctx, EncodePayload(typ, raw))
	if err != nil {
		c.t.Fatalf("%s: %v", typ, err)
	}
	return p.GetMetadata().GetType(), string(p.GetBody().GetValue())
}

// pushes returns the NotifySubscriberRequests received so far.
func (c *client) serverRequests(typ string) []Envelope {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Envelope
	for _, e := range c.received {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

func (c *client) close() { _ = c.cc.Close() }

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// counter reads a counter's value.
func counter(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}

// soloParts completes the parts of a node that is a cluster of one.
func soloParts(t *testing.T, dir string, node *raftnode.Node, machine *fsm.FSM, d *distro.Store) registry.Parts {
	t.Helper()
	c, err := cluster.New(cluster.Config{NodeID: node.ID(), RaftAddr: node.Addr(), DataDir: dir}, node)
	if err != nil {
		t.Fatal(err)
	}
	rep := distro.NewReplicator(d, distro.ReplicatorConfig{Self: node.ID(), Peers: func() []distro.Peer { return []distro.Peer{{ID: node.ID()}} }})
	return registry.Parts{Node: node, FSM: machine, Ephemeral: d, Replicator: rep, Cluster: c}
}
