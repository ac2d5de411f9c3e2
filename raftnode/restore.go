package raftnode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

// DefaultRestoreTimeout is what Restore hands raft as its timeout when ctx has no
// deadline.
const DefaultRestoreTimeout = 10 * time.Minute

// keyCurrentTerm is the stable-store key under which raft keeps its current term
// (raft.go keyCurrentTerm).
var keyCurrentTerm = []byte("CurrentTerm")

// Restore installs a snapshot of the FSM's own format (r, size bytes) as the state of
// the whole cluster, through hashicorp/raft's user restore (Raft.Restore, as Consul's
// snapshot restore does). It must run on the leader. index is the Raft index the data
// reflects, as recorded in the snapshot (it may come from another cluster).
//
// What raft does, in order, on its leader loop: it answers every entry appended but not
// yet committed with ErrAbortedByRestore (translated to ErrUnknownOutcome; such an entry
// is never applied after the restore); copies r into a new local snapshot at index
// S = max(last log index, index) + 1 and the current term; restores the FSM from it
// (entries committed before are applied first, then replaced); leaves a hole in the log
// at S so that followers are sent the snapshot; and commits a no-op after it. Restore
// returns once that no-op is committed, so on success the restored state is durable on
// the leader and on a quorum (a follower cannot accept entries after the hole without
// installing the snapshot). Entries proposed while the restore runs get indexes above S
// and apply on top of the restored state.
//
// Passing the snapshot's own index keeps S above it. An FSM that skips entries at or
// below the index it restored (as Roster's does) therefore never skips a new entry, even
// when the snapshot comes from a cluster whose log was longer than this one's. After the
// restore that FSM's index (index) is below S until the next entry is applied; a restart
// in between restores the FSM from snapshot S again (chooseSnapshotRestore), which is
// correct, only slower.
//
// Restore returns only after raft has answered, so r is no longer read once it returns.
// ctx's deadline (default DefaultRestoreTimeout) is passed to raft, where it bounds
// handing the restore to the leader loop and the no-op after it; the copy and the FSM
// restore themselves are not interruptible.
//
// Errors: ErrNotLeader (nothing changed); ErrNoLeader for a restore raft refused for now,
// such as during a configuration change (nothing changed, retry later);
// ErrUnknownOutcome when raft stopped answering, lost leadership or timed out after the
// restore may have been taken (the state may or may not be the snapshot's; read it
// back). If the FSM fails to restore a snapshot raft has already stored, raft panics:
// the node must not go on with a state that matches neither side.
func (n *Node) Restore(ctx context.Context, r io.Reader, size int64, index uint64) error {
	if err := n.checkOpen("restore"); err != nil {
		return err
	}
	if !n.IsLeader() {
		return fmt.Errorf("%w: restore", ErrNotLeader)
	}
	timeout := DefaultRestoreTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	if timeout <= 0 {
		// raft treats a zero timeout as "wait forever"; never hand it one.
		return fmt.Errorf("raftnode: restore: %w", context.DeadlineExceeded)
	}
	meta := &raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Index: index, Size: size}
	start := time.Now()
	err := n.raft.Restore(meta, r, timeout)
	if err != nil {
		return restoreError(err)
	}
	st := n.Stats()
	n.logger.Info("restored user snapshot", "snapshot_index", index, "raft_snapshot_index", st.LastSnapshotIndex,
		"bytes", size, "duration", time.Since(start))
	return nil
}

func restoreError(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader):
		return fmt.Errorf("%w: restore: %w", ErrNotLeader, err)
	case errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return fmt.Errorf("%w: restore: %w", ErrNoLeader, err)
	case errors.Is(err, raft.ErrEnqueueTimeout), errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrRaftShutdown):
		// The timeout and shutdown may strike before the restore was taken or while the
		// no-op after it was enqueued; raft's errors do not say which.
		return fmt.Errorf("%w: restore: %w", ErrUnknownOutcome, err)
	default:
		// Refused before anything changed: a pending configuration change, or the copy
		// into the snapshot store failed.
		// raft's "cannot restore snapshot now, wait until the configuration entry at N
		// has been applied" (restoreUserSnapshot) has no sentinel.
		if strings.HasPrefix(err.Error(), "cannot restore snapshot now") {
			return fmt.Errorf("%w: restore: %w", ErrNoLeader, err)
		}
		return fmt.Errorf("raftnode: restore: %w", err)
	}
}

