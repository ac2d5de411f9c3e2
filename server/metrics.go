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
	return []prometheus.Collector{
		counter("roster_raft_log_appends_total", "Writes to the Raft log store (each one fsynced).", func() uint64 { return node.LogStats().Appends }),
		counter("roster_raft_log_entries_total", "Entries written to the Raft log store.", func() uint64 { return node.LogStats().Entries }),
		counter("roster_fsm_batches_total", "Batches of new entries Raft handed to the FSM.", func() uint64 { return machine.Stats().Batches }),
		counter("roster_fsm_commands_total", "Commands the FSM applied.", func() uint64 { return machine.Stats().Commands }),
		counter("roster_fsm_commits_total", "fsm.db commits (each one fsynced).", func() uint64 { return store.Stats().Commits }),
		dbFileCollector{
			newDBFileDescs("fsm", "fsm.db"): func() (pages, bytes int, size int64) {
				st := store.Stats()
				return st.FreePages + st.PendingPages, st.FreeAlloc, st.FileBytes
			},
			newDBFileDescs("raft", "raft.db"): func() (pages, bytes int, size int64) {
				st := node.LogDBStats()
				return st.FreePages + st.PendingPages, st.FreeBytes, st.FileBytes
			},
		},
		counter("roster_raft_folded_entries_total", "Batch log entries this node proposed as leader, each holding many commands.", func() uint64 { return members.FoldStats().Entries }),
		counter("roster_raft_folded_commands_total", "Commands folded into the batch log entries this node proposed.", func() uint64 { return members.FoldStats().Commands }),
	}
}

// dbFileDescs are the shape gauges of one bbolt file.
type dbFileDescs struct{ freePages, freeBytes, fileBytes *prometheus.Desc }

func newDBFileDescs(prefix, file string) *dbFileDescs {
	name := func(n string) string { return "roster_" + prefix + "_db_" + n }
	return &dbFileDescs{
		freePages: prometheus.NewDesc(name("freelist_pages"), file+" pages on bbolt's freelist, free or pending (freed but visible to an open read).", nil, nil),
		freeBytes: prometheus.NewDesc(name("free_bytes"), "Bytes in "+file+"'s free and pending pages.", nil, nil),
		fileBytes: prometheus.NewDesc(name("file_bytes"), "Size of "+file+" on disk.", nil, nil),
	}
}

// dbFileCollector reads each file's stats once per scrape (a stat of the file and
// bbolt's counters) for all three of its gauges.
type dbFileCollector map[*dbFileDescs]func() (freePages, freeBytes int, fileBytes int64)

func (c dbFileCollector) Describe(ch chan<- *prometheus.Desc) {
	for d := range c {
		ch <- d.freePages
		ch <- d.freeBytes
		ch <- d.fileBytes
	}
}

func (c dbFileCollector) Collect(ch chan<- prometheus.Metric) {
	for d, read := range c {
		pages, bytes, size := read()
		ch <- prometheus.MustNewConstMetric(d.freePages, prometheus.GaugeValue, float64(pages))
		ch <- prometheus.MustNewConstMetric(d.freeBytes, prometheus.GaugeValue, float64(bytes))
		ch <- prometheus.MustNewConstMetric(d.fileBytes, prometheus.GaugeValue, float64(size))
	}
}
