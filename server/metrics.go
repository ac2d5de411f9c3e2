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
// commands per commit are the group commit's figures (BENCHMARKS.md). The freelist
// gauges of fsm.db and raft.db show whether churn reuses freed pages (R11: bounded
// across snapshot cycles).
func writePathCollectors(node *raftnode.Node, machine *fsm.FSM, store *persistence.Store, members *cluster.Cluster) []prometheus.Collector {
	counter := func(name, help string, f func() uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(f()) })
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	return []prometheus.Collector{
		counter("roster_raft_log_appends_total", "Writes to the Raft log store (each one fsynced).", func() uint64 { return node.LogStats().Appends }),
		counter("roster_raft_log_entries_total", "Entries written to the Raft log store.", func() uint64 { return node.LogStats().Entries }),
		counter("roster_fsm_batches_total", "Batches of new entries Raft handed to the FSM.", func() uint64 { return machine.Stats().Batches }),
		counter("roster_fsm_commands_total", "Commands the FSM applied.", func() uint64 { return machine.Stats().Commands }),
		counter("roster_fsm_commits_total", "fsm.db commits (each one fsynced).", func() uint64 { return store.Stats().Commits }),
		gauge("roster_fsm_db_freelist_pages", "fsm.db pages on bbolt's freelist, free or pending (freed but visible to an open read).", func() float64 { st := store.Stats(); return float64(st.FreePages + st.PendingPages) }),
		gauge("roster_fsm_db_free_bytes", "Bytes in fsm.db's free and pending pages.", func() float64 { return float64(store.Stats().FreeAlloc) }),
		gauge("roster_fsm_db_file_bytes", "Size of fsm.db on disk.", func() float64 { return float64(store.Stats().FileBytes) }),
		gauge("roster_raft_db_freelist_pages", "raft.db pages on bbolt's freelist, free or pending.", func() float64 { st := node.LogDBStats(); return float64(st.FreePages + st.PendingPages) }),
		gauge("roster_raft_db_free_bytes", "Bytes in raft.db's free and pending pages.", func() float64 { return float64(node.LogDBStats().FreeBytes) }),
		gauge("roster_raft_db_file_bytes", "Size of raft.db on disk.", func() float64 { return float64(node.LogDBStats().FileBytes) }),
		counter("roster_raft_folded_entries_total", "Batch log entries this node proposed as leader, each holding many commands.", func() uint64 { return members.FoldStats().Entries }),
		counter("roster_raft_folded_commands_total", "Commands folded into the batch log entries this node proposed.", func() uint64 { return members.FoldStats().Commands }),
	}
}
