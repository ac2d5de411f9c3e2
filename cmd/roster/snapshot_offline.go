package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/roster-registry/roster/persistence"
	"github.com/roster-registry/roster/raftnode"
	"github.com/roster-registry/roster/server"
)

// offlineResult is what an offline restore prints with -o json.
type offlineResult struct {
	File     string `json:"file"`
	DataDir  string `json:"dataDir"`
	NodeID   string `json:"nodeId"`
	RaftAddr string `json:"raftAddr"`
	persistence.FileInfo
}

// offlineRestore builds the data dir of a node that is not running from a verified
// snapshot file, so that `roster server --data-dir dataDir` starts with its state.
//
// The dir gets what a running node would have had after applying the snapshot's last
// entry, so neither half needs the other to be right:
//   - fsm.db holds the data with applied index = the snapshot's index H;
//   - raft/ holds a Raft snapshot at index H (and the snapshot's term, also written as
//     the current term) with the same stream and a one-voter configuration of this node
//     (raftnode.Seed), and an empty log.
//
// Raft therefore starts with its last index at H and gives the first new entry H+1,
// which the FSM, at H, applies. Without the Raft snapshot the log would start at 1 and
// the FSM would skip every new entry up to H as already applied; resetting the FSM's
// index to 0 instead would work on one node but leave a Raft history that disagrees
// with the header of every later snapshot. Because the FSM is at the snapshot's index,
// the node skips restoring the Raft snapshot at start (NoSnapshotRestoreOnStart); the
// snapshot is what it sends a follower that joins.
//
// The files are built in a staging directory (beside dataDir when dataDir does not
// exist, inside it when it is an existing empty directory) and moved into place at the
// end; fsm.db and node-id move last, so an interrupted restore never leaves a dir that
// starts with an empty registry. A dir that holds anything is refused.
func offlineRestore(file string, info persistence.FileInfo, dataDir, wantID, raftAddr string) (*offlineResult, error) {
	if err := checkEmptyDataDir(dataDir); err != nil {
		return nil, err
	}
	var staging string
	var err error
	exists := false
	if _, err := os.Stat(dataDir); err == nil {
		exists = true
		staging, err = os.MkdirTemp(dataDir, ".restore-")
		if err != nil {
			return nil, err
		}
	} else {
		parent := filepath.Dir(filepath.Clean(dataDir))
		if err := os.MkdirAll(parent, 0o755); err != nil {
			return nil, err
		}
		staging, err = os.MkdirTemp(parent, "."+filepath.Base(filepath.Clean(dataDir))+".restore-")
		if err != nil {
			return nil, err
		}
	}
	moved := false
	defer func() {
		if !moved {
			_ = os.RemoveAll(staging)
		}
	}()
	if err := os.Chmod(staging, 0o700); err != nil {
		return nil, err
	}

	id, err := server.LoadNodeID(staging, wantID)
	if err != nil {
		return nil, err
	}
	index, term := max(info.Index, 1), max(info.Term, 1)
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := raftnode.Seed(filepath.Join(staging, "raft"), id, raftAddr, index, term, f, info.Size); err != nil {
		return nil, err
	}
	if _, err := f.Seek(0, 0); err != nil {
		return nil, err
	}
	store, err := persistence.Open(filepath.Join(staging, "fsm.db"), persistence.Options{OpenTimeout: time.Second, NodeID: id})
	if err != nil {
		return nil, err
	}
	if err := store.Restore(f); err != nil {
		_ = store.Close()
		return nil, err
	}
	if err := store.Close(); err != nil {
		return nil, err
	}
	if err := syncDir(staging); err != nil {
		return nil, err
	}

	if !exists {
		if err := os.Rename(staging, dataDir); err != nil {
			return nil, err
		}
		moved = true
		if err := syncDir(filepath.Dir(filepath.Clean(dataDir))); err != nil {
			return nil, err
		}
	} else {
		// raft/ alone starts a node that restores its FSM from the Raft snapshot (and
		// waits for its id); fsm.db then lets it skip that; node-id last.
		for _, name := range []string{"raft", "fsm.db", "node-id"} {
			if err := os.Rename(filepath.Join(staging, name), filepath.Join(dataDir, name)); err != nil {
				return nil, err
			}
		}
		moved = true
		_ = os.RemoveAll(staging)
		if err := syncDir(dataDir); err != nil {
			return nil, err
		}
	}
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		abs = dataDir
	}
	return &offlineResult{File: file, DataDir: abs, NodeID: id, RaftAddr: raftAddr, FileInfo: info}, nil
}

// checkEmptyDataDir refuses a data dir that holds anything, naming what it found. A
// running node's dir (locked) always holds its files, so it is refused too.
func checkEmptyDataDir(dir string) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("data dir %s is not a directory", dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	if len(entries) == 0 {
		return nil
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return fmt.Errorf("data dir %s already holds data (%s); an offline restore builds a new data dir for a node that is not running: give a missing or empty dir (to restore a running cluster use --addr)", dir, strings.Join(names, ", "))
}