// Seed writes the Raft state of a node that has never run, so that it starts from a
// snapshot instead of bootstrapping an empty log: raft.db holding term as the current
// term, and one file snapshot at (index, term) with the FSM's stream (r, size bytes) and
// a configuration of one voter, (nodeID, raftAddr). dataDir is what Config.DataDir will
// be; it must hold no Raft state yet.
//
// This is the Raft half of an offline restore. Raft starts with its last index at the
// snapshot's, so the first new entry is index+1: an FSM already holding the same data
// with applied index = index (the FSM half, built beside this) takes it, and Raft skips
// the restore at start (NoSnapshotRestoreOnStart, chooseSnapshotRestore); an FSM with no
// data is restored from the snapshot. Starting the log at 1 instead would make such an
// FSM skip every new entry up to index. The current term is set to term so that new
// entries never carry a term below the snapshot's: a log whose terms went back would
// compare as older than a peer holding only the snapshot. index and term must be
// positive.
func Seed(dataDir, nodeID, raftAddr string, index, term uint64, r io.Reader, size int64) error {
	if nodeID == "" || raftAddr == "" {
		return errors.New("raftnode: seed: node id and raft address are required")
	}
	if index == 0 || term == 0 {
		return fmt.Errorf("raftnode: seed: index and term must be positive (got %d, %d)", index, term)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("raftnode: seed: create %s: %w", dataDir, err)
	}
	dbPath := filepath.Join(dataDir, raftDBName)
	if _, err := os.Stat(dbPath); err == nil {
		return fmt.Errorf("raftnode: seed: %s already exists", dbPath)
	}
	snapDir := filepath.Join(dataDir, snapshotsDir)
	if entries, err := os.ReadDir(snapDir); err == nil && len(entries) > 0 {
		return fmt.Errorf("raftnode: seed: %s already holds snapshots", snapDir)
	}

	store, err := raftboltdb.New(raftboltdb.Options{
		Path:        dbPath,
		BoltOptions: &bbolt.Options{Timeout: boltOpenTimeout},
		NoSync:      false,
	})
	if err != nil {
		return fmt.Errorf("raftnode: seed: open %s: %w", dbPath, err)
	}
	if err := store.SetUint64(keyCurrentTerm, term); err != nil {
		_ = store.Close()
		return fmt.Errorf("raftnode: seed: write current term to %s: %w", dbPath, err)
	}
	if err := store.Close(); err != nil {
		return fmt.Errorf("raftnode: seed: close %s: %w", dbPath, err)
	}

	snaps, err := raft.NewFileSnapshotStoreWithLogger(dataDir, DefaultRetainSnapshots, hclog.NewNullLogger())
	if err != nil {
		return fmt.Errorf("raftnode: seed: snapshot store in %s: %w", snapDir, err)
	}
	// The transport only encodes the peer list of the legacy snapshot field; nothing is
	// dialled.
	_, trans := raft.NewInmemTransport(raft.ServerAddress(raftAddr))
	defer trans.Close()
	conf := raft.Configuration{Servers: []raft.Server{{
		Suffrage: raft.Voter, ID: raft.ServerID(nodeID), Address: raft.ServerAddress(raftAddr),
	}}}
	sink, err := snaps.Create(raft.SnapshotVersionMax, index, term, conf, index, trans)
	if err != nil {
		return fmt.Errorf("raftnode: seed: create snapshot in %s: %w", snapDir, err)
	}
	n, err := io.Copy(sink, r)
	if err == nil && n != size {
		err = fmt.Errorf("wrote %d bytes, want %d", n, size)
	}
	if err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("raftnode: seed: write snapshot in %s: %w", snapDir, err)
	}
	// Close fsyncs the state and meta files, renames the directory into place and
	// fsyncs the parent.
	if err := sink.Close(); err != nil {
		return fmt.Errorf("raftnode: seed: close snapshot in %s: %w", snapDir, err)
	}
	return nil
}
