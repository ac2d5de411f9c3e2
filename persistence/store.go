package persistence

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// FormatVersion is the layout of the bbolt file, recorded in the meta bucket. Open
// refuses a file with a newer version; older versions are migrated explicitly, in order:
// 1 → 2 adds the per-namespace counters (bucketNamespaceCounts), counted from the
// records once.
const FormatVersion uint32 = 2

// Defaults for Options.
const (
	DefaultOpenTimeout     = time.Second
	DefaultInitialMmapSize = 64 << 20
	DefaultCommitEntries   = 10_000
)

// Options tunes Open. The zero value gives the defaults.
type Options struct {
	// OpenTimeout bounds the wait for the file lock (default 1s). When another process,
	// or another Store in this one, holds the file, Open fails with ErrLocked.
	OpenTimeout time.Duration
	// InitialMmapSize is the initial size of bbolt's memory map in bytes (default 64 MiB).
	// A writer that must grow the map waits for every open read transaction, such as a
	// snapshot being persisted; a generous initial map makes that rare.
	InitialMmapSize int
	// NodeID is written into snapshot headers, for inspection only. Empty is allowed.
	NodeID string
	// CommitInterval, when positive, lets Update leave its transaction open so that later
	// Updates join it: the batch is committed (and fsynced) at most CommitInterval after
	// its first Update, as soon as it spans CommitEntries indexes, or on Flush, Close,
	// OpenSnapshot and Restore. Reads (View) see the uncommitted batch. Zero commits every
	// Update. Only a caller whose updates can be replayed after a crash, such as the FSM
	// behind a Raft log, may set it: see the package documentation.
	CommitInterval time.Duration
	// CommitEntries bounds a batch by the indexes it spans (default
	// DefaultCommitEntries); it matters only with CommitInterval.
	CommitEntries uint64
}

func (o Options) withDefaults() Options {
	if o.OpenTimeout <= 0 {
		o.OpenTimeout = DefaultOpenTimeout
	}
	if o.InitialMmapSize <= 0 {
		o.InitialMmapSize = DefaultInitialMmapSize
	}
	if o.CommitEntries == 0 {
		o.CommitEntries = DefaultCommitEntries
	}
	return o
}

func (o Options) bolt() *bolt.Options {
	return &bolt.Options{
		Timeout:         o.OpenTimeout,
		InitialMmapSize: o.InitialMmapSize,
		NoSync:          false, // an acknowledged write must survive a power cut
		FreelistType:    bolt.FreelistMapType,
	}
}

var (
	// ErrLocked is matched (errors.Is) by the error Open returns when another process
	// holds the file; that error's text names the file.
	ErrLocked = errors.New("persistence: store file is in use by another process")
	// ErrClosed is returned by every operation on a closed Store.
	ErrClosed = errors.New("persistence: store is closed")
	// ErrBatchLost: an open batch holding answered Updates could not be committed and
	// was rolled back. The store refuses Updates until Recover; the caller, which
	// still has those entries (the FSM keeps what it applied since the last commit,
	// and the Raft log has them all), applies them again after Recover.
	ErrBatchLost = errors.New("persistence: answered updates of the open batch were rolled back")
)

type lockedError struct{ path string }

func (e *lockedError) Error() string {
	return "persistence: " + e.path + " is in use by another process (bbolt open timeout)"
}

func (e *lockedError) Is(target error) bool { return target == ErrLocked }

type appliedPos struct{ index, term uint64 }

// Store is the bbolt file holding persistent services and instances and the Raft
// position they reflect. It is safe for concurrent use; writes are serialized.
type Store struct {
	path string
	opts Options

	// mu guards db. View, Update and OpenSnapshot hold it shared; Restore and Close hold
	// it exclusively while they swap or drop the handle.
	mu sync.RWMutex
	db *bolt.DB

	// writeMu serializes Update so the applied check and the cache follow commit order.
	// It also guards the open batch: pending, its timer, its count of answered Updates
	// and failed. Lock order: writeMu, then mu.
	writeMu sync.Mutex
	// pending is the write transaction of the batch not committed yet (nil: none).
	pending      *bolt.Tx
	pendingTimer *time.Timer
	// pendingAcked counts the Updates in pending that already returned success.
	pendingAcked int
	// failed is set when a batch holding answered Updates could not be committed: they
	// are gone from this process (a restart replays them from the Raft log), so every
	// later Update is refused rather than applied on top of a hole.
	failed error

	// applied is the position of the last successful Update, committed or not; durable is
	// the position of the last commit, what the file holds.
	applied atomic.Pointer[appliedPos]
	durable atomic.Pointer[appliedPos]
	commits atomic.Uint64
	// advanced is closed, and replaced, each time applied moves forward.
	advanced atomic.Pointer[chan struct{}]
}

