package server

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/roster-registry/roster/naming"
)

// Config is every setting of one node. Start from DefaultConfig: a zero Config does not
// validate. The `roster server` flags map one to one onto these fields, and the errors of
// Validate name the flag, because that is what an operator sets.
type Config struct {
	// NodeID is the node's stable id; empty: generated once and kept in DataDir.
	NodeID string
	// HTTPAddr is the HTTP listen address (Nacos' port). Port 0 picks a free port;
	// the bound address is what the cluster and the API then advertise.
	HTTPAddr string
	// HTTPListener, when set, is the HTTP port already bound; HTTPAddr is then ignored
	// and the listener's address is advertised. The Server owns it and closes it. It
	// lets a caller know every member's address before any member starts.
	HTTPListener net.Listener
	// RaftAddr is the Raft listen address; port 0 picks a free port.
	RaftAddr string
	// DataDir holds fsm.db, the Raft log and snapshots, the node id and the member table.
	DataDir string

	HeartbeatInterval   time.Duration // beat interval told to 1.x clients
	HeartbeatTimeout    time.Duration // an ephemeral instance without a beat this long turns unhealthy
	IPDeleteTimeout     time.Duration // an ephemeral instance without a beat this long is removed
	ExpiryCheckInterval time.Duration // period of the ephemeral expiry check (at most 1s)
	ElectionTimeout     time.Duration // Raft heartbeat and election timeout
	ApplyTimeout        time.Duration // longest wait for a persistent write to commit

	// LogLevel (debug, info, warn, error) and LogFormat (text, json) describe the logger
	// NewLogger builds, which the node uses when Logger is nil.
	LogLevel  string
	LogFormat string
	// Logger receives every log line of the node; nil: NewLogger(os.Stderr).
	Logger *slog.Logger

	MaxBody         int64 // largest request body, bytes
	MaxSnapshotSize int64 // largest snapshot a restore may upload, bytes
	MaxMetadata     int   // largest summed length of an instance's metadata keys and values

	// NamespaceMaxServices and NamespaceMaxInstances are each namespace's quotas unless
	// the namespace's record overrides them; 0 is unlimited.
	NamespaceMaxServices  int
	NamespaceMaxInstances int

	// BootstrapExpect > 0 forms a new cluster once this many nodes with empty data dirs
	// know each other (with Join).
	BootstrapExpect int
	// Join lists HTTP addresses of cluster members to form or join a cluster with. A
	// node with neither Join nor BootstrapExpect is a cluster of one.
	Join []string
	// HoldTimeout is how long a write waits for a leader before it fails with 503.
	HoldTimeout time.Duration
	// ForwardTimeout is how long a node waits for the leader to answer a write, a
	// consistent read or a leader-only request it sent on before it answers 503 itself
	// (a write's outcome is then unknown). More than ApplyTimeout, the leader's own wait.
	ForwardTimeout time.Duration

	SnapshotThreshold uint64        // Raft log entries between snapshots
	SnapshotInterval  time.Duration // how often to check whether a Raft snapshot is due
	TrailingLogs      uint64        // Raft log entries kept after a snapshot

	// FSMCommitInterval is how long applied persistent writes may wait in memory before
	// fsm.db commits them (with an fsync), and FSMCommitEntries how many Raft entries a
	// commit may wait for: whichever comes first. The Raft log, fsynced before any write
	// is answered, is what makes a write durable; after a crash the node replays the
	// log from fsm.db's last commit (persistence/doc.go). 0 commits every Raft batch.
	FSMCommitInterval time.Duration
	FSMCommitEntries  uint64

	// PprofAddr serves Go's profiling endpoints on a loopback address; empty: off.
	PprofAddr string
	// MemoryLimit is the Go runtime's soft memory limit in bytes (runtime/debug
	// SetMemoryLimit): past it the collector runs more often instead of letting the
	// heap grow to twice its live size. 0 leaves the runtime as started, which honours
	// GOMEMLIMIT and GOGC from the environment.
	MemoryLimit int64
	// GRPC is the Nacos 2.x gRPC front.
	GRPC GRPCConfig
	// HealthCheck is the active checking of persistent instances.
	HealthCheck HealthCheckConfig
	// Auth is access control of the client ports.
	Auth AuthConfig
	// Security is the node credential and client-port TLS.
	Security SecurityConfig

	// Console serves the web console at / and /console/ on the HTTP port.
	Console bool

	// Version is reported by the API and in the start line.
	Version string

	// Test holds the chaos suite's fault-injection hooks; zero in production.
	Test TestConfig
}

