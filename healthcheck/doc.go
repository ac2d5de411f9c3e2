// Package healthcheck probes persistent instances (TCP, HTTP, gRPC health; NONE is never
// probed) and reports a change of health only when a result has repeated. It knows
// nothing of Raft or the registry: it reads its targets from a Source and the live
// members from a Members, and hands each flip to a Flipper, which the server makes a
// Raft command.
//
// # Rounds
//
// A Prober works in rounds. Each round it asks Members who is live and Source for every
// target, keeps the targets this member owns (below), and hands them to a fixed pool of
// Config.Workers workers, so that at most that many probes are in flight however many
// instances there are. The next round starts Interval plus a random jitter in
// [0, Jitter) after the last one ended (Nacos: 2 s plus up to 5 s), so a round that
// takes long delays the next rather than piling up on it, and the members' rounds drift
// apart. Source and Members are called from the round loop only; probes and flips run
// on the workers, so nothing a probe does blocks a write or a read of the registry.
//
// # Ownership
//
// Every target is probed by exactly one live member: the one with the highest
// rendezvous hash of (member id, Target.Key) among the live ids (Owner). A member's
// score for a target does not depend on the other members, so when a member dies its
// targets, and only its targets, move to the survivors, in the first round after the
// survivors see it dead; the other targets keep their owner and their counts.
//
// # Flips
//
// The prober believes a health per target, starting from the stored Target.Healthy.
// Each result that disagrees with the belief adds one to a count, each that agrees
// resets it; when the count reaches Config.CheckTimes (Nacos' checkTimes, 3) the prober
// calls Flip with the new health, the target as listed (its Revision) and the round's
// membership epoch. Only after Flip succeeds does the belief change; after an error
// the next disagreeing result calls Flip again. When a target's Revision changes (any
// write to the instance, a flip included, or to its checker) the belief starts again
// from the stored health with a count of zero, and a target that leaves this member's
// share is forgotten. The Flipper, not the prober, refuses a flip decided on an old
// revision or under an old membership: the prober only carries both.
//
// # Safety
//
// A probe dials only the target's literal IP and its port (or the checker's port): a
// target whose ip is not a literal address is never probed, so no user data reaches a
// resolver. Config.AllowedCIDRs limits what may be dialed; a target outside it is not
// probed and keeps its stored health (counted in roster_healthcheck_skipped_total, and
// one debug line). The same list is checked again in the dialer's Control function,
// just before the kernel connects, so no path through this package reaches an address
// outside it. A TCP probe closes its connection with a reset, so that probing leaves no
// TIME_WAIT sockets behind on this member. HTTP probes follow no redirect (a 3xx is its own status), use no proxy,
// keep no idle connection, and read at most 64 KiB of an answer; gRPC probes dial
// through the same dialer with no resolver and no proxy.
package healthcheck