// Open opens or creates the store at path. It creates the buckets, checks the format
// version (refusing a newer one) and loads the applied index. Every error names the
// file. A file bbolt cannot read is reported as corrupt rather than crashing the
// process; this is the only place where a bbolt panic is recovered.
func Open(path string, opts Options) (*Store, error) {
	opts = opts.withDefaults()
	db, pos, err := openDB(path, opts)
	if err != nil {
		return nil, err
	}
	s := &Store{path: path, opts: opts, db: db}
	s.applied.Store(&pos)
	s.durable.Store(&pos)
	ch := make(chan struct{})
	s.advanced.Store(&ch)
	// A crash during Restore can leave its temporary file behind. It never holds state
	// anyone depends on, and we hold the lock on the live file now.
	removeStaleRestores(path)
	return s, nil
}

// removeStaleRestores deletes temporary files a crashed Restore left beside path. The
// names are matched literally: path may hold glob metacharacters.
func removeStaleRestores(path string) {
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		return
	}
	prefix := filepath.Base(path) + restoreTempInfix
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) && e.Type().IsRegular() {
			_ = os.Remove(filepath.Join(filepath.Dir(path), e.Name()))
		}
	}
}

// openDB opens the bbolt file and validates it. A panic or memory fault while bbolt
// reads a corrupt file is turned into an error naming the file; after a successful open
// the file has passed these checks and any later panic is left to crash the process.
func openDB(path string, opts Options) (db *bolt.DB, pos appliedPos, err error) {
	// bbolt hands no handle back when it panics inside Open; keep the file so its lock
	// can be released.
	var file *os.File
	bopts := opts.bolt()
	bopts.OpenFile = func(name string, flag int, perm os.FileMode) (*os.File, error) {
		f, err := os.OpenFile(name, flag, perm)
		file = f
		return f, err
	}
	defer func() {
		if r := recover(); r != nil {
			if db != nil {
				_ = db.Close()
			} else if file != nil {
				_ = file.Close()
			}
			db, err = nil, fmt.Errorf("persistence: %s is corrupt (bbolt: %v)", path, r)
		}
	}()
	// A truncated file can fault when bbolt touches a page past its end; make that a
	// recoverable panic for the duration of the open.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))

	if err := precheck(path, opts); err != nil {
		return nil, pos, err
	}
	db, err = bolt.Open(path, 0o600, bopts)
	if err != nil {
		return nil, pos, openErr(path, err)
	}
	if pos, err = initFile(db, path); err != nil {
		_ = db.Close()
		return nil, pos, err
	}
	return db, pos, nil
}

func openErr(path string, err error) error {
	if errors.Is(err, bolterrors.ErrTimeout) {
		return &lockedError{path: path}
	}
	return fmt.Errorf("persistence: open %s: %w", path, err)
}

// precheck opens an existing file read-only and compares the pages its meta page
// claims with the file's length. Opened for writing, bbolt would load the freelist and
// fault past the end of a truncated file inside Open, where the mapping (and with it
// the file lock) can no longer be released.
func precheck(path string, opts Options) error {
	fi, err := os.Stat(path)
	if err != nil || fi.Size() == 0 {
		return nil // a new file; or Open reports the error
	}
	ro := opts.bolt()
	ro.ReadOnly = true
	db, err := bolt.Open(path, 0o600, ro)
	if err != nil {
		return openErr(path, err)
	}
	defer db.Close()
	return db.View(func(tx *bolt.Tx) error {
		if want := tx.Size(); want > fi.Size() {
			return fmt.Errorf("persistence: %s is truncated: %d bytes, the database needs %d", path, fi.Size(), want)
		}
		return nil
	})
}

// initFile checks the format version and creates what is missing.
func initFile(db *bolt.DB, path string) (appliedPos, error) {
	var pos appliedPos
	err := db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			return createSchema(tx, path)
		}
		v := meta.Get(keyFormat)
		if len(v) != 4 {
			return fmt.Errorf("persistence: %s is corrupt: bad format version record", path)
		}
		ver := binary.BigEndian.Uint32(v)
		switch {
		case ver > FormatVersion:
			return fmt.Errorf("persistence: %s has format version %d, newer than this build supports (%d)", path, ver, FormatVersion)
		case ver < 1:
			return fmt.Errorf("persistence: %s has unknown format version %d", path, ver)
		}
		if tx.Bucket(bucketServices) == nil || tx.Bucket(bucketInstances) == nil {
			return fmt.Errorf("persistence: %s is corrupt: missing buckets", path)
		}
		// Migrations, one step at a time, in order, in this one transaction.
		if ver < 2 {
			if err := countNamespaces(tx, path); err != nil {
				return err
			}
			if err := meta.Put(keyFormat, u32(2)); err != nil {
				return fmt.Errorf("persistence: migrate %s to format 2: %w", path, err)
			}
		}
		if tx.Bucket(bucketNamespaceCounts) == nil {
			return fmt.Errorf("persistence: %s is corrupt: missing buckets", path)
		}
		index, term, ok := decodeApplied(meta.Get(keyApplied))
		if !ok {
			return fmt.Errorf("persistence: %s is corrupt: bad applied index record", path)
		}
		pos = appliedPos{index, term}
		return nil
	})
	return pos, err
}

