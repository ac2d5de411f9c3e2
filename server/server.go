// Package server is an embeddable Roster node: New opens its stores and binds its
// ports, Start serves, Close stops it. The Server owns every listener and goroutine it
// starts, so a program or a test can run one or several nodes in one process.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/roster-registry/roster/api"
	"github.com/roster-registry/roster/auth"
	"github.com/roster-registry/roster/cluster"
	"github.com/roster-registry/roster/console"
	"github.com/roster-registry/roster/distro"
	"github.com/roster-registry/roster/fsm"
	"github.com/roster-registry/roster/grpcapi"
	"github.com/roster-registry/roster/healthcheck"
	"github.com/roster-registry/roster/naming"
	"github.com/roster-registry/roster/nodeauth"
	"github.com/roster-registry/roster/persistence"
	"github.com/roster-registry/roster/raftnode"
	"github.com/roster-registry/roster/registry"
	"github.com/roster-registry/roster/registry/udppush"
)

// Server is one node.
type Server struct {
	cfg      Config
	log      *slog.Logger
	id       string
	httpAddr string // advertised to the cluster and the API
	cred     *nodeauth.Credential
	exposed  string // the client port open beyond loopback without auth, if any

	node       *raftnode.Node
	members    *cluster.Cluster
	ephemeral  *distro.Store
	replicator *distro.Replicator
	reg        *registry.Registry
	prober     *healthcheck.Prober
	authority  *auth.Authority
	grpcSrv    *grpcapi.Server
	grpcLn     net.Listener
	httpSrv    *http.Server
	httpLn     net.Listener
	active     *busyConns
	pprofSrv   *http.Server
	pprofLn    net.Listener

	// stops undoes New, most recent first: what Close does after the listeners are
	// drained, and what a failing New does at once.
	stops []func() error

	ctx    context.Context // ends when Close begins
	cancel context.CancelFunc
	ready  atomic.Bool
	readyc chan struct{} // closed once ready is true
	errc   chan error
	wg     sync.WaitGroup // serving and warning goroutines

	mu        sync.Mutex
	started   bool
	closed    bool
	readyDone chan struct{} // closed when the readiness goroutine returns

	closeOnce sync.Once
	closeErr  error
}

// New validates cfg, opens the node's store, starts Raft and binds the HTTP, gRPC and
// (when asked) pprof ports; nothing else runs until Start. Raft alone is live from here
// on, as raftnode.New starts it. On an error everything opened so far is closed again,
// cfg.HTTPListener included.
func New(cfg Config) (_ *Server, err error) {
	s := &Server{
		cfg:    cfg,
		readyc: make(chan struct{}),
		errc:   make(chan error, 1),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			s.cancel()
			_ = s.unwind()
		}
	}()
	if given := cfg.HTTPListener; given != nil {
		// The Server owns a given listener from here on, so a failing New closes it too.
		s.onClose(func() error { _ = given.Close(); return nil })
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	applyMemoryLimit(cfg.MemoryLimit, cfg.logger())
	if err := s.open(); err != nil {
		return nil, err
	}
	return s, nil
}

