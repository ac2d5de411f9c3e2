// Package distro is Roster's AP store of ephemeral instances: held in memory, kept alive
// by client beats, turned unhealthy and then removed when the beats stop (PROTOCOL.md §4).
// For now it serves a single node; the cluster work (responsible node per client, peer
// sync, checksums, full pull on start) builds on the same store.
//
// # Design notes
//
// Scale. One node keeps 100 000 instances alive at 5 s beats, i.e. 20 000 beats/s on two
// cores, while the expiry check walks every instance twice a second. The choices below
// keep a beat to two map lookups and one atomic store, plus the copy Beat returns (Touch
// returns none and allocates nothing).
//
//   - Services are spread over a fixed number of shards by a hash of their key. Each shard
//     has its own RWMutex, so writers to different services do not contend, and readers
//     on different cores do not bounce one lock word.
//   - The time of the last beat is an atomic integer in each record. A beat therefore
//     takes only its shard's read lock: beats run in parallel with each other, with
//     listings and with the expiry scan. Only a beat that must flip an instance back to
//     healthy takes the write lock.
//   - Every change of a stored instance other than its beat time happens under the shard's
//     write lock, and readers copy instances under the read lock, so no caller ever holds a
//     pointer into the store.
//   - The expiry check scans one shard at a time under its read lock and only collects
//     candidates. It then takes the write lock once per change and re-checks the beat
//     time, so a beat that lands between the scan and the change wins. Because a beat
//     holds the read lock while it records its time, it is ordered entirely before or
//     entirely after a removal: a beat that reports success is never lost.
//   - Per-instance timeouts (preserved.* metadata over the server defaults) are resolved
//     when an instance is registered or updated, not on every scan.
//
// Time. Beat times are durations since the store was created, measured with the Clock's
// Now and Time.Sub. In production the Clock is time.Now, whose readings carry the
// monotonic clock, so stepping the wall clock neither expires instances nor keeps dead
// ones alive.
//
// Notification. Every visible change (register, deregister, update, a flip of health,
// a removal by expiry, an empty service vanishing) calls the OnChange callbacks with the
// service, after the store's locks are released. Callbacks run on the caller's goroutine
// (the expiry ticker for expiry changes) and must not block; they may call the Store.
//
// Ownership. Each record carries the id of the client that owns it (a 1.x client is its
// ip:port). The cluster work adds a responsible-node hash over that id and a per-client
// index beside the per-service maps; the beat and expiry paths stay as they are, the
// check merely skipping records this node is not responsible for.
package distro