// createSchema lays out a new file. A bbolt file that already holds other buckets is
// someone else's (raft.db, say) and is left alone.
func createSchema(tx *bolt.Tx, path string) error {
	foreign := false
	_ = tx.ForEach(func([]byte, *bolt.Bucket) error {
		foreign = true
		return nil
	})
	if foreign {
		return fmt.Errorf("persistence: %s is not a roster store (no meta bucket)", path)
	}
	meta, err := tx.CreateBucket(bucketMeta)
	if err != nil {
		return fmt.Errorf("persistence: init %s: %w", path, err)
	}
	for _, name := range [][]byte{bucketServices, bucketInstances, bucketNamespaceCounts} {
		if _, err := tx.CreateBucket(name); err != nil {
			return fmt.Errorf("persistence: init %s: %w", path, err)
		}
	}
	if err := meta.Put(keyFormat, u32(FormatVersion)); err != nil {
		return fmt.Errorf("persistence: init %s: %w", path, err)
	}
	return nil
}

// Path is the file the store lives in.
func (s *Store) Path() string { return s.path }

// Close commits the open batch, if any, and closes the file. It waits for open
// snapshots to be released. Closing twice is harmless.
func (s *Store) Close() error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db == nil {
		return nil
	}
	flushErr := s.commitLocked()
	err := s.db.Close()
	s.db = nil
	if err != nil {
		return errors.Join(flushErr, fmt.Errorf("persistence: close %s: %w", s.path, err))
	}
	return flushErr
}

// Applied is the Raft index and term recorded by the last Update or Restore (or found
// on disk at Open), committed or still in the open batch. It is cached: no transaction
// is opened.
func (s *Store) Applied() (index, term uint64) {
	p := s.applied.Load()
	return p.index, p.term
}

// Durable is the position the file holds: that of the last commit. It trails Applied
// by at most one batch.
func (s *Store) Durable() (index, term uint64) {
	p := s.durable.Load()
	return p.index, p.term
}

// signalAdvanced wakes every WaitApplied.
func (s *Store) signalAdvanced() {
	next := make(chan struct{})
	close(*s.advanced.Swap(&next))
}

// WaitApplied waits until Applied reaches index, ctx ends or timeout passes, and
// reports whether it was reached. It wakes on each Update rather than polling.
func (s *Store) WaitApplied(ctx context.Context, index uint64, timeout time.Duration) bool {
	if cur, _ := s.Applied(); cur >= index {
		return true
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		ch := *s.advanced.Load() // taken before the check, so no wake-up is missed
		if cur, _ := s.Applied(); cur >= index {
			return true
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return false
		case <-deadline.C:
			return false
		}
	}
}

// Flush commits the open batch now, if there is one.
func (s *Store) Flush() error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return ErrClosed
	}
	return s.commitLocked()
}

// flushBatch is the timer of batch tx: it commits tx if it is still the open batch. A
// failure is kept in s.failed, where the next Update finds it.
func (s *Store) flushBatch(tx *bolt.Tx) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil || s.pending != tx {
		return
	}
	_ = s.commitLocked()
}

// commitLocked commits the open batch, if any. The caller holds writeMu and mu (shared
// or exclusive) with the file open. On failure the batch is rolled back and applied goes
// back to durable; if the batch held answered Updates the store refuses further ones.
func (s *Store) commitLocked() error {
	tx := s.pending
	if tx == nil {
		return nil
	}
	acked := s.pendingAcked
	s.pending, s.pendingAcked = nil, 0
	if s.pendingTimer != nil {
		s.pendingTimer.Stop()
		s.pendingTimer = nil
	}
	if err := tx.Commit(); err != nil {
		s.applied.Store(s.durable.Load())
		err = fmt.Errorf("persistence: commit %s: %w", s.path, err)
		if acked > 0 {
			s.failed = fmt.Errorf("persistence: %s: a batch of %d applied updates could not be committed (%w): %w", s.path, acked, ErrBatchLost, err)
		}
		return err
	}
	s.durable.Store(s.applied.Load())
	s.commits.Add(1)
	return nil
}