// open is the wiring of one node, in start order. Each part that needs stopping is
// pushed on s.stops as soon as it exists.
func (s *Server) open() error {
	cfg := &s.cfg
	log := cfg.logger()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	store, err := persistence.Open(filepath.Join(cfg.DataDir, "fsm.db"), persistence.Options{
		OpenTimeout: time.Second, CommitInterval: cfg.FSMCommitInterval, CommitEntries: cfg.FSMCommitEntries,
	})
	if err != nil {
		if errors.Is(err, persistence.ErrLocked) {
			return fmt.Errorf("data dir %s is in use by another roster process: %w", cfg.DataDir, err)
		}
		return err
	}
	s.onClose(store.Close)
	// Read every record once before serving: a damaged fsm.db is refused here, naming
	// the file, rather than crashing or answering wrongly later (R9).
	if err := store.Check(); err != nil {
		return err
	}

	id, err := LoadNodeID(cfg.DataDir, cfg.NodeID)
	if err != nil {
		return err
	}
	s.id = id
	store.SetNodeID(id) // named in snapshot headers
	log = log.With("node", id)
	s.log = log
	if s.pprofSrv, s.pprofLn, err = listenPprof(cfg.PprofAddr, log); err != nil {
		return err
	}
	if s.pprofSrv != nil {
		s.onClose(func() error { _ = s.pprofSrv.Close(); _ = s.pprofLn.Close(); return nil })
	}

	grpcAddr, err := cfg.GRPC.addr(cfg.httpAddr())
	if err != nil {
		return err
	}
	authOn, exposed, err := cfg.Auth.resolve([]clientAddr{{"http-addr", cfg.httpAddr()}, {"grpc-addr", grpcAddr}})
	if err != nil {
		return err
	}
	authority := auth.New(auth.Config{Enabled: authOn, TokenTTL: cfg.Auth.TokenTTL})
	s.authority = authority

	machine := fsm.New(store, log)
	// The authority follows the replicated access-control state: what the store holds
	// now, then every change Raft applies.
	machine.OnAuthChange(func(doc []byte) {
		if err := authority.Load(doc); err != nil {
			log.Error("access-control state does not decode; keeping the previous one", "err", err)
		}
	})
	if doc, err := machine.AuthState(); err != nil {
		return err
	} else if err := authority.Load(doc); err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(cfg.DataDir, "fsm.db"), err)
	}
	if authOn {
		log.Info("auth is on: every client request needs credentials", "users", len(authority.State().Users))
	} else if exposed != "" {
		s.exposed = exposed
		warnInsecure(log, exposed)
	}
	// A node started without Join or BootstrapExpect is a cluster of one: it
	// bootstraps itself and elects itself at once.
	joins := cfg.Join
	standalone := cfg.BootstrapExpect == 0 && len(joins) == 0
	knowsOthers := cluster.KnowsOthers(cfg.DataDir, id)
	cred, err := cfg.Security.credential(!standalone || knowsOthers)
	if err != nil {
		return err
	}
	s.cred = cred
	wall := &wallClock{}
	if cfg.Test.ClockOffsetFile != "" {
		stop := make(chan struct{})
		go wall.watch(cfg.Test.ClockOffsetFile, log, stop)
		s.onClose(func() error { close(stop); return nil })
	}
	cred.DialRewrite = cfg.Test.PeerProxy
	cred.Wall = wall.Now
	skew := &skewWarner{log: log}
	cred.OnSkew = skew.observe
	timeout := cfg.ElectionTimeout
	node, err := raftnode.New(raftnode.Config{
		NodeID:             id,
		RaftAddr:           cfg.RaftAddr,
		DataDir:            filepath.Join(cfg.DataDir, "raft"),
		Bootstrap:          standalone,
		Solo:               standalone && !knowsOthers,
		HeartbeatTimeout:   timeout,
		ElectionTimeout:    timeout,
		LeaderLeaseTimeout: timeout / 2,
		SnapshotThreshold:  cfg.SnapshotThreshold,
		SnapshotInterval:   cfg.SnapshotInterval,
		TrailingLogs:       cfg.TrailingLogs,
		ApplyTimeout:       cfg.ApplyTimeout,
		FSMAppliedIndex:    func() uint64 { idx, _ := store.Applied(); return idx },
		Logger:             log,
		Credential:         cred,
	}, machine)
	if err != nil {
		return err
	}
	s.node = node
	s.onClose(node.Shutdown)

	// The HTTP port is bound before the cluster is built: with port 0 only the bound
	// address can be advertised to the other members.
	ln := cfg.HTTPListener
	if ln == nil {
		if ln, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
			return fmt.Errorf("listen on --http-addr %s: %w", cfg.HTTPAddr, err)
		}
		s.onClose(func() error { _ = ln.Close(); return nil })
	}
	httpAddr := advertised(cfg.httpAddr(), ln.Addr().String())
	s.httpAddr = httpAddr
	s.httpLn = cfg.Security.httpListener(ln, cred)

	members, err := cluster.New(cluster.Config{
		NodeID: id, HTTPAddr: httpAddr, RaftAddr: node.Addr(), DataDir: cfg.DataDir,
		BootstrapExpect: cfg.BootstrapExpect, Join: joins, HoldTimeout: cfg.HoldTimeout, ForwardTimeout: cfg.ForwardTimeout, Logger: log,
		Credential:  cred,
		Applied:     func() uint64 { i, _ := store.Applied(); return i },
		WaitApplied: store.WaitApplied,
	}, node)
	if err != nil {
		return err
	}
	s.members = members

	timing := naming.Timing{HeartBeatInterval: cfg.HeartbeatInterval, HeartBeatTimeout: cfg.HeartbeatTimeout, IPDeleteTimeout: cfg.IPDeleteTimeout}
	ephemeral := distro.New(distro.Config{Timing: timing, CheckInterval: cfg.ExpiryCheckInterval, Logger: log, Wall: wall.Now})
	s.ephemeral = ephemeral
	s.onClose(func() error { ephemeral.Stop(); return nil })
	// Distro replication: the Raft configuration is the member list.
	replicator := distro.NewReplicator(ephemeral, distro.ReplicatorConfig{
		Self: id, Logger: log, OwnedGrace: cfg.IPDeleteTimeout, Credential: cred,
		Peers: func() []distro.Peer {
			var peers []distro.Peer
			for _, m := range members.Members() {
				peers = append(peers, distro.Peer{ID: m.ID, HTTPAddr: m.HTTPAddr})
			}
			return peers
		},
	})
	s.replicator = replicator

	reg, err := registry.New(registry.Config{
		Timing: timing, MaxMetadata: cfg.MaxMetadata, Logger: log,
		NamespaceMaxServices: cfg.NamespaceMaxServices, NamespaceMaxInstances: cfg.NamespaceMaxInstances,
		Push: udppush.Config{Logger: log}, NodeID: id, HTTPAddr: httpAddr,
	}, registry.Parts{Node: node, FSM: machine, Ephemeral: ephemeral, Replicator: replicator, Cluster: members})
	if err != nil {
		return err
	}
	s.reg = reg
	s.onClose(func() error { reg.Close(); return nil })

	hcCfg, err := cfg.HealthCheck.prober()
	if err != nil {
		return err
	}
	hcCfg.Logger = log
	prober, err := reg.NewProber(hcCfg)
	if err != nil {
		return err
	}
	s.prober = prober
	// Stopping a prober that never started is harmless.
	s.onClose(func() error { prober.Stop(); return nil })

	grpcSrv := grpcapi.New(grpcapi.Config{
		MaxMetadata:    cfg.MaxMetadata,
		MaxConnections: cfg.GRPC.MaxConnections,
		DetectIdle:     cfg.GRPC.DetectIdle,
		DetectTimeout:  cfg.GRPC.DetectTimeout,
		PushTimeout:    cfg.GRPC.PushTimeout,
		PushDelay:      cfg.GRPC.PushDelay,
		Ready:          s.ready.Load,
		Auth:           authority,
		Logger:         log,
	}, reg)
	s.grpcSrv = grpcSrv
	s.onClose(func() error { grpcSrv.Stop(); return nil })
	gln, err := net.Listen("tcp", grpcAddr)
	if err != nil {
		return fmt.Errorf("listen on --grpc-addr %s: %w", grpcAddr, err)
	}
	s.onClose(func() error { _ = gln.Close(); return nil })
	s.grpcLn = cfg.Security.grpcListener(gln, cred)
	log.Info("grpc listening", "grpc", s.grpcLn.Addr().String())

	var consoleHandler http.Handler
	if cfg.Console {
		consoleHandler = console.Handler()
	}
	handler := api.New(api.Config{
		MaxBody: cfg.MaxBody, NodeID: id, HTTPAddr: httpAddr, Version: cfg.Version,
		Logger: log, Ready: s.ready.Load,
		ExtraCollectors: append(append(append(grpcSrv.Collectors(), prober.Collectors()...), writePathCollectors(s.node, machine, store, members)...), skew.collector()),
		MaxSnapshot:     cfg.MaxSnapshotSize, SpoolDir: cfg.DataDir,
		Auth: authority, Console: consoleHandler,
	}, reg)
	s.httpSrv = &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	s.active = &busyConns{conns: map[net.Conn]struct{}{}}
	s.httpSrv.ConnState = s.active.track

	// Neither runs before Start; stopping them unstarted is harmless.
	s.onClose(func() error { members.Stop(); return nil })
	s.onClose(func() error { replicator.Stop(); return nil })
	return nil
}

