// Package registry is the consistency router and the read side of Roster.
//
// Every write is dispatched on the instance's kind, as Nacos' mapConsistencyService
// does: ephemeral instances go to the in-memory distro store, persistent ones become a
// versioned command applied through Raft (the answer comes after commit and apply). A
// service is ephemeral or persistent, never both; the router refuses a write of the
// other kind with Nacos' text.
//
// Reads are served from a per-service view cached here and dropped whenever either
// store reports a change; the same notification bumps the service's lastRefTime
// (strictly increasing, as Nacos 2.x clients require) and schedules pushes to
// subscribers.
package registry
