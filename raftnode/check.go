package raftnode

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc64"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"

	"github.com/hashicorp/raft"
	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Layout of raft's FileSnapshotStore (file_snapshot.go): one directory per snapshot
// under snapshots/, holding meta.json (with a CRC-64 of the state) and state.bin;
// directories still being written end in .tmp.
const (
	snapshotsDir      = "snapshots"
	snapshotMetaFile  = "meta.json"
	snapshotStateFile = "state.bin"
	snapshotTmpSuffix = ".tmp"
)

// checkFiles refuses a data dir whose Raft files are damaged, with an error naming the
// file, before raft or raft-boltdb reads them. Neither fails cleanly on its own:
//
//   - bbolt can panic or fault on a corrupt or truncated raft.db inside raft-boltdb's
//     Open, where nothing recovers; this check opens it first, recovers such a panic,
//     compares the file's length with the pages its meta page claims, and walks every
//     bucket (all branch and leaf pages), requiring keys in order.
//   - raft's FileSnapshotStore skips a snapshot whose meta.json does not parse, and
//     with NoSnapshotRestoreOnStart never opens (so never checksums) the newest
//     snapshot; a corrupt one would be found only when a follower needs it. This check
//     reads every snapshot in full and compares its length and CRC-64 with meta.json.
//
// What it cannot see: bbolt keeps no checksum of data pages, so a flipped bit inside a
// stored log entry that leaves the page structure intact goes unnoticed here.
func checkFiles(dataDir string) error {
	if err := checkBoltFile(filepath.Join(dataDir, raftDBName)); err != nil {
		return err
	}
	return checkSnapshots(filepath.Join(dataDir, snapshotsDir))
}

// checkBoltFile opens a bbolt file read-write (which loads its freelist, as raft-boltdb's
// open will) and walks it. A file that does not exist, or is empty, is new.
func checkBoltFile(path string) (err error) {
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("raftnode: %w", err)
	}
	if fi.Size() == 0 {
		return nil
	}
	// bbolt hands no handle back when it panics inside Open; keep the file so it can be
	// closed (its mapping stays until the process exits, which it should: this error is
	// fatal at start).
	var file *os.File
	opts := &bbolt.Options{
		Timeout: boltOpenTimeout,
		OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
			f, err := os.OpenFile(name, flag, perm)
			file = f
			return f, err
		},
	}
	var db *bbolt.DB
	defer func() {
		if r := recover(); r != nil {
			if db != nil {
				_ = db.Close()
			} else if file != nil {
				_ = file.Close()
			}
			err = fmt.Errorf("raftnode: %s is corrupt (bbolt: %v)", path, r)
		}
	}()
	// A truncated file can fault when bbolt touches a page past its end; make that a
	// recoverable panic for the duration of the check.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))

	db, err = bbolt.Open(path, 0o600, opts)
	if errors.Is(err, bolterrors.ErrTimeout) {
		return fmt.Errorf("raftnode: open %s: file is locked by another process (or another node in this process): %w", path, err)
	}
	if err != nil {
		return fmt.Errorf("raftnode: %s is corrupt or unreadable: %w", path, err)
	}
	defer func() {
		if cerr := db.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("raftnode: close %s: %w", path, cerr)
		}
	}()
	return db.View(func(tx *bbolt.Tx) error {
		if want := tx.Size(); want > fi.Size() {
			return fmt.Errorf("raftnode: %s is truncated: %d bytes, the database needs %d", path, fi.Size(), want)
		}
		return tx.ForEach(func(name []byte, b *bbolt.Bucket) error {
			if err := walkBucket(b); err != nil {
				return fmt.Errorf("raftnode: %s is corrupt: bucket %q: %w", path, name, err)
			}
			return nil
		})
	})
}

// walkBucket visits every key of b and its nested buckets, requiring strictly
// increasing keys: a page whose elements were damaged reads out of order.
func walkBucket(b *bbolt.Bucket) error {
	var prev []byte
	return b.ForEach(func(k, v []byte) error {
		if prev != nil && bytes.Compare(prev, k) >= 0 {
			return fmt.Errorf("keys out of order (%x after %x)", k, prev)
		}
		prev = append(prev[:0], k...)
		if v == nil {
			nested := b.Bucket(k)
			if nested == nil {
				return fmt.Errorf("key %x has neither a value nor a bucket", k)
			}
			return walkBucket(nested)
		}
		return nil
	})
}

// fileSnapshotMeta is what raft's FileSnapshotStore writes to meta.json.
type fileSnapshotMeta struct {
	raft.SnapshotMeta
	CRC []byte
}