// advertised is the address to tell others: the configured one, unless it asked for
// port 0, in which case only the bound address says where the node is.
func advertised(asked, bound string) string {
	if _, port, err := net.SplitHostPort(asked); err == nil && port != "0" {
		return asked
	}
	return bound
}

func (s *Server) onClose(stop func() error) { s.stops = append(s.stops, stop) }

// unwind runs the stops in reverse order and returns what failed.
func (s *Server) unwind() error {
	var errs []error
	for i := len(s.stops) - 1; i >= 0; i-- {
		if err := s.stops[i](); err != nil {
			errs = append(errs, err)
		}
	}
	s.stops = nil
	return errors.Join(errs...)
}

// Start serves the client ports and runs the background work: expiry, UDP push,
// membership, Distro replication, and the wait for readiness (see Ready). Calls after
// the first, and a call after Close, do nothing.
func (s *Server) Start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.closed {
		return
	}
	s.started = true
	cfg, log := &s.cfg, s.log

	s.ephemeral.Start()
	s.reg.Start()
	s.wg.Add(2)
	// A Serve that returns once Close has begun is the stop, not a failure.
	go func() {
		defer s.wg.Done()
		if err := s.grpcSrv.Serve(s.grpcLn); err != nil && !errors.Is(err, net.ErrClosed) && s.ctx.Err() == nil {
			log.Error("grpc server", "err", err)
		}
	}()
	go func() {
		defer s.wg.Done()
		if err := s.httpSrv.Serve(s.httpLn); !errors.Is(err, http.ErrServerClosed) && s.ctx.Err() == nil {
			s.errc <- fmt.Errorf("http server: %w", err)
		}
	}()
	if s.pprofSrv != nil {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			_ = s.pprofSrv.Serve(s.pprofLn)
		}()
	}
	log.Info("roster started", "http", s.httpLn.Addr().String(), "raft", advertised(cfg.RaftAddr, s.node.Addr()),
		"data_dir", cfg.DataDir, "version", cfg.Version, "node_auth", cfg.Security.mode(s.cred))

	s.members.Start()
	s.replicator.Start()
	if s.exposed != "" {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			warnInsecureHourly(s.ctx, log, s.exposed)
		}()
	}

	s.readyDone = make(chan struct{})
	go s.becomeReady()
}

