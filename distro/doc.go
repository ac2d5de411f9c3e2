// Package distro is Roster's AP store of ephemeral instances: held in memory, kept alive
// by client beats, turned unhealthy and then removed when the beats stop (PROTOCOL.md §4),
// and replicated between the members without Raft, in the manner of Nacos' Distro.
//
// Store (store.go, expiry.go) holds one node's instances; owned.go adds the instances
// owned by a Nacos 2.x gRPC connection, which no beat timer expires, and replica.go the
// replication side of each record. Replicator (replicator.go) keeps the members' stores
// in step over internal HTTP routes under /roster/v1/distro, each of which refuses a
// request without the node credential (package nodeauth):
//
//   - Responsible node. Each 1.x client (its ip:port) has one responsible member, a
//     stable hash of the client over the sorted live members (Replicator.Responsible);
//     the HTTP front forwards a client's ephemeral writes to it. Only the responsible
//     member expires an instance. The others hold it as a replica of that member, its
//     source, and never expire it.
//   - Peer sync. Changes this node makes as the responsible member are batched for
//     PushDelay and pushed to every other member (PathSync), a service at a time: all of
//     that service's instances this node is responsible for, which replace the
//     receiver's replicas of them (Store.Apply), and those another member's claim took
//     from this node, with their new holder, so that the receiver hands such a replica
//     over rather than removing it before the new holder's own push arrives. Each group
//     is numbered by the read that made it: a member that handles an older copy after a
//     newer one (pushes queued while it was paused) drops it. A push a member did not
//     take is sent again once the member answers.
//   - Checksum verify. Every VerifyInterval each member sends the others a checksum of
//     its own instances (PathVerify). A member whose replicas of that source differ pulls
//     the source's own copy (PathData?source=self) and replaces them; a mismatch alone
//     never deletes anything.
//   - Full pull on start. Before the node serves, Replicator.Pull copies the whole
//     ephemeral state from one live member (PathData), and takes back, with fresh
//     timers, the instances this node was responsible for before it restarted.
//   - Liveness. Members ping each other (PathPing). When a member is found dead, the
//     others take over its beat-kept clients by the hash, with fresh timers
//     (Store.Adopt), and drop its connection-owned instances after OwnedGrace unless
//     their clients reconnected elsewhere (Store.DropOwnedOf). A death may be false (a
//     starved member misses its pings): when the member pushes an adopted client as
//     its own, with an older claim, it kept the client, and once the client's beats
//     stop reaching the adopter for its heartbeat timeout the adopter hands its copy
//     to that member (named in Moved) rather than expiring it everywhere.
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
//     healthy, or take a replica over, takes the write lock.
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
// Now and Time.Sub, less any time this process was found stalled (an expiry tick far
// later than its period): clients that kept beating meanwhile are not expired for it. In
// production the Clock is time.Now, whose readings carry the monotonic clock, so
// stepping the wall clock neither expires instances nor keeps dead ones alive. Only a
// record's epoch, compared between members, is wall-clock time.
//
// Notification. Every visible change (register, deregister, update, a flip of health,
// a removal by expiry, an empty service vanishing) calls the OnChange callbacks with the
// service, after the store's locks are released. Callbacks run on the caller's goroutine
// (the expiry ticker for expiry changes) and must not block; they may call the Store.
// Changes this node makes as the responsible member also go to the OnLocalChange hooks,
// which the Replicator pushes; replicas arriving from other members call OnChange only.
//
// Ownership. Each record carries the id of its client (ip:port), the gRPC connection
// that owns it if it was registered over gRPC, its source (empty when this node is
// responsible for it, else the responsible member's id), and the epoch at which that
// source took it: a member's claim replaces a record only if it is at least as recent,
// so a member that was stalled or partitioned cannot take back clients others adopted
// meanwhile. The beat and expiry paths are those of a single node: the expiry check
// skips replicas and connection-owned records, and a beat that reaches a replica takes
// it over for this node.
package distro
