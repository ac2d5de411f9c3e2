// Package raftnode wires hashicorp/raft for Roster: a TCP transport, raft-boltdb/v2 as log
// and stable store behind a log cache, a file snapshot store, bootstrap, and an Apply that
// translates Raft's errors into three outcomes callers can act on: not the leader (retry
// elsewhere), no leader (retry later) and unknown outcome (the write may or may not have
// been committed).
//
// The package takes any raft.FSM and does not know Roster's commands. An FSM that keeps
// its own durable state tells New its applied index through Config.FSMAppliedIndex so a
// restart skips the snapshot restore when the FSM is already at or past the newest
// snapshot.
package raftnode

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/roster-registry/roster/nodeauth"
)

// Defaults for the fields of Config whose zero value means "pick one".
const (
	DefaultApplyTimeout    = 10 * time.Second
	DefaultRetainSnapshots = 2

	// logCacheSize is how many recent log entries are kept in memory, so followers
	// being replicated to and the FSM apply path rarely read raft.db (Nomad's value).
	logCacheSize = 512
	// maxAppendEntries bounds both the AppendEntries batch and, with BatchApplyCh, the
	// group commit: up to this many concurrent Applies share one disk write and reach a
	// BatchingFSM as one batch.
	maxAppendEntries = 512
	// Transport connection pool per peer and I/O timeout (Nomad's values).
	transportMaxPool = 3
	transportTimeout = 10 * time.Second
	// boltOpenTimeout bounds the wait for raft.db's file lock, so a second process on the
	// same data dir fails fast instead of hanging.
	boltOpenTimeout = time.Second

	raftDBName = "raft.db"
)

// Config configures a Node. Zero values take the documented defaults.
type Config struct {
	// NodeID is this server's Raft ID; it must stay the same across restarts. Required.
	NodeID string
	// RaftAddr is the TCP address the transport binds, e.g. 127.0.0.1:7848. Port 0 picks
	// a free port (see Node.Addr). Required.
	RaftAddr string
	// AdvertiseAddr is the address other servers dial; default RaftAddr's bound address.
	// Required when RaftAddr binds an unspecified IP (0.0.0.0).
	AdvertiseAddr string
	// DataDir holds raft.db (log and stable store) and snapshots/. Created if missing.
	DataDir string
	// Bootstrap makes a single-voter configuration of this node when DataDir has no Raft
	// state yet. Ignored when there is existing state.
	Bootstrap bool
	// Solo asks for fast elections because this node is the only voter of its
	// configuration (a single-node deployment; the caller knows, raftnode only checks
	// the newest snapshot): it is leader within milliseconds of a start. Such a node
	// refuses AddVoter (ErrSolo) until restarted without Solo.
	Solo bool

	// Raft timing; 0 takes raft.DefaultConfig's value. When only one of HeartbeatTimeout
	// and ElectionTimeout is set, the other takes the same value (raft's defaults keep
	// them equal); a zero LeaderLeaseTimeout is half the heartbeat timeout (as in raft's
	// defaults), so setting only the election timeout yields a valid configuration.
	HeartbeatTimeout, ElectionTimeout, LeaderLeaseTimeout, CommitTimeout time.Duration

	// Snapshot and compaction policy; 0 takes raft.DefaultConfig's value.
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	TrailingLogs      uint64
	// RetainSnapshots is how many snapshots to keep on disk; default 2.
	RetainSnapshots int

	// ApplyTimeout bounds Apply, Barrier and VerifyLeader when the context allows longer;
	// default 10s.
	ApplyTimeout time.Duration

	// FSMAppliedIndex lets raftnode set NoSnapshotRestoreOnStart only when the on-disk FSM
	// is at or past the newest snapshot's index (else restore from the snapshot). Nil
	// means the FSM keeps no state across restarts (always restore).
	FSMAppliedIndex func() uint64

	// Logger receives raft's logs with component=raft. Nil discards them.
	Logger *slog.Logger

	// Credential guards the Raft port: a connection is handed to Raft only after it
	// proved the cluster's credential, and this node proves it on every dial. Nil gives
	// the node a random key of its own: it runs alone and accepts no peer.
	Credential *nodeauth.Credential
}

// Server is one member of the Raft configuration.
type Server struct {
	ID      string
	Address string
	Voter   bool
}

// Stats is a numeric view of the node's Raft state.
type Stats struct {
	State             string // Follower, Candidate, Leader or Shutdown
	Term              uint64
	CommitIndex       uint64
	AppliedIndex      uint64
	LastLogIndex      uint64
	LastSnapshotIndex uint64
}