// becomeReady marks the node ready once it can answer correctly, then makes sure the
// cluster has a token signing key.
func (s *Server) becomeReady() {
	defer close(s.readyDone)
	ctx, log := s.ctx, s.log
	if err := waitReady(ctx, s.node, s.members.LeaderApplied, log); err != nil {
		return
	}
	// A node serves ephemeral data only after it holds a full copy of it.
	pullCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	err := s.replicator.Pull(pullCtx)
	cancel()
	if err != nil {
		log.Warn("serving without a full copy of the ephemeral state", "err", err)
	}
	s.ready.Store(true)
	close(s.readyc)
	log.Info("roster ready")
	// Probing starts once the log is replayed: the targets are then the cluster's.
	s.prober.Start()
	// The token signing key is made once per cluster, by whichever node gets there
	// first, and replicated; it never leaves the cluster otherwise.
	if err := s.reg.EnsureSigningKey(ctx, s.authority); err != nil && ctx.Err() == nil {
		log.Error("no token signing key", "err", err)
	}
}

// Ready is closed once the node serves traffic: a leader is known, the log is replayed
// and the ephemeral state pulled. It stays open on a node closed before that.
func (s *Server) Ready() <-chan struct{} { return s.readyc }

// Err delivers at most one error: the HTTP port failed and the node no longer serves
// it. The owner should then Close the node. (A failing gRPC port is logged and the
// node goes on serving HTTP.)
func (s *Server) Err() <-chan error { return s.errc }

