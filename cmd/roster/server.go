package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/roster-registry/roster/server"
)

// serverFlagValues is what `roster server`'s flags set. Most flags write straight into
// the embedded server.Config; --join and --auth keep their text here until config turns
// it into settings, so that their help stays that of a plain string and bool flag.
type serverFlagValues struct {
	server.Config
	join       string
	auth       bool
	configFile string
}

// config is the node's configuration once the flags, ROSTER_ variables and config file
// are applied; given names the flags any of them set.
func (v *serverFlagValues) config(given map[string]bool) server.Config {
	cfg := v.Config
	cfg.Join = splitList(v.join)
	// Without --auth (ROSTER_AUTH, auth in the file) the node decides by where its client
	// ports bind.
	if given["auth"] {
		cfg.Auth.Mode = server.AuthOff
		if v.auth {
			cfg.Auth.Mode = server.AuthOn
		}
	}
	return cfg
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

// byteSizeOrZero is a byteSize that may also be 0, for a setting whose 0 means "unset".
type byteSizeOrZero int64

func (b *byteSizeOrZero) String() string { return strconv.FormatInt(int64(*b), 10) }

func (b *byteSizeOrZero) Set(s string) error {
	if strings.TrimSpace(s) == "0" {
		*b = 0
		return nil
	}
	return (*byteSize)(b).Set(s)
}

// serverFlags defines every flag of `roster server` over v, with server.DefaultConfig's
// values as defaults.
func serverFlags(v *serverFlagValues, stderr io.Writer) *flag.FlagSet {
	v.Config = server.DefaultConfig()
	v.Version = version
	c := &v.Config
	fs := flag.NewFlagSet("roster server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&v.configFile, "config", "", "TOML `file` whose keys are these flags' names; the command line and ROSTER_ variables win over it")
	fs.StringVar(&c.NodeID, "node-id", c.NodeID, "stable node id (default: generated once and kept in the data dir)")
	fs.StringVar(&c.HTTPAddr, "http-addr", c.HTTPAddr, "HTTP listen address (Nacos' port)")
	fs.StringVar(&c.RaftAddr, "raft-addr", c.RaftAddr, "Raft listen address")
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "data directory")
	fs.DurationVar(&c.HeartbeatInterval, "heartbeat-interval", c.HeartbeatInterval, "beat interval told to 1.x clients")
	fs.DurationVar(&c.HeartbeatTimeout, "heartbeat-timeout", c.HeartbeatTimeout, "an ephemeral instance without a beat this long turns unhealthy")
	fs.DurationVar(&c.IPDeleteTimeout, "ip-delete-timeout", c.IPDeleteTimeout, "an ephemeral instance without a beat this long is removed")
	fs.DurationVar(&c.ExpiryCheckInterval, "expiry-check-interval", c.ExpiryCheckInterval, "period of the ephemeral expiry check (at most 1s)")
	fs.DurationVar(&c.ElectionTimeout, "election-timeout", c.ElectionTimeout, "Raft heartbeat and election timeout")
	fs.DurationVar(&c.ApplyTimeout, "apply-timeout", c.ApplyTimeout, "longest wait for a persistent write to commit")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "text or json")
	fs.Var((*byteSize)(&c.MaxBody), "max-body", "largest request body (e.g. 1MiB)")
	fs.Var((*byteSize)(&c.MaxSnapshotSize), "max-snapshot-size", "largest snapshot a restore may upload (e.g. 1GiB)")
	fs.IntVar(&c.MaxMetadata, "max-metadata", c.MaxMetadata, "largest summed length of an instance's metadata keys and values")
	fs.IntVar(&c.NamespaceMaxServices, "namespace-max-services", c.NamespaceMaxServices, "services a namespace may hold unless its record says otherwise (0 = unlimited)")
	fs.IntVar(&c.NamespaceMaxInstances, "namespace-max-instances", c.NamespaceMaxInstances, "instances a namespace may hold unless its record says otherwise (0 = unlimited)")
	fs.IntVar(&c.BootstrapExpect, "bootstrap-expect", c.BootstrapExpect, "form a new cluster once this many nodes with empty data dirs know each other (with --join)")
	fs.StringVar(&v.join, "join", "", "comma-separated HTTP addresses of cluster members to form or join a cluster with")
	fs.DurationVar(&c.HoldTimeout, "hold-timeout", c.HoldTimeout, "how long a write waits for a leader before it fails with 503")
	fs.DurationVar(&c.ForwardTimeout, "forward-timeout", c.ForwardTimeout, "how long a node waits for the leader to answer a write or consistent read it sent on before it answers 503 (more than --apply-timeout)")
	fs.Uint64Var(&c.SnapshotThreshold, "snapshot-threshold", c.SnapshotThreshold, "Raft log entries between snapshots")
	fs.DurationVar(&c.SnapshotInterval, "snapshot-interval", c.SnapshotInterval, "how often to check whether a Raft snapshot is due")
	fs.Uint64Var(&c.TrailingLogs, "trailing-logs", c.TrailingLogs, "Raft log entries kept after a snapshot")
	fs.DurationVar(&c.FSMCommitInterval, "fsm-commit-interval", c.FSMCommitInterval, "longest time applied writes wait in memory before fsm.db commits them (0: commit every Raft batch)")
	fs.Uint64Var(&c.FSMCommitEntries, "fsm-commit-entries", c.FSMCommitEntries, "most Raft entries fsm.db batches into one commit")

	fs.StringVar(&c.GRPC.Addr, "grpc-addr", c.GRPC.Addr, "gRPC listen address for Nacos 2.x clients (default: the HTTP host, port + 1000)")
	fs.DurationVar(&c.GRPC.DetectIdle, "grpc-detect-idle", c.GRPC.DetectIdle, "a gRPC connection silent this long is probed with ClientDetectionRequest")
	fs.DurationVar(&c.GRPC.DetectTimeout, "grpc-detect-timeout", c.GRPC.DetectTimeout, "a probed gRPC connection that does not answer within this is dropped with its instances")
	fs.DurationVar(&c.GRPC.PushTimeout, "grpc-push-timeout", c.GRPC.PushTimeout, "a push not acked within this is sent once more")
	fs.DurationVar(&c.GRPC.PushDelay, "grpc-push-delay", c.GRPC.PushDelay, "changes to one service within this are pushed to gRPC subscribers as one push")
	fs.IntVar(&c.GRPC.MaxConnections, "grpc-max-connections", c.GRPC.MaxConnections, "most gRPC client connections held at once")

	fs.StringVar(&c.HealthCheck.CIDRs, "health-check-cidrs", c.HealthCheck.CIDRs, "comma-separated prefixes a health probe may dial; persistent instances outside are not probed")
	fs.DurationVar(&c.HealthCheck.Interval, "health-check-interval", c.HealthCheck.Interval, "pause between health-check rounds (plus up to --health-check-jitter)")
	fs.DurationVar(&c.HealthCheck.Jitter, "health-check-jitter", c.HealthCheck.Jitter, "largest random addition to --health-check-interval")
	fs.DurationVar(&c.HealthCheck.Timeout, "health-check-timeout", c.HealthCheck.Timeout, "longest wait for one health probe")
	fs.IntVar(&c.HealthCheck.CheckTimes, "health-check-times", c.HealthCheck.CheckTimes, "results in a row that flip a persistent instance's health (Nacos' checkTimes)")
	fs.IntVar(&c.HealthCheck.Workers, "health-check-workers", c.HealthCheck.Workers, "most health probes in flight")

	fs.BoolVar(&v.auth, "auth", false, "check every client request's credentials and permissions (default: on when a client port binds beyond loopback)")
	fs.BoolVar(&c.Auth.Insecure, "insecure", c.Auth.Insecure, "allow client ports beyond loopback without auth (logged at start and every hour, and shown as roster_auth_enabled 0)")
	fs.DurationVar(&c.Auth.TokenTTL, "token-ttl", c.Auth.TokenTTL, "lifetime of access tokens issued by login (at most 24h)")

	fs.StringVar(&c.Security.TLSCert, "tls-cert", c.Security.TLSCert, "PEM certificate of this node; with --tls-key and --tls-ca nodes authenticate one another by mutual TLS and the client ports serve TLS")
	fs.StringVar(&c.Security.TLSKey, "tls-key", c.Security.TLSKey, "PEM private key of --tls-cert")
	fs.StringVar(&c.Security.TLSCA, "tls-ca", c.Security.TLSCA, "PEM CA that signed every member's certificate (a CA for this cluster alone)")
	fs.StringVar(&c.Security.ClusterKeyFile, "cluster-key-file", c.Security.ClusterKeyFile, "file with the key every member shares (at least 32 bytes, mode 600), when no certificates are given")
	fs.BoolVar(&c.Security.ClientTLS, "client-tls", c.Security.ClientTLS, "with --tls-cert: serve the HTTP and gRPC client ports over TLS (false keeps them plain for clients; members still use mutual TLS)")

	// Go's profiling endpoints on their own listener, off unless given, and only on a
	// loopback address (they expose the process's internals).
	fs.BoolVar(&c.Console, "console", c.Console, "serve the web console at / and /console/ on the HTTP port")
	fs.StringVar(&c.PprofAddr, "pprof-addr", c.PprofAddr, "serve /debug/pprof/ on this loopback address (e.g. 127.0.0.1:6060); off when empty")
	fs.Var((*byteSizeOrZero)(&c.MemoryLimit), "memory-limit", "Go's soft memory limit (e.g. 512MiB): the collector runs more often near it; 0 leaves GOMEMLIMIT from the environment in force")

	// Fault-injection hooks of the chaos suite (chaos/README.md); never for production.
	fs.Func("test-peer-proxy", "test only: comma-separated member-addr=proxy-addr pairs (loopback); every node-to-node connection to the member dials the proxy", func(v string) error {
		m, err := server.ParsePeerProxy(v)
		c.Test.PeerProxy = m
		return err
	})
	fs.StringVar(&c.Test.ClockOffsetFile, "test-clock-offset-file", c.Test.ClockOffsetFile, "test only: file with a duration (e.g. 5m) this node's wall clock is shifted by, re-read every 100ms")
	return fs
}

