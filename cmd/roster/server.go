package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/roster-registry/roster/api"
	"github.com/roster-registry/roster/auth"
	"github.com/roster-registry/roster/cluster"
	"github.com/roster-registry/roster/distro"
	"github.com/roster-registry/roster/fsm"
	"github.com/roster-registry/roster/naming"
	"github.com/roster-registry/roster/persistence"
	"github.com/roster-registry/roster/raftnode"
	"github.com/roster-registry/roster/registry"
	"github.com/roster-registry/roster/registry/udppush"
)

// serverConfig is every setting of `roster server`, with its defaults.
type serverConfig struct {
	NodeID              string
	HTTPAddr            string
	RaftAddr            string
	DataDir             string
	HeartbeatInterval   time.Duration
	HeartbeatTimeout    time.Duration
	IPDeleteTimeout     time.Duration
	ExpiryCheckInterval time.Duration
	ElectionTimeout     time.Duration
	ApplyTimeout        time.Duration
	LogLevel            string
	LogFormat           string
	MaxBody             byteSize
	MaxSnapshotSize     byteSize
	MaxMetadata         int
	BootstrapExpect     int
	Join                string
	HoldTimeout         time.Duration
	SnapshotThreshold   uint64
	SnapshotInterval    time.Duration
	TrailingLogs        uint64
	// PprofAddr serves Go's profiling endpoints (pprof.go); empty: off.
	PprofAddr string
	// GRPC is the Nacos 2.x gRPC front (grpc.go).
	GRPC grpcConfig
	// Auth is access control (auth.go).
	Auth authConfig
	// Security is the node credential and client-port TLS (security.go).
	Security securityConfig
}

// byteSize is a flag value such as 1048576, 512KiB or 1MiB.
type byteSize int64

func (b *byteSize) String() string { return strconv.FormatInt(int64(*b), 10) }

func (b *byteSize) Set(s string) error {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n <= 0 {
		return fmt.Errorf("want a positive size such as 1048576, 512KiB or 1MiB")
	}
	*b = byteSize(n * mult)
	return nil
}

func serverFlags(cfg *serverConfig, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("roster server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.NodeID, "node-id", "", "stable node id (default: generated once and kept in the data dir)")
	fs.StringVar(&cfg.HTTPAddr, "http-addr", "127.0.0.1:8848", "HTTP listen address (Nacos' port)")
	fs.StringVar(&cfg.RaftAddr, "raft-addr", "127.0.0.1:7848", "Raft listen address")
	fs.StringVar(&cfg.DataDir, "data-dir", "./roster-data", "data directory")
	fs.DurationVar(&cfg.HeartbeatInterval, "heartbeat-interval", 5*time.Second, "beat interval told to 1.x clients")
	fs.DurationVar(&cfg.HeartbeatTimeout, "heartbeat-timeout", 15*time.Second, "an ephemeral instance without a beat this long turns unhealthy")
	fs.DurationVar(&cfg.IPDeleteTimeout, "ip-delete-timeout", 30*time.Second, "an ephemeral instance without a beat this long is removed")
	fs.DurationVar(&cfg.ExpiryCheckInterval, "expiry-check-interval", 500*time.Millisecond, "period of the ephemeral expiry check (at most 1s)")
	fs.DurationVar(&cfg.ElectionTimeout, "election-timeout", time.Second, "Raft heartbeat and election timeout")
	fs.DurationVar(&cfg.ApplyTimeout, "apply-timeout", 10*time.Second, "longest wait for a persistent write to commit")
	fs.StringVar(&cfg.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&cfg.LogFormat, "log-format", "text", "text or json")
	cfg.MaxBody = 1 << 20
	fs.Var(&cfg.MaxBody, "max-body", "largest request body (e.g. 1MiB)")
	cfg.MaxSnapshotSize = 1 << 30
	fs.Var(&cfg.MaxSnapshotSize, "max-snapshot-size", "largest snapshot a restore may upload (e.g. 1GiB)")
	fs.IntVar(&cfg.MaxMetadata, "max-metadata", naming.DefaultMaxMetadata, "largest summed length of an instance's metadata keys and values")
	fs.IntVar(&cfg.BootstrapExpect, "bootstrap-expect", 0, "form a new cluster once this many nodes with empty data dirs know each other (with --join)")
	fs.StringVar(&cfg.Join, "join", "", "comma-separated HTTP addresses of cluster members to form or join a cluster with")
	fs.DurationVar(&cfg.HoldTimeout, "hold-timeout", 5*time.Second, "how long a write waits for a leader before it fails with 503")
	fs.Uint64Var(&cfg.SnapshotThreshold, "snapshot-threshold", 8192, "Raft log entries between snapshots")
	fs.DurationVar(&cfg.SnapshotInterval, "snapshot-interval", 5*time.Second, "how often to check whether a Raft snapshot is due")
	fs.Uint64Var(&cfg.TrailingLogs, "trailing-logs", 10240, "Raft log entries kept after a snapshot")
	grpcFlags(fs, &cfg.GRPC)
	authFlags(fs, &cfg.Auth)
	securityFlags(fs, &cfg.Security)
	pprofFlags(fs, &cfg.PprofAddr)
	return fs
}

// applyEnv fills every flag not given on the command line from ROSTER_<FLAG>.
func applyEnv(fs *flag.FlagSet) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
			return
		}
		env := "ROSTER_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok {
			if e := f.Value.Set(v); e != nil {
				err = fmt.Errorf("invalid value %q for %s (--%s): %v", v, env, f.Name, e)
			}
		}
	})
	return err
}

