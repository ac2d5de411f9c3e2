// Package cluster forms and keeps a Roster cluster around the Raft node: it bootstraps
// one configuration from --bootstrap-expect, adds joining nodes as voters, keeps the
// table of members' HTTP addresses, and forwards persistent writes from followers to
// the leader so that no client ever has to find the leader.
//
// The Raft configuration is the member list; this package only adds each member's HTTP
// address to it. The table is learned from joins, kept by the leader, copied by every
// follower on each sync, and saved in the data dir so that a restarted node can find
// the cluster again.
//
// Forwarding is the leader-or-forward pattern of Consul's ForwardRPC: while there is no
// leader a write retries with jitter up to a hold time and then fails with 503; an
// outcome that cannot be known (leadership lost, a connection cut after the request was
// sent) is reported as unknown, never as success.
package cluster