// settle applies, below the parsed command line, the ROSTER_ variables and then the
// config file (--config or ROSTER_CONFIG), and returns the names of the flags any of
// them set: flags > ROSTER_* > file > defaults. configFile is read only after the
// variables are applied, so that ROSTER_CONFIG names the file too.
func settle(fs *flag.FlagSet, configFile *string) (map[string]bool, error) {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	if err := applyEnv(fs, given); err != nil {
		return nil, err
	}
	if *configFile != "" {
		if err := applyConfigFile(fs, *configFile, given); err != nil {
			return nil, err
		}
	}
	return given, nil
}

// applyEnv fills every flag not in given from ROSTER_<FLAG> and adds it to given.
func applyEnv(fs *flag.FlagSet, given map[string]bool) error {
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || err != nil {
			return
		}
		env := "ROSTER_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok {
			if e := f.Value.Set(v); e != nil {
				err = fmt.Errorf("invalid value %q for %s (--%s): %v", v, env, f.Name, e)
				return
			}
			given[f.Name] = true
		}
	})
	return err
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

// runServer runs one node until ctx is cancelled (SIGTERM or SIGINT) or its HTTP port
// fails. Exit status: 2 for a setting that cannot work, 1 for a node that cannot start
// or stopped serving, 0 for a stop on a signal.
func runServer(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var flags serverFlagValues
	fs := serverFlags(&flags, stderr)
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
	given, err := settle(fs, &flags.configFile)
	if err != nil {
		fmt.Fprintf(stderr, "roster server: %v\n", err)
		return 2
	}
	cfg := flags.config(given)
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "roster server: %v\n", err)
		return 2
	}
	cfg.Logger = cfg.NewLogger(stderr)
	srv, err := server.New(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "roster server: %v\n", err)
		return 1
	}
	srv.Start()
	stopNotify := notifySystemd(srv.Ready(), cfg.Logger)
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-srv.Err():
	}
	stopNotify()
	// What fails while stopping (closing raft.db or fsm.db) comes after every answer
	// was given and has never changed the exit status of a node stopped on a signal.
	_ = srv.Close()
	if serveErr != nil {
		fmt.Fprintf(stderr, "roster server: %v\n", serveErr)
		return 1
	}
	return 0
}

// notifySystemd speaks sd_notify to a service manager that asked for it (NOTIFY_SOCKET,
// as systemd sets for Type=notify; without it every call is a no-op): READY=1 once the
// node is ready, exactly when /readyz turns 200, so that units ordered After= it start
// against a node that answers. The returned stop sends STOPPING=1, after READY=1 if that
// was sent, and is called as the node begins to shut down.
func notifySystemd(ready <-chan struct{}, log *slog.Logger) (stop func()) {
	notify := func(state string) {
		if _, err := daemon.SdNotify(false, state); err != nil {
			log.Warn("sd_notify failed", "state", state, "err", err)
		}
	}
	done := make(chan struct{})
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		select {
		case <-ready:
			notify(daemon.SdNotifyReady)
		case <-done:
		}
	}()
	return func() {
		close(done)
		<-sent
		notify(daemon.SdNotifyStopping)
	}
}
