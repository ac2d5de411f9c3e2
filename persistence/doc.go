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
// snapshot's). The FSM batches a whole ApplyBatch into one Update, so the cost of an
// fsync is shared by every entry Raft committed together.
//
// Transaction discipline. Exported Store methods open a transaction, defer its rollback
// and commit; Tx methods only read and write inside the transaction they are given and
// never commit. Values handed out are decoded copies, never bbolt's memory.
//
// Layout. Bucket "meta" holds the format version, the applied position, the service
// and instance counters (kept in the same transactions as the records, so Counts is
// O(1)) and the access-control document, whose content belongs to package auth: this
// package only stores it and carries it through snapshots. Bucket "services" maps an
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
