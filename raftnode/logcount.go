package raftnode

import (
	"os"
	"sync/atomic"

	"github.com/hashicorp/raft"
)

// countingLogs counts the appends raft makes to its log store: each StoreLogs is one
// bbolt commit, one fsync, so entries per append is the group commit's batch size.
type countingLogs struct {
	raft.LogStore
	appends, entries atomic.Uint64
	// appended gets a signal (dropped when one is pending) after each append, so a
	// proposer can hand Raft its next entry the moment the log can take it.
	appended chan struct{}
}

func (c *countingLogs) StoreLog(l *raft.Log) error {
	return c.StoreLogs([]*raft.Log{l})
}

func (c *countingLogs) StoreLogs(logs []*raft.Log) error {
	err := c.LogStore.StoreLogs(logs)
	if err == nil {
		c.appends.Add(1)
		c.entries.Add(uint64(len(logs)))
		select {
		case c.appended <- struct{}{}:
		default:
		}
	}
	return err
}

// LogStats counts what this node appended to its Raft log since it started: appends
// (each one fsynced write) and the entries they held.
type LogStats struct {
	Appends, Entries uint64
}

// LogStats reports the log appends so far.
func (n *Node) LogStats() LogStats {
	return LogStats{Appends: n.logCount.appends.Load(), Entries: n.logCount.entries.Load()}
}

// LogDBStats is the shape of raft.db (log and stable store): bbolt's free pages (free
// now, and freed but still visible to an open read), the bytes they hold, and the file's
// size. A freelist that keeps growing across snapshot cycles means the file does too.
type LogDBStats struct {
	FreePages, PendingPages, FreeBytes int
	FileBytes                          int64
}

// LogDBStats reads raft.db's freelist through raft-boltdb's handle.
func (n *Node) LogDBStats() LogDBStats {
	bs := n.store.Stats()
	st := LogDBStats{FreePages: bs.FreePageN, PendingPages: bs.PendingPageN, FreeBytes: bs.FreeAlloc}
	if fi, err := os.Stat(n.dbPath); err == nil {
		st.FileBytes = fi.Size()
	}
	return st
}

// Appended signals after appends to the log (one signal may stand for several): on the
// leader, the moment the entries proposed so far are on disk and the log store is free
// for the next write. It is shared: one reader.
func (n *Node) Appended() <-chan struct{} { return n.logCount.appended }