// Node is a running Raft server. Its methods are safe for concurrent use.
type Node struct {
	id           string
	raft         *raft.Raft
	trans        *guardedTransport
	store        *raftboltdb.BoltStore
	dbPath       string
	logCount     *countingLogs
	snaps        *raft.FileSnapshotStore
	logger       *slog.Logger
	applyTimeout time.Duration

	// solo is set when the node started as the only voter and runs on soloTimeout.
	solo bool
	// reads backs ConsistentRead.
	reads readRounds

	observer *raft.Observer
	leaderCh chan bool // capacity 1; holds the newest leadership state

	mu      sync.Mutex
	changed chan struct{} // closed and replaced whenever leadership state may have changed

	closingCh    chan struct{} // closed when Shutdown begins
	stopCh       chan struct{} // closed by Shutdown after raft has stopped
	wg           sync.WaitGroup
	shutdownOnce sync.Once
	shutdownErr  error
}

// buildRaftConfig turns cfg into a validated raft.Config.
func buildRaftConfig(cfg Config, logger *slogAdapter) (*raft.Config, error) {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	rc.Logger = logger

	hb, el := cfg.HeartbeatTimeout, cfg.ElectionTimeout
	switch {
	case hb == 0 && el != 0:
		hb = el
	case el == 0 && hb != 0:
		el = hb
	case hb == 0 && el == 0:
		hb, el = rc.HeartbeatTimeout, rc.ElectionTimeout
	}
	rc.HeartbeatTimeout, rc.ElectionTimeout = hb, el
	rc.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	if rc.LeaderLeaseTimeout == 0 {
		rc.LeaderLeaseTimeout = hb / 2
	}
	if cfg.CommitTimeout != 0 {
		rc.CommitTimeout = cfg.CommitTimeout
	}
	if cfg.SnapshotThreshold != 0 {
		rc.SnapshotThreshold = cfg.SnapshotThreshold
	}
	if cfg.SnapshotInterval != 0 {
		rc.SnapshotInterval = cfg.SnapshotInterval
	}
	if cfg.TrailingLogs != 0 {
		rc.TrailingLogs = cfg.TrailingLogs
	}
	rc.BatchApplyCh = true
	rc.MaxAppendEntries = maxAppendEntries

	if err := raft.ValidateConfig(rc); err != nil {
		return nil, fmt.Errorf("raftnode: invalid raft configuration: %w", err)
	}
	return rc, nil
}

