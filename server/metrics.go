package server

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/roster-registry/roster/cluster"
	"github.com/roster-registry/roster/fsm"
	"github.com/roster-registry/roster/persistence"
	"github.com/roster-registry/roster/raftnode"
)

// writePathCollectors count the batching of the persistent write path: Raft log appends
// (each an fsynced write) and their entries, the batches Raft hands the FSM and their
// commands, fsm.db's commits (each fsynced), and the batch entries this node proposed as
// leader with the commands folded into them. Entries per append, commands per entry and
// commands per commit are the group commit's figures (BENCHMARKS.md).
func writePathCollectors(node *raftnode.Node, machine *fsm.FSM, store *persistence.Store, members *cluster.Cluster) []prometheus.Collector {
	counter := func(name, help string, f func() uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(f()) })
	}
	return []prometheus.Collector{
		counter("roster_raft_log_appends_total", "Writes to the Raft log store (each one fsynced).", func() uint64 { return node.LogStats().Appends }),
		counter("roster_raft_log_entries_total", "Entries written to the Raft log store.", func() uint64 { return node.LogStats().Entries }),
		counter("roster_fsm_batches_total", "Batches of new entries Raft handed to the FSM.", func() uint64 { return machine.Stats().Batches }),
		counter("roster_fsm_commands_total", "Commands the FSM applied.", func() uint64 { return machine.Stats().Commands }),
		counter("roster_fsm_commits_total", "fsm.db commits (each one fsynced).", func() uint64 { return store.Stats().Commits }),
		counter("roster_raft_folded_entries_total", "Batch log entries this node proposed as leader, each holding many commands.", func() uint64 { return members.FoldStats().Entries }),
		counter("roster_raft_folded_commands_total", "Commands folded into the batch log entries this node proposed.", func() uint64 { return members.FoldStats().Commands }),
	}
}