// validate names the first flag whose value cannot work.
func (c *serverConfig) validate() error {
	bad := func(flag, why string) error { return fmt.Errorf("invalid value for --%s: %s", flag, why) }
	if err := checkPprofAddr(c.PprofAddr); err != nil {
		return err
	}
	for _, a := range []struct{ flag, addr string }{{"http-addr", c.HTTPAddr}, {"raft-addr", c.RaftAddr}} {
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			return bad(a.flag, "want host:port, got "+strconv.Quote(a.addr))
		}
	}
	switch {
	case c.DataDir == "":
		return bad("data-dir", "must not be empty")
	case c.HeartbeatInterval <= 0:
		return bad("heartbeat-interval", "must be positive")
	case c.HeartbeatTimeout < c.HeartbeatInterval:
		return bad("heartbeat-timeout", "must be at least --heartbeat-interval")
	case c.IPDeleteTimeout < c.HeartbeatTimeout:
		return bad("ip-delete-timeout", "must be at least --heartbeat-timeout")
	case c.ExpiryCheckInterval <= 0 || c.ExpiryCheckInterval > time.Second:
		return bad("expiry-check-interval", "must be in (0, 1s]")
	case c.ElectionTimeout < 10*time.Millisecond:
		return bad("election-timeout", "must be at least 10ms")
	case c.ApplyTimeout <= 0:
		return bad("apply-timeout", "must be positive")
	case c.MaxMetadata <= 0:
		return bad("max-metadata", "must be positive")
	case c.BootstrapExpect < 0 || c.BootstrapExpect > 7:
		return bad("bootstrap-expect", "must be between 0 and 7")
	case c.BootstrapExpect > 0 && c.Join == "" && c.BootstrapExpect > 1:
		return bad("bootstrap-expect", "needs --join with the other members' HTTP addresses")
	case c.HoldTimeout <= 0:
		return bad("hold-timeout", "must be positive")
	case c.SnapshotThreshold == 0:
		return bad("snapshot-threshold", "must be positive")
	case c.SnapshotInterval <= 0:
		return bad("snapshot-interval", "must be positive")
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		return bad("log-level", err.Error())
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return bad("log-format", "want text or json")
	}
	if err := c.Auth.validate(); err != nil {
		return err
	}
	if err := c.Security.validate(c.BootstrapExpect > 0 || c.Join != ""); err != nil {
		return err
	}
	return c.GRPC.validate(c.HTTPAddr)
}

// flagSet reports whether a flag was given on the command line or by its ROSTER_ variable.
func flagSet(fs *flag.FlagSet, name string) bool {
	if _, ok := os.LookupEnv("ROSTER_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))); ok {
		return true
	}
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	return given
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("want debug, info, warn or error")
	}
	return l, nil
}