// Update runs fn in a read-write transaction and records (index, term) as applied in
// the same transaction, so the data and the position it reflects are committed
// together. Without Options.CommitInterval the transaction commits before Update
// returns; with it, the transaction may stay open for later Updates (see Options). An
// error from fn rolls back the transaction and the position is not recorded; if the
// transaction held earlier, answered Updates they are rolled back too and the store
// refuses every later Update (a restart replays them). An index below the recorded one
// is refused: the applied position never goes back (only Restore moves it arbitrarily).
func (s *Store) Update(index, term uint64, fn func(tx *Tx) error) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return ErrClosed
	}
	if s.failed != nil {
		return s.failed
	}
	if cur := s.applied.Load(); index < cur.index {
		return fmt.Errorf("persistence: %s: applied index would go back from %d to %d", s.path, cur.index, index)
	}
	if s.pending == nil {
		btx, err := s.db.Begin(true)
		if err != nil {
			return fmt.Errorf("persistence: begin write on %s: %w", s.path, err)
		}
		s.pending = btx
	}
	btx := s.pending
	err := fn(&Tx{tx: btx, path: s.path})
	if err == nil {
		if perr := btx.Bucket(bucketMeta).Put(keyApplied, encodeApplied(index, term)); perr != nil {
			err = fmt.Errorf("persistence: record applied index in %s: %w", s.path, perr)
		}
	}
	if err != nil {
		s.rollbackLocked(err)
		return err
	}
	s.applied.Store(&appliedPos{index, term})
	if s.opts.CommitInterval <= 0 || index-s.durable.Load().index >= s.opts.CommitEntries {
		// commitLocked puts applied back to durable if the commit fails; waiters are
		// woken only for a position that stands.
		if err := s.commitLocked(); err != nil {
			return err
		}
		s.signalAdvanced()
		return nil
	}
	s.signalAdvanced()
	s.pendingAcked++
	if s.pendingTimer == nil {
		s.pendingTimer = time.AfterFunc(s.opts.CommitInterval, func() { s.flushBatch(btx) })
	}
	return nil
}

// Recover clears the refusal left by ErrBatchLost and answers the position the file
// holds (its last commit): the caller must apply again, in order, every entry after it
// before new ones. Without a lost batch it changes nothing.
func (s *Store) Recover() (index, term uint64) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.failed = nil
	d := s.durable.Load()
	return d.index, d.term
}

// rollbackLocked drops the open batch after a failed Update (cause).
func (s *Store) rollbackLocked(cause error) {
	_ = s.pending.Rollback()
	if s.pendingAcked > 0 {
		s.failed = fmt.Errorf("persistence: %s: a failed update rolled back %d applied updates (%w): %w", s.path, s.pendingAcked, ErrBatchLost, cause)
	}
	s.pending, s.pendingAcked = nil, 0
	if s.pendingTimer != nil {
		s.pendingTimer.Stop()
		s.pendingTimer = nil
	}
	s.applied.Store(s.durable.Load())
}

// View runs fn in a read-only transaction. It sees every successful Update, committed
// or not: while a batch is open, fn reads inside the batch's own transaction, holding
// off Updates (and other Views) until it returns. Keep fn short: a long read transaction
// holds old pages and can block a writer that needs to grow the file.
func (s *Store) View(fn func(tx *Tx) error) error {
	s.writeMu.Lock()
	if s.pending != nil {
		defer s.writeMu.Unlock()
		return fn(&Tx{tx: s.pending, path: s.path, readOnly: true})
	}
	s.writeMu.Unlock()
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return ErrClosed
	}
	btx, err := s.db.Begin(false)
	if err != nil {
		return fmt.Errorf("persistence: begin read on %s: %w", s.path, err)
	}
	defer func() { _ = btx.Rollback() }()
	return fn(&Tx{tx: btx, path: s.path})
}

// Stats are counters for metrics.
type Stats struct {
	Commits      uint64 // bbolt commits of Updates since Open (one per batch)
	FreePages    int    // bbolt free pages
	PendingPages int    // bbolt pages freed but still visible to an open read
	FreeAlloc    int    // bytes in free pages
	FileBytes    int64  // size of the file on disk (0 if it cannot be read)
}

// Stats returns the store's counters.
func (s *Store) Stats() Stats {
	st := Stats{Commits: s.commits.Load()}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db != nil {
		bs := s.db.Stats()
		st.FreePages, st.PendingPages, st.FreeAlloc = bs.FreePageN, bs.PendingPageN, bs.FreeAlloc
	}
	if fi, err := os.Stat(s.path); err == nil {
		st.FileBytes = fi.Size()
	}
	return st
}