// DefaultConfig is the embedded default: a single node on loopback with Nacos' ports,
// data in ./roster-data.
func DefaultConfig() Config {
	return Config{
		HTTPAddr:            "127.0.0.1:8848",
		RaftAddr:            "127.0.0.1:7848",
		DataDir:             "./roster-data",
		HeartbeatInterval:   5 * time.Second,
		HeartbeatTimeout:    15 * time.Second,
		IPDeleteTimeout:     30 * time.Second,
		ExpiryCheckInterval: 500 * time.Millisecond,
		ElectionTimeout:     time.Second,
		ApplyTimeout:        10 * time.Second,
		LogLevel:            "info",
		LogFormat:           "text",
		MaxBody:             1 << 20,
		MaxSnapshotSize:     1 << 30,
		MaxMetadata:         naming.DefaultMaxMetadata,
		HoldTimeout:         5 * time.Second,
		ForwardTimeout:      12 * time.Second,
		SnapshotThreshold:   8192,
		SnapshotInterval:    5 * time.Second,
		TrailingLogs:        10240,
		FSMCommitInterval:   100 * time.Millisecond,
		FSMCommitEntries:    10_000,
		GRPC:                defaultGRPCConfig(),
		HealthCheck:         defaultHealthCheckConfig(),
		Auth:                defaultAuthConfig(),
		Security:            defaultSecurityConfig(),
		Console:             true,
		Version:             "dev",
	}
}

// httpAddr is the address the HTTP port binds: the pre-bound listener's when given.
func (c *Config) httpAddr() string {
	if c.HTTPListener != nil {
		return c.HTTPListener.Addr().String()
	}
	return c.HTTPAddr
}

// clustered reports whether the node was told about other members.
func (c *Config) clustered() bool { return c.BootstrapExpect > 0 || len(c.Join) > 0 }

// Validate names the first setting whose value cannot work, by its flag.
func (c *Config) Validate() error {
	bad := func(flag, why string) error { return fmt.Errorf("invalid value for --%s: %s", flag, why) }
	if err := c.Test.validate(); err != nil {
		return err
	}
	if err := checkPprofAddr(c.PprofAddr); err != nil {
		return err
	}
	for _, a := range []struct{ flag, addr string }{{"http-addr", c.httpAddr()}, {"raft-addr", c.RaftAddr}} {
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
	case c.MaxBody <= 0:
		return bad("max-body", "must be positive")
	case c.MemoryLimit < 0:
		return bad("memory-limit", "must not be negative (0 leaves the runtime's limit as GOMEMLIMIT set it)")
	case c.MaxSnapshotSize <= 0:
		return bad("max-snapshot-size", "must be positive")
	case c.MaxMetadata <= 0:
		return bad("max-metadata", "must be positive")
	case c.NamespaceMaxServices < 0:
		return bad("namespace-max-services", "must be 0 (unlimited) or more")
	case c.NamespaceMaxInstances < 0:
		return bad("namespace-max-instances", "must be 0 (unlimited) or more")
	case c.BootstrapExpect < 0 || c.BootstrapExpect > 7:
		return bad("bootstrap-expect", "must be between 0 and 7")
	case c.BootstrapExpect > 0 && len(c.Join) == 0 && c.BootstrapExpect > 1:
		return bad("bootstrap-expect", "needs --join with the other members' HTTP addresses")
	case c.HoldTimeout <= 0:
		return bad("hold-timeout", "must be positive")
	case c.ForwardTimeout <= c.ApplyTimeout:
		return bad("forward-timeout", "must be more than --apply-timeout (the leader waits that long for a commit before it answers)")
	case c.SnapshotThreshold == 0:
		return bad("snapshot-threshold", "must be positive")
	case c.SnapshotInterval <= 0:
		return bad("snapshot-interval", "must be positive")
	case c.FSMCommitInterval < 0 || c.FSMCommitInterval > time.Minute:
		return bad("fsm-commit-interval", "must be in [0, 1m]")
	case c.FSMCommitEntries == 0:
		return bad("fsm-commit-entries", "must be positive")
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
	if err := c.Security.validate(c.clustered()); err != nil {
		return err
	}
	if err := c.HealthCheck.validate(); err != nil {
		return err
	}
	return c.GRPC.validate(c.httpAddr())
}

// NewLogger builds the logger LogLevel and LogFormat describe, writing to w. An invalid
// level (which Validate refuses) logs at info.
func (c *Config) NewLogger(w io.Writer) *slog.Logger {
	level, _ := parseLevel(c.LogLevel)
	opts := &slog.HandlerOptions{Level: level}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func (c *Config) logger() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return c.NewLogger(os.Stderr)
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("want debug, info, warn or error")
	}
	return l, nil
}