func newLogger(c *serverConfig, w io.Writer) *slog.Logger {
	level, _ := parseLevel(c.LogLevel)
	opts := &slog.HandlerOptions{Level: level}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func runServer(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var cfg serverConfig
	fs := serverFlags(&cfg, stderr)
	// Parse quietly: a bad value is one line naming the flag, not the whole usage.
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.SetOutput(stderr)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(stderr, "Usage: roster server [flags]")
		fs.PrintDefaults()
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "roster server: %v\n", err)
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "roster server: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if err := applyEnv(fs); err != nil {
		fmt.Fprintf(stderr, "roster server: %v\n", err)
		return 2
	}
	cfg.Auth.set = flagSet(fs, "auth")
	if err := cfg.validate(); err != nil {
		fmt.Fprintf(stderr, "roster server: %v\n", err)
		return 2
	}
	log := newLogger(&cfg, stderr)
	if err := serve(ctx, &cfg, log); err != nil {
		fmt.Fprintf(stderr, "roster server: %v\n", err)
		return 1
	}
	return 0
}

// nodeID returns the configured id, or the one kept in the data dir, generating and
// keeping one on first start: a node's identity is never its address.
func nodeID(cfg *serverConfig) (string, error) {
	path := filepath.Join(cfg.DataDir, "node-id")
	stored, err := os.ReadFile(path)
	switch {
	case err == nil:
		id := strings.TrimSpace(string(stored))
		if cfg.NodeID != "" && cfg.NodeID != id {
			return "", fmt.Errorf("--node-id %q differs from the id %q kept in %s", cfg.NodeID, id, path)
		}
		return id, nil
	case !errors.Is(err, os.ErrNotExist):
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	id := cfg.NodeID
	if id == "" {
		b := make([]byte, 8)
		if _, err := rand.Read(b); err != nil {
			return "", err
		}
		id = "node-" + hex.EncodeToString(b)
	}
	if err := writeFileSync(path, []byte(id+"\n")); err != nil {
		return "", err
	}
	return id, nil
}

// writeFileSync writes a file through a temp file, fsync and rename.
func writeFileSync(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// serve runs one node until ctx is cancelled (SIGTERM or SIGINT), then stops it in
// reverse order of start.
func serve(ctx context.Context, cfg *serverConfig, log *slog.Logger) error {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	store, err := persistence.Open(filepath.Join(cfg.DataDir, "fsm.db"), persistence.Options{OpenTimeout: time.Second})
	if err != nil {
		if errors.Is(err, persistence.ErrLocked) {
			return fmt.Errorf("data dir %s is in use by another roster process: %w", cfg.DataDir, err)
		}
		return err
	}
	defer store.Close()
	// Read every record once before serving: a damaged fsm.db is refused here, naming
	// the file, rather than crashing or answering wrongly later (R9).
	if err := store.Check(); err != nil {
		return err
	}

	id, err := nodeID(cfg)
	if err != nil {
		return err
	}
	store.SetNodeID(id) // named in snapshot headers
	log = log.With("node", id)
	stopPprof, err := startPprof(cfg.PprofAddr, log)
	if err != nil {
		return err
	}
	defer stopPprof()

	grpcAddr, err := cfg.GRPC.addr(cfg.HTTPAddr)
	if err != nil {
		return err
	}
	authOn, exposed, err := cfg.Auth.resolve([]clientAddr{{"http-addr", cfg.HTTPAddr}, {"grpc-addr", grpcAddr}})
	if err != nil {
		return err
	}
	authority := auth.New(auth.Config{Enabled: authOn, TokenTTL: cfg.Auth.TokenTTL})

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
		go warnInsecure(ctx, log, exposed)
	}
	// A node started without --join or --bootstrap-expect is a cluster of one: it
	// bootstraps itself and elects itself at once.
	joins := splitList(cfg.Join)
	standalone := cfg.BootstrapExpect == 0 && len(joins) == 0
	knowsOthers := cluster.KnowsOthers(cfg.DataDir, id)
	cred, err := cfg.Security.credential(!standalone || knowsOthers)
	if err != nil {
		return err
	}
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
	defer node.Shutdown()

	members, err := cluster.New(cluster.Config{
		NodeID: id, HTTPAddr: cfg.HTTPAddr, RaftAddr: node.Addr(), DataDir: cfg.DataDir,
		BootstrapExpect: cfg.BootstrapExpect, Join: joins, HoldTimeout: cfg.HoldTimeout, Logger: log,
		Credential: cred,
		Applied:    func() uint64 { i, _ := store.Applied(); return i },
	}, node)
	if err != nil {
		return err
	}

	timing := naming.Timing{HeartBeatInterval: cfg.HeartbeatInterval, HeartBeatTimeout: cfg.HeartbeatTimeout, IPDeleteTimeout: cfg.IPDeleteTimeout}
	ephemeral := distro.New(distro.Config{Timing: timing, CheckInterval: cfg.ExpiryCheckInterval, Logger: log})
	ephemeral.Start()
	defer ephemeral.Stop()
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

	reg, err := registry.New(registry.Config{
		Timing: timing, MaxMetadata: cfg.MaxMetadata, Logger: log,
		Push: udppush.Config{Logger: log}, NodeID: id, HTTPAddr: cfg.HTTPAddr,
	}, registry.Parts{Node: node, FSM: machine, Ephemeral: ephemeral, Replicator: replicator, Cluster: members})
	if err != nil {
		return err
	}
	reg.Start()
	defer reg.Close()

	var ready atomic.Bool
	grpcSrv, err := startGRPC(cfg, reg, ready.Load, authority, log)
	if err != nil {
		return err
	}
	defer grpcSrv.Stop()
	handler := api.New(api.Config{
		MaxBody: int64(cfg.MaxBody), NodeID: id, HTTPAddr: cfg.HTTPAddr, Version: version,
		Logger: log, Ready: ready.Load,
		ExtraCollectors: grpcSrv.Collectors(),
		MaxSnapshot:     int64(cfg.MaxSnapshotSize), SpoolDir: cfg.DataDir,
		Auth: authority,
	}, reg)
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on --http-addr %s: %w", cfg.HTTPAddr, err)
	}
	ln = cfg.Security.httpListener(ln)
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	active := &busyConns{conns: map[net.Conn]struct{}{}}
	srv.ConnState = active.track
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	log.Info("roster started", "http", ln.Addr().String(), "raft", cfg.RaftAddr, "data_dir", cfg.DataDir, "version", version,
		"node_auth", cfg.Security.mode())

	members.Start()
	defer members.Stop()
	replicator.Start()
	defer replicator.Stop()

	readyDone := make(chan struct{})
	go func() {
		defer close(readyDone)
		if err := waitReady(ctx, node); err != nil {
			return
		}
		// A node serves ephemeral data only after it holds a full copy of it.
		pullCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
		err := replicator.Pull(pullCtx)
		cancel()
		if err != nil {
			log.Warn("serving without a full copy of the ephemeral state", "err", err)
		}
		ready.Store(true)
		log.Info("roster ready")
		// The token signing key is made once per cluster, by whichever node gets there
		// first, and replicated; it never leaves the cluster otherwise.
		if err := reg.EnsureSigningKey(ctx, authority); err != nil && ctx.Err() == nil {
			log.Error("no token signing key", "err", err)
		}
	}()

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		return fmt.Errorf("http server: %w", err)
	}
	log.Info("roster stopping")
	drainGRPC(grpcSrv) // before HTTP: clients leave while the node still answers
	stopHTTP(srv, active, log)
	<-readyDone
	return nil
}

// waitReady returns once a leader is known and the log is replayed: on the leader a
// Barrier applies everything committed before it; a follower waits until it has
// applied what was committed when it looked.
func waitReady(ctx context.Context, node *raftnode.Node) error {
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
			t := time.NewTicker(10 * time.Millisecond)
			for node.Stats().AppliedIndex < target {
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

// splitList splits a comma-separated flag value, dropping blanks.
func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

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
