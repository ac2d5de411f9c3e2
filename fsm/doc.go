// Package fsm is Roster's Raft state machine: the versioned commands that carry
// persistent-instance, service, cluster health-check and access-control changes (users,
// roles, grants, token signing keys) and the probers' health flips through the Raft
// log, and a raft.BatchingFSM that applies them to a persistence.Store.
//
// # Design notes
//
// Commands. An entry is a type byte, a version byte and a JSON body. Type numbers are
// append-only; the 0x80 bit marks a type older servers may skip, any other unknown type
// stops the server. Each type is one row of the command table (command.go): its
// decode, its validation with Nacos' naming rules, its apply and the type of its
// answer, so a new command touches one place. Validation runs once, where a write
// enters the registry (Validate, or Encode = Validate + Marshal), so every committed
// entry is applicable; the limits (metadata size, beat timing) are those of the node
// that took the write, and Apply never re-checks them, where members' different
// settings would make them disagree. Apply trusts an entry as far as "decodes and is a
// known version".
//
// One transaction per batch. ApplyBatch applies all the entries Raft hands it in one
// persistence.Update, and with the store's CommitInterval consecutive batches share one
// bbolt commit and one fsync (the Raft log is the durable record; persistence/doc.go
// argues why an answered write survives a crash and a power cut). Each command
// checks the state it meets before it writes, so a business rejection (a
// *naming.Error, returned as that entry's response) writes nothing and does not roll
// back its neighbours. Only a storage failure aborts the batch, and then the FSM
// panics rather than let Raft believe entries were applied that are not on disk.
//
// Batch entries. A Batch (type 13, batch.go) carries many commands in one log entry:
// the leader folds the writes that arrive while its previous proposal is in flight
// (cluster's proposer). The FSM applies its commands in order in the batch's
// transaction, each meeting the state its predecessors left, and answers a BatchResult
// with each command's own response; a rejected command affects no other. All of them
// stamp the batch's index as their revision, which still names one observable version
// because no reader sees the state between two commands of one entry. A batch is a
// log entry, not state: snapshots are unchanged, and logs written before batches
// existed replay as they did. A server that does not know type 13 stops at the first
// batch (it is mandatory), so the leader folds only once every member has said it
// applies batches (cluster/fold.go).
//
// The index lives in the same transaction. The batch's highest index and term are
// written with its data, atomically. After a crash the store holds a batch and its
// index or neither, and ApplyBatch skips every log at or below the recorded index, so
// replaying the Raft log on restart never applies an entry twice (a deregister replayed
// after a later register would otherwise delete a live instance). This is also why a
// restart need not restore a Raft snapshot: bbolt already holds the state.
//
// Revisions and health flips. Every write to a persistent instance stamps it with the
// Raft index of the entry that wrote it (persistence.Stamp). The prober, which probes
// what ProbeTargetsOf lists, writes only FlipHealth, a compare-and-set on that revision
// that the FSM refuses with a typed FlipResult when the instance changed since the
// prober looked, when a flip under a newer membership epoch was applied, or when the
// cluster's checker is NONE: health.go says why a stale prober can never undo a newer
// result. PutCluster sets one cluster's checker in the service record.
//
// Determinism. Apply reads no clock, draws no random number, and depends on no map
// order: services and instances come from bbolt in key order and JSON encodes maps
// sorted. An undecodable entry or an unknown mandatory type panics, outside any
// recover: crashing beats diverging.
//
// Snapshots and restore. Snapshot opens a bbolt read transaction and returns at once;
// Persist streams it while Apply goes on. Restore hands the stream to
// persistence.Restore, which verifies all of it into a fresh file and only then swaps
// it in, so a corrupt or truncated snapshot leaves the old state serving; building a
// fresh file (rather than deleting and refilling the live one) is what makes a failed
// restore change nothing.
package fsm