// New opens the stores in cfg.DataDir, binds the transport, bootstraps when asked and
// there is no state, and starts Raft. It follows Nomad's setupRaft order: the bolt store
// (which takes the data dir's lock) is opened before anything binds a port.
func New(cfg Config, fsm raft.FSM) (*Node, error) {
	if cfg.NodeID == "" {
		return nil, errors.New("raftnode: NodeID is required")
	}
	if cfg.RaftAddr == "" {
		return nil, errors.New("raftnode: RaftAddr is required")
	}
	if cfg.DataDir == "" {
		return nil, errors.New("raftnode: DataDir is required")
	}
	if fsm == nil {
		return nil, errors.New("raftnode: fsm is required")
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "raftnode")
	hlog := newHCLogger(cfg.Logger)

	rc, err := buildRaftConfig(cfg, hlog)
	if err != nil {
		return nil, err
	}
	applyTimeout := cfg.ApplyTimeout
	if applyTimeout <= 0 {
		applyTimeout = DefaultApplyTimeout
	}
	retain := cfg.RetainSnapshots
	if retain <= 0 {
		retain = DefaultRetainSnapshots
	}

	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("raftnode: create data dir %s: %w", cfg.DataDir, err)
	}
	// Refuse damaged raft.db and snapshot files with an error naming them (check.go).
	if err := checkFiles(cfg.DataDir); err != nil {
		return nil, err
	}

	// Log and stable store. NoSync stays false: an acknowledged entry must be on disk.
	dbPath := filepath.Join(cfg.DataDir, raftDBName)
	store, err := raftboltdb.New(raftboltdb.Options{
		Path:        dbPath,
		BoltOptions: &bbolt.Options{Timeout: boltOpenTimeout},
		NoSync:      false,
	})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("raftnode: open %s: file is locked by another process (or another node in this process): %w", dbPath, err)
		}
		return nil, fmt.Errorf("raftnode: open %s: %w", dbPath, err)
	}
	closers := []func() error{store.Close}
	fail := func(err error) (*Node, error) {
		for i := len(closers) - 1; i >= 0; i-- {
			_ = closers[i]()
		}
		return nil, err
	}

	counted := &countingLogs{LogStore: store, appended: make(chan struct{}, 1)}
	logs, err := raft.NewLogCache(logCacheSize, counted)
	if err != nil {
		return fail(fmt.Errorf("raftnode: log cache: %w", err))
	}

	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.DataDir, retain, hlog.Named("snapshot"))
	if err != nil {
		return fail(fmt.Errorf("raftnode: snapshot store in %s: %w", filepath.Join(cfg.DataDir, "snapshots"), err))
	}

	netTrans, err := newTransport(cfg, hlog, logger)
	if err != nil {
		return fail(err)
	}
	trans := newGuardedTransport(netTrans)
	closers = append(closers, func() error { trans.fence(); return trans.Close() })

	existing, err := raft.HasExistingState(logs, store, snaps)
	if err != nil {
		return fail(fmt.Errorf("raftnode: read existing state in %s: %w", cfg.DataDir, err))
	}
	if cfg.FSMAppliedIndex != nil {
		if err := checkFSMIndex(dbPath, logs, snaps, cfg.FSMAppliedIndex()); err != nil {
			return fail(err)
		}
	}
	if !existing && cfg.Bootstrap {
		conf := raft.Configuration{Servers: []raft.Server{{
			Suffrage: raft.Voter,
			ID:       rc.LocalID,
			Address:  trans.LocalAddr(),
		}}}
		if err := raft.BootstrapCluster(rc, logs, store, snaps, trans, conf); err != nil {
			return fail(fmt.Errorf("raftnode: bootstrap in %s: %w", cfg.DataDir, err))
		}
		logger.Info("bootstrapped single-voter cluster", "id", cfg.NodeID, "address", string(trans.LocalAddr()))
	}

	// A lone voter elects itself at once instead of after a full election timeout.
	solo := cfg.Solo && !snapshotHasOthers(rc.LocalID, snaps) && rc.HeartbeatTimeout > soloTimeout
	if solo {
		rc.HeartbeatTimeout, rc.ElectionTimeout = soloTimeout, soloTimeout
		if rc.LeaderLeaseTimeout > soloTimeout {
			rc.LeaderLeaseTimeout = soloTimeout
		}
	}

	fsmApplied, err := chooseSnapshotRestore(rc, snaps, cfg.FSMAppliedIndex, logger)
	if err != nil {
		return fail(fmt.Errorf("raftnode: list snapshots in %s: %w", filepath.Join(cfg.DataDir, "snapshots"), err))
	}

	r, err := raft.NewRaft(rc, fsm, logs, store, snaps, trans)
	if err != nil {
		return fail(fmt.Errorf("raftnode: start raft in %s: %w", cfg.DataDir, err))
	}
	if last := r.LastIndex(); fsmApplied > last {
		// The FSM claims entries this log has never seen (e.g. raft.db was replaced). It will
		// skip new entries up to its index, which diverges from the other servers.
		logger.Warn("FSM applied index is past the end of the raft log",
			"fsm_applied_index", fsmApplied, "last_log_index", last, "raft_db", dbPath)
	}

	n := &Node{
		id:           cfg.NodeID,
		raft:         r,
		trans:        trans,
		store:        store,
		dbPath:       dbPath,
		logCount:     counted,
		snaps:        snaps,
		logger:       logger,
		applyTimeout: applyTimeout,
		solo:         solo,
		leaderCh:     make(chan bool, 1),
		changed:      make(chan struct{}),
		closingCh:    make(chan struct{}),
		stopCh:       make(chan struct{}),
	}
	n.startObserver()
	return n, nil
}

// newTransport binds the Raft port behind the node credential: Raft reads nothing from
// a connection that has not passed the handshake.
func newTransport(cfg Config, hlog *slogAdapter, logger *slog.Logger) (*raft.NetworkTransport, error) {
	var advertise net.Addr
	if cfg.AdvertiseAddr != "" {
		a, err := net.ResolveTCPAddr("tcp", cfg.AdvertiseAddr)
		if err != nil {
			return nil, fmt.Errorf("raftnode: advertise address %q: %w", cfg.AdvertiseAddr, err)
		}
		advertise = a
	}
	ln, err := net.Listen("tcp", cfg.RaftAddr)
	if err != nil {
		return nil, fmt.Errorf("raftnode: raft transport on %s: %w", cfg.RaftAddr, err)
	}
	addr := advertise
	if addr == nil {
		addr = ln.Addr()
	}
	if ta, ok := addr.(*net.TCPAddr); !ok || ta.IP == nil || ta.IP.IsUnspecified() {
		ln.Close()
		return nil, fmt.Errorf("raftnode: raft address %s cannot be dialled by peers; set an advertise address", addr)
	}
	cred := cfg.Credential
	if cred == nil {
		cred = nodeauth.Ephemeral()
	}
	stream := cred.NewStreamLayer(ln, advertise, logger)
	return raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  stream,
		MaxPool: transportMaxPool,
		Timeout: transportTimeout,
		Logger:  hlog.Named("net"),
	}), nil
}