// Close stops the node in reverse order of start: gRPC clients are told to move, HTTP
// requests in progress finish (up to 5 s), then replication, membership, push, expiry,
// Raft and the store stop. When it returns every port is closed and every goroutine
// the node started has ended, but for two that are not the node's to wait for:
// hashicorp/raft's transport ends its accept loop just after, and idle node-to-node
// connections to members still running stay until they or the peer time them out.
// It is safe to call more than once and on a node never started; every call returns
// the first one's result: what failed closing Raft's store or fsm.db.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		readyDone := s.readyDone
		s.mu.Unlock()
		s.cancel()
		s.log.Info("roster stopping")
		drainGRPC(s.grpcSrv) // before HTTP: clients leave while the node still answers
		stopHTTP(s.httpSrv, s.active, s.log)
		if readyDone != nil {
			<-readyDone
		}
		s.closeErr = s.unwind()
		s.wg.Wait()
	})
	return s.closeErr
}

// NodeID is the node's stable id.
func (s *Server) NodeID() string { return s.id }

// HTTPAddr is the HTTP address the node advertises: the configured one, or the bound
// one when port 0 was asked for or a listener was given.
func (s *Server) HTTPAddr() string { return s.httpAddr }

// GRPCAddr is the bound address of the Nacos 2.x gRPC port.
func (s *Server) GRPCAddr() string { return s.grpcLn.Addr().String() }

// RaftAddr is the Raft address other members dial.
func (s *Server) RaftAddr() string { return s.node.Addr() }

// IsLeader reports whether the node is the Raft leader at this moment.
func (s *Server) IsLeader() bool { return s.node.IsLeader() }

// waitReady returns once a leader is known and the log is replayed: on the leader a
// Barrier applies everything committed before it; a follower waits until it has applied
// what the leader had applied when it asked (leaderApplied) — its own commit index only
// reaches what its log already holds, so a restarted follower would otherwise report
// ready before it received the entries it missed. A leader that cannot be asked leaves
// the follower's own commit index as the target, and a follower that cannot catch up
// within followerCatchUp serves anyway, with a warning (availability first).
func waitReady(ctx context.Context, node *raftnode.Node, leaderApplied func() (uint64, error), log *slog.Logger) error {
	for {
		if err := node.WaitLeader(ctx); err != nil {
			return err
		}
		if node.IsLeader() {
			bctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := node.Barrier(bctx)
			cancel()
			if err == nil {
				return nil
			}
		} else {
			target := node.Stats().CommitIndex
			mustReach := target
			if idx, err := leaderApplied(); err == nil && idx > target {
				target = idx
			} else if err != nil {
				log.Debug("readiness: the leader's applied index is unknown; waiting for this node's commit index", "err", err)
			}
			deadline := time.Now().Add(followerCatchUp)
			t := time.NewTicker(10 * time.Millisecond)
			for applied := node.Stats().AppliedIndex; applied < target; applied = node.Stats().AppliedIndex {
				if applied >= mustReach && time.Now().After(deadline) {
					log.Warn("ready before catching up with the leader", "applied", applied, "leader_applied", target)
					break
				}
				select {
				case <-ctx.Done():
					t.Stop()
					return ctx.Err()
				case <-t.C:
				}
			}
			t.Stop()
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// followerCatchUp bounds how long a starting follower waits to reach the leader's
// applied index before it serves.
const followerCatchUp = 30 * time.Second

// stopHTTP lets requests in progress finish (up to 5 s) and then closes the listener
// and every connection. http.Server.Shutdown alone also waits for connections that
// never sent a request until they are 5 s old; nothing is lost by closing those.
func stopHTTP(srv *http.Server, active *busyConns, log *slog.Logger) {
	done := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	go func() { done <- srv.Shutdown(ctx) }()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case err := <-done:
			if err != nil {
				log.Warn("http shutdown", "err", err)
			}
			return
		case <-t.C:
			if active.count() == 0 {
				_ = srv.Close()
				<-done
				return
			}
		}
	}
}

// busyConns tracks the HTTP connections in the middle of a request.
type busyConns struct {
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func (b *busyConns) track(c net.Conn, st http.ConnState) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if st == http.StateActive {
		b.conns[c] = struct{}{}
	} else {
		delete(b.conns, c)
	}
}

func (b *busyConns) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.conns)
}

// Registry is the node's router, for embedders that call it in-process (and for tests
// that compare what the fronts answer with what it returns).
func (s *Server) Registry() *registry.Registry { return s.reg }