// checkSnapshots verifies the snapshots under dir (see checkFiles): every meta.json must
// parse, and the newest snapshot's state must match its length and CRC-64. Only the
// newest is read in full: it is the one raft skips at start (NoSnapshotRestoreOnStart)
// and would ship to a follower; raft's own Open checks an older one's CRC before it uses
// it. Reading every snapshot would make start-up time grow with their number and size.
func checkSnapshots(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("raftnode: read snapshot directory: %w", err)
	}
	newest, newestMeta := "", fileSnapshotMeta{}
	for _, e := range entries {
		if !e.IsDir() || strings.HasSuffix(e.Name(), snapshotTmpSuffix) {
			continue // raft ignores files and unfinished snapshots, and reaps the latter
		}
		path := filepath.Join(dir, e.Name())
		meta, err := readSnapshotMeta(path)
		if err != nil {
			return err
		}
		if newest == "" || meta.Term > newestMeta.Term || (meta.Term == newestMeta.Term && meta.Index > newestMeta.Index) {
			newest, newestMeta = path, meta
		}
	}
	if newest == "" {
		return nil
	}
	return checkSnapshot(newest)
}

func readSnapshotMeta(dir string) (fileSnapshotMeta, error) {
	var meta fileSnapshotMeta
	metaPath := filepath.Join(dir, snapshotMetaFile)
	b, err := os.ReadFile(metaPath)
	if err != nil {
		return meta, fmt.Errorf("raftnode: raft snapshot %s is unreadable: %w", dir, err)
	}
	if err := json.Unmarshal(b, &meta); err != nil {
		return meta, fmt.Errorf("raftnode: raft snapshot %s is corrupt: %s: %v", dir, metaPath, err)
	}
	return meta, nil
}

func checkSnapshot(dir string) error {
	metaPath := filepath.Join(dir, snapshotMetaFile)
	b, err := os.ReadFile(metaPath)
	if err != nil {
		return fmt.Errorf("raftnode: raft snapshot %s is unreadable: %w", dir, err)
	}
	var meta fileSnapshotMeta
	if err := json.Unmarshal(b, &meta); err != nil {
		return fmt.Errorf("raftnode: raft snapshot %s is corrupt: %s: %v", dir, metaPath, err)
	}
	if meta.Version < raft.SnapshotVersionMin || meta.Version > raft.SnapshotVersionMax {
		return fmt.Errorf("raftnode: raft snapshot %s has unsupported version %d (%s)", dir, meta.Version, metaPath)
	}
	statePath := filepath.Join(dir, snapshotStateFile)
	f, err := os.Open(statePath)
	if err != nil {
		return fmt.Errorf("raftnode: raft snapshot %s is unreadable: %w", dir, err)
	}
	defer f.Close()
	h := crc64.New(crc64.MakeTable(crc64.ECMA))
	n, err := io.Copy(h, f)
	if err != nil {
		return fmt.Errorf("raftnode: raft snapshot %s: read %s: %w", dir, statePath, err)
	}
	if n != meta.Size {
		return fmt.Errorf("raftnode: raft snapshot %s is corrupt: %s has %d bytes, %s says %d", dir, statePath, n, snapshotMetaFile, meta.Size)
	}
	if !bytes.Equal(h.Sum(nil), meta.CRC) {
		return fmt.Errorf("raftnode: raft snapshot %s is corrupt: %s does not match the CRC-64 in %s", dir, statePath, snapshotMetaFile)
	}
	return nil
}

// checkFSMIndex refuses to start when the FSM has applied entries past the end of what
// Raft holds (the last log entry or the newest snapshot): raft.db lost its tail (a
// corrupt file whose newest meta page was discarded, a truncated or replaced file) or
// was deleted. Raft would give new entries indexes the FSM believes it has applied, and
// the FSM, which skips entries at or below its applied index, would drop them while
// their writers are told they succeeded.
func checkFSMIndex(dbPath string, logs raft.LogStore, snaps raft.SnapshotStore, applied uint64) error {
	last, err := logs.LastIndex()
	if err != nil {
		return fmt.Errorf("raftnode: read %s: %w", dbPath, err)
	}
	if list, err := snaps.List(); err == nil && len(list) > 0 && list[0].Index > last {
		last = list[0].Index
	}
	if applied > last {
		return fmt.Errorf("raftnode: %s ends at index %d but the FSM has applied up to %d: the Raft log lost entries "+
			"(corrupt, truncated, replaced or deleted); refusing to start", dbPath, last, applied)
	}
	return nil
}