// chooseSnapshotRestore sets rc.NoSnapshotRestoreOnStart when the FSM's own durable state
// is at or past the newest snapshot. With the flag set, NewRaft does not call FSM.Restore
// but still sets its applied index to the snapshot's, so it replays only the entries after
// the snapshot; the FSM skips those at or below its own applied index. Without the flag
// the snapshot replaces the FSM's state, which is required when the FSM is behind: entries
// up to the snapshot index may already be compacted out of the log.
func chooseSnapshotRestore(rc *raft.Config, snaps raft.SnapshotStore, appliedFn func() uint64, logger *slog.Logger) (uint64, error) {
	list, err := snaps.List()
	if err != nil {
		return 0, err
	}
	var applied uint64
	if appliedFn != nil {
		applied = appliedFn()
	}
	if len(list) == 0 {
		logger.Info("no raft snapshot; entries after the FSM's applied index will be replayed",
			"fsm_applied_index", applied)
		return applied, nil
	}
	newest := list[0] // List returns newest first
	if appliedFn != nil && applied >= newest.Index {
		rc.NoSnapshotRestoreOnStart = true
		logger.Info("FSM is at or past the newest snapshot; skipping snapshot restore",
			"fsm_applied_index", applied, "snapshot_index", newest.Index, "snapshot_id", newest.ID)
	} else {
		logger.Info("FSM is behind the newest snapshot; restoring it",
			"fsm_applied_index", applied, "snapshot_index", newest.Index, "snapshot_id", newest.ID)
	}
	return applied, nil
}

// ID returns this node's Raft ID.
func (n *Node) ID() string { return n.id }

// Addr returns the transport's advertised address (the bound port when RaftAddr used 0).
func (n *Node) Addr() string { return string(n.trans.LocalAddr()) }

// IsLeader reports whether this node currently believes it is the leader. Use
// VerifyLeader to confirm it with a quorum.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// Leader returns the current leader's ID and Raft address, or empty strings when unknown.
func (n *Node) Leader() (id, raftAddr string) {
	addr, lid := n.raft.LeaderWithID()
	return string(lid), string(addr)
}

// Stats returns the node's Raft indexes and state.
func (n *Node) Stats() Stats {
	st := Stats{
		State:        n.raft.State().String(),
		Term:         n.raft.CurrentTerm(),
		CommitIndex:  n.raft.CommitIndex(),
		AppliedIndex: n.raft.AppliedIndex(),
		LastLogIndex: n.raft.LastIndex(),
	}
	// The last snapshot index has no accessor of its own; Stats() reports it as text.
	if v, err := strconv.ParseUint(n.raft.Stats()["last_snapshot_index"], 10, 64); err == nil {
		st.LastSnapshotIndex = v
	}
	return st
}

// Snapshot asks Raft to take a snapshot now and returns its index. It fails with
// raft.ErrNothingNewToSnapshot when nothing was applied since the last one.
func (n *Node) Snapshot() (uint64, error) {
	f := n.raft.Snapshot()
	if err := f.Error(); err != nil {
		return 0, fmt.Errorf("raftnode: snapshot: %w", err)
	}
	meta, rc, err := f.Open()
	if err != nil {
		return 0, fmt.Errorf("raftnode: open new snapshot: %w", err)
	}
	_ = rc.Close()
	return meta.Index, nil
}

// stopSnapshotMin is how many entries past the last snapshot make a graceful stop take
// one: the next start then replays (and scans) only what came after it, so restart
// time does not grow with the history written since the last periodic snapshot.
const stopSnapshotMin = 1024

func (n *Node) snapshotBeforeStop() {
	st := n.Stats()
	if st.LastLogIndex < st.LastSnapshotIndex+stopSnapshotMin {
		return
	}
	if err := n.raft.Snapshot().Error(); err != nil {
		n.logger.Warn("snapshot before stop", "err", err)
		return
	}
	n.logger.Info("took a snapshot before stopping", "entries_since_last", st.LastLogIndex-st.LastSnapshotIndex)
}

// Shutdown stops Raft, closes the transport and the bolt store. It is idempotent and
// safe to call concurrently; every call returns the first call's result.
func (n *Node) Shutdown() error {
	n.shutdownOnce.Do(func() {
		n.snapshotBeforeStop()
		close(n.closingCh)
		// Raft first: it answers its in-flight futures and closes the transport.
		err := n.raft.Shutdown().Error()
		// A heartbeat let in just before the shutdown may still be saving a term.
		n.trans.fence()
		n.raft.DeregisterObserver(n.observer)
		// Only now release waiters on futures raft never answers (entries still in the
		// buffered apply channel at shutdown).
		close(n.stopCh)
		n.wg.Wait()
		n.notifyChanged()
		if terr := n.trans.Close(); terr != nil {
			err = errors.Join(err, fmt.Errorf("raftnode: close transport: %w", terr))
		}
		if serr := n.store.Close(); serr != nil {
			err = errors.Join(err, fmt.Errorf("raftnode: close %s: %w", raftDBName, serr))
		}
		n.shutdownErr = err
	})
	return n.shutdownErr
}
