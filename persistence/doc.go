// Package persistence is the durable state behind the Raft FSM: persistent services and
// instances, the access-control document of package auth, and the Raft index and term
// they reflect, in one bbolt file, plus the snapshot stream format shared by Raft
// snapshots and `roster snapshot` files.
//
// # Design notes
//
// One transaction, one position. Update runs the caller's changes and writes the applied
// (index, term) in the same bbolt transaction. After a crash the file therefore holds
// either a batch and its index or neither, never one without the other. The FSM skips
// every log at or below the recorded index, so replaying the Raft log after a restart
// applies nothing twice, and a restart does not need a Raft snapshot to rebuild state
// (raftnode may set NoSnapshotRestoreOnStart while this index is at or past the newest
// snapshot's).
//
// # Durability: the Raft log is the source of truth, fsm.db a checkpoint of it
//
// This is etcd's backend model. With Options.CommitInterval set (the server's
// --fsm-commit-interval, 100 ms by default, and --fsm-commit-entries), Update does not
// commit its transaction: the next Updates join it, and the batch commits, fsynced, at
// most CommitInterval after its first Update, once it spans CommitEntries indexes, or
// when OpenSnapshot, Restore, Flush or Close need the file complete. Raft hands the FSM
// many small batches; they all share one commit.
//
// Why an answered write survives kill -9 and power loss. A persistent write is answered
// only after its Raft entry is committed, and an entry is committed only once it is in
// the log store of a quorum, each of which fsyncs it (raft-boltdb, NoSync false) before
// it counts. So every answered write is in an fsynced Raft log. fsm.db may lag behind:
// a crash loses the open batch, and the file is left as of its last commit. That state
// is consistent after a power cut too, because every commit is fsynced (bbolt writes the
// data pages, fsyncs, then writes and fsyncs the meta page): bbolt's meta page only ever
// points at pages that reached the disk. Plain NoSync would not give this; a meta page
// could then name pages that were never written. The file records the index of its
// last commit in the same transaction, and on restart Raft hands the FSM every
// committed entry after its snapshot (or from the start of the log); the FSM skips
// those at or below fsm.db's index and applies the rest in log order, exactly as the
// first time (Apply is deterministic: it reads no clock and no map order), so the state
// after replay is the state that was answered.
//
// Why the entries to replay are still in the log. Raft deletes log entries only after a
// snapshot, and only those at or below the snapshot's index minus TrailingLogs. A
// snapshot is taken through FSM.Snapshot, which opens the store's snapshot, which
// commits the open batch first: fsm.db's durable index is at or past every snapshot's
// index, so no entry fsm.db lacks is ever deleted. raftnode refuses to start when
// fsm.db's index is past the log's end (a log that lost entries).
//
// Why restart time does not grow with history. What is replayed is what followed the
// newest snapshot (at most SnapshotThreshold plus the entries of one batch); the FSM
// skips the part fsm.db already holds without decoding it.
//
// Why a read after the answer sees the write. The answer comes after the FSM applied the
// entry to the open transaction. View reads inside that transaction while a batch is
// open (serialized with the writer: bbolt transactions are not for concurrent use), so
// registry reads see every applied write, committed or not, like etcd's read buffer in
// front of its backend. Only OpenSnapshot uses a separate read transaction, after
// committing the batch. A View may not write into the batch (Tx refuses it).
//
// A failed batch. A storage error while applying, or a failed commit (a full disk),
// rolls back the whole open batch. If it held writes already answered, they are gone
// from fsm.db and from the reads, not from the log: the store refuses every later
// Update with ErrBatchLost until Recover, and the FSM, which keeps the commands it
// applied since the last commit, applies them again ahead of the next entries (and
// waits out a full disk, retrying). Reads may see the older state for that moment;
// nothing answered is lost, and no restart is needed. Without CommitInterval every
// Update commits on its own, as before.
//
// Transaction discipline. Exported Store methods open a transaction, defer its rollback
// and commit; Tx methods only read and write inside the transaction they are given and
// never commit. Values handed out are decoded copies, never bbolt's memory.
//
// Layout. Bucket "meta" holds the format version, the applied position, the service
// and instance counters (kept in the same transactions as the records, so Counts is
// O(1)) and the access-control document, whose content belongs to package auth: this
// package only stores it and carries it through snapshots. Bucket "nscounts" (format 2
// on; a format 1 file gets it, counted from the records, when it is opened) holds each
// namespace's number of service records and instances, kept in the same transactions as
// the records, so that the FSM's quota check costs the same however large the namespace
// is; like the records it rolls back with a lost batch and is rebuilt by Restore, which
// writes through the same Tx methods. Bucket "services" maps an
// escaped (namespace, group, name) tuple to the JSON of naming.Service; bucket
// "instances" holds one nested bucket per service, under the same tuple, mapping
// Instance.Key() to the JSON of naming.Instance with the fields of its Stamp (the FSM's
// revision and flip epoch) beside the instance's own; a record without them has the
// zero stamp, and a reader that wants only the instance ignores them, so records of
// either kind read both ways and the file format did not change for them. The tuple encoding cannot collide
// whatever bytes a name holds and sorts like the tuple, so listings come out ordered and
// a namespace is one key prefix. A newer format version is refused.
//
// Corrupt files. Open first maps an existing file read-only and refuses one shorter than
// the pages its meta page claims, before bbolt would fault reading past its end. bbolt
// can also panic on corrupt pages; Open alone recovers such a panic (and a memory fault)
// and reports an error naming the file. bbolt hands back no handle when it panics inside
// its own Open, so the process keeps that mapping and lock until it exits, which it
// should: the error is fatal at startup. Later panics are left to crash the process,
// because a half-read store must never be served.
//
// Restore builds a fresh file. The incoming stream is read to its end, checked (magic,
// version, every record, counts, SHA-256) and written into a new bbolt file beside the
// live one. Only a complete, verified file is swapped in: under the store's lock the
// live file is closed, the new one renamed over it, the directory fsynced and the file
// reopened. A truncated or corrupt stream therefore leaves the store exactly as it was,
// and a crash mid-restore leaves either the old file or the new one (a leftover
// temporary file is removed at the next Open).
//
// Snapshots hold one read transaction from OpenSnapshot to Release, so WriteTo streams
// a consistent view while Updates go on. That is the one long read transaction; the
// generous InitialMmapSize keeps it from stalling writers that grow the file.
package persistence
