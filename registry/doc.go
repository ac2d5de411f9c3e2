// Package registry is the consistency router and the read side of Roster, and the only
// place where a write's route is decided.
//
// Every write is dispatched on the kind of its service, as Nacos' mapConsistencyService
// does. The kind is decided first; then an ephemeral write or beat of a 1.x client is
// served by the member responsible for that client (distro's hash of ip:port over the
// healthy members), reached in one typed call (route.go), and a persistent write
// becomes a versioned command committed through the leader (apply.go: cluster.Apply
// forwards from a follower; the answer comes after commit and apply). A service is
// ephemeral or persistent, never both; the router refuses a write of the other kind
// with Nacos' text. Input is validated once, where it enters here (writes.go).
//
// Errors leave this package as *naming.Error (Nacos' status and text) or as internal
// failures: Raft's and the cluster's sentinels are translated once (clientError), and
// each front answers *naming.Error in a table of its own.
//
// Reads are served from a per-service view cached here and dropped whenever either
// store reports a change (views.go); the same notification bumps the service's
// lastRefTime (strictly increasing, as Nacos 2.x clients require) and schedules pushes
// to subscribers. Operator actions that must run on the leader, the Raft state the
// fronts show and snapshots go through this package too (operator.go), so the HTTP and
// gRPC fronts import nothing of the cluster.
//
// The health of persistent instances (health.go): clusters' checkers are set through
// UpdateCluster; a prober reads ProbeTargets (kept between calls, re-read per changed
// service) and commits only flips, through FlipHealth, which the FSM refuses when they
// are stale; manual health (SetHealth) is for clusters whose checker is NONE.
package registry
