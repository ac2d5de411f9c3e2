package fsm

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/raft"

	"github.com/roster-registry/roster/auth"
	"github.com/roster-registry/roster/naming"
	"github.com/roster-registry/roster/persistence"
)

// SlowApply is how long a batch may take before ApplyBatch logs a warning. The clock is
// read only for this log line; it never influences state.
const SlowApply = 500 * time.Millisecond

// FSM applies committed Raft entries to a persistence.Store. Raft calls Apply,
// ApplyBatch, Snapshot and Restore from one goroutine; OnChange and Store may be called
// from any.
type FSM struct {
	store  *persistence.Store
	logger *slog.Logger
	// update is store.Update; a test replaces it to make commits fail.
	update func(index, term uint64, fn func(tx *persistence.Tx) error) error
	// diskFullRetry is the pause between commits retried on a full disk.
	diskFullRetry time.Duration

	mu       sync.Mutex // guards onChange and onAuth
	onChange []func(changed []naming.ServiceKey, all bool)
	onAuth   []func(doc []byte)

	// namespaceGen moves after every batch that changed a namespace record and after
	// Restore, so that readers can cache the records (NamespaceGeneration).
	namespaceGen      atomic.Uint64
	batches, commands atomic.Uint64

	// unsynced holds the commands applied since fsm.db's last commit, in log order.
	// When the store loses its open batch (persistence.ErrBatchLost: a commit failed,
	// a full disk most likely), they are applied again ahead of the next entries, so
	// the process never runs on a hole and need not restart to replay the log. Only
	// Raft's FSM goroutine (ApplyBatch, Restore) touches it.
	unsynced []appliedCommand
}

// appliedCommand is one command of the open batch and the log index it came from.
type appliedCommand struct {
	index uint64
	cmd   Command
}

// pending is a command of a batch Raft handed over and its position in that batch.
type pending struct {
	at  int
	cmd Command
}

// Stats count what the FSM applied since it started: the batches Raft handed over that
// held new entries, and the commands in them (a Batch entry counts its commands).
type Stats struct {
	Batches, Commands uint64
}

// Stats reports the FSM's counters.
func (f *FSM) Stats() Stats {
	return Stats{Batches: f.batches.Load(), Commands: f.commands.Load()}
}

// retain records the batch just applied in unsynced and drops what fsm.db has committed.
func (f *FSM) retain(work []pending, logs []*raft.Log) {
	durable, _ := f.store.Durable()
	kept := f.unsynced[:0]
	for _, c := range f.unsynced {
		if c.index > durable {
			kept = append(kept, c)
		}
	}
	for _, p := range work {
		if logs[p.at].Index > durable {
			kept = append(kept, appliedCommand{index: logs[p.at].Index, cmd: p.cmd})
		}
	}
	f.unsynced = kept
}

// NamespaceGeneration changes, after the commit, whenever the namespace records may
// have changed: records read when it had a value are current while it keeps it.
func (f *FSM) NamespaceGeneration() uint64 { return f.namespaceGen.Load() }

var _ raft.BatchingFSM = (*FSM)(nil)

// New returns an FSM over store. A nil logger discards.
func New(store *persistence.Store, logger *slog.Logger) *FSM {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &FSM{store: store, logger: logger.With("component", "fsm"), update: store.Update, diskFullRetry: 500 * time.Millisecond}
}

// Store is the store the FSM writes, for reads.
func (f *FSM) Store() *persistence.Store { return f.store }

// OnChange registers fn to run after each committed batch with the services it changed
// (de-duplicated, in order of first change), and after Restore with nil and all=true.
// fn runs on Raft's apply goroutine: it must return quickly and never block.
func (f *FSM) OnChange(fn func(changed []naming.ServiceKey, all bool)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.onChange = append(f.onChange, fn)
}

func (f *FSM) notify(changed []naming.ServiceKey, all bool) {
	if len(changed) == 0 && !all {
		return
	}
	f.mu.Lock()
	fns := slices.Clone(f.onChange)
	f.mu.Unlock()
	for _, fn := range fns {
		fn(changed, all)
	}
}

// OnAuthChange registers fn to run with the new access-control document after each
// batch that changed it, and after Restore. Like OnChange it runs on Raft's apply
// goroutine.
func (f *FSM) OnAuthChange(fn func(doc []byte)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.onAuth = append(f.onAuth, fn)
}

func (f *FSM) notifyAuth(doc []byte) {
	f.mu.Lock()
	fns := slices.Clone(f.onAuth)
	f.mu.Unlock()
	for _, fn := range fns {
		fn(doc)
	}
}

// Apply applies one log; it is ApplyBatch of one.
func (f *FSM) Apply(l *raft.Log) any { return f.ApplyBatch([]*raft.Log{l})[0] }

// ApplyBatch applies logs in one persistence.Update that also records the highest
// index and term of the batch. It returns exactly one response per log:
//   - nil for a log at or below the store's applied index (already applied before a
//     restart), for configuration and other non-command logs (they only advance the
//     index), for an unknown ignorable command, and for most successful commands;
//   - a *naming.Error when a command is rejected by the state it meets (the rejected
//     command writes nothing; the others in the batch still apply);
//   - []string for UpdateMetadataBatch;
//   - a FlipResult for FlipHealth, whose refusals are outcomes, not errors;
//   - a BatchResult for a Batch: each of its commands' responses as above, in order.
//
// An entry that does not decode, or of an unknown mandatory type, panics before the
// transaction opens: crashing beats diverging from the other servers. A storage failure
// panics too: the batch is not recorded, so after a restart Raft replays it.
func (f *FSM) ApplyBatch(logs []*raft.Log) []any {
	resp := make([]any, len(logs))
	applied, _ := f.store.Applied()

	var work []pending
	var first, last *raft.Log
	for i, l := range logs {
		if l.Index <= applied {
			continue
		}
		if first == nil {
			first = l
		}
		last = l
		if l.Type != raft.LogCommand {
			continue
		}
		if cmd := decodeLog(l); cmd != nil {
			work = append(work, pending{i, cmd})
		}
	}
	if last == nil {
		return resp
	}

	start := time.Now()
	var a *applier
	var replay []appliedCommand
	for attempt := 0; ; attempt++ {
		a = &applier{seen: map[naming.ServiceKey]bool{}}
		err := f.update(last.Index, last.Term, func(tx *persistence.Tx) error {
			a.tx = tx
			for _, c := range replay {
				a.index = c.index
				if _, err := a.apply(c.cmd); err != nil {
					return fmt.Errorf("log %d (%s), applied again: %w", c.index, c.cmd.Type(), err)
				}
			}
			for _, p := range work {
				a.index = logs[p.at].Index
				r, err := a.apply(p.cmd)
				if err != nil {
					return fmt.Errorf("log %d (%s): %w", logs[p.at].Index, p.cmd.Type(), err)
				}
				resp[p.at] = r
			}
			return nil
		})
		if errors.Is(err, persistence.ErrBatchLost) {
			// The store rolled back entries already answered: put them back first.
			durable, _ := f.store.Recover()
			replay = replay[:0]
			for _, c := range f.unsynced {
				if c.index > durable {
					replay = append(replay, c)
				}
			}
			f.logger.Error("fsm.db lost its open batch; applying its entries again", "from", durable+1, "commands", len(replay), "err", err)
		}
		if err == nil {
			if attempt > 0 {
				f.logger.Warn("fsm.db writable again; applying resumed", "first", first.Index, "last", last.Index, "after", time.Since(start).Round(time.Millisecond))
			}
			break
		}
		// A full disk is not the entry's fault: the committed entries must be applied,
		// in order, so the apply waits for space (the transaction rolled back, nothing
		// is half-written). Writes meanwhile time out with 503 rather than the process
		// crashing into a restart loop that cannot get past the same entry (R10).
		if errors.Is(err, persistence.ErrBatchLost) || errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
			if attempt%20 == 0 {
				f.logger.Error("fsm.db is out of disk space; applying waits until space is freed (writes answer 503 meanwhile)",
					"first", first.Index, "last", last.Index, "err", err)
			}
			time.Sleep(f.diskFullRetry)
			continue
		}
		panic(fmt.Sprintf("fsm: apply logs %d-%d: %v", first.Index, last.Index, err))
	}
	f.retain(work, logs)
	f.batches.Add(1)
	n := 0
	for _, p := range work {
		if b, ok := p.cmd.(Batch); ok {
			n += len(b.Commands)
		} else {
			n++
		}
	}
	f.commands.Add(uint64(n))
	if d := time.Since(start); d > SlowApply {
		f.logger.Warn("slow apply", "first", first.Index, "last", last.Index, "commands", len(work), "duration", d)
	}
	if a.namespacesChanged {
		f.namespaceGen.Add(1)
	}
	f.notify(a.changed, false)
	if a.authDoc != nil {
		f.notifyAuth(a.authDoc)
	}
	return resp
}

// decodeLog decodes a command log, returning nil for an unknown ignorable type.
func decodeLog(l *raft.Log) Command {
	if len(l.Data) > 0 {
		t := CommandType(l.Data[0])
		if _, known := commands[t]; !known && t.Ignorable() {
			return nil
		}
	}
	cmd, err := Decode(l.Data)
	if err != nil {
		panic(fmt.Sprintf("fsm: log %d (term %d): %v", l.Index, l.Term, err))
	}
	return cmd
}

// applier applies commands inside one transaction. Each command checks the state it
// meets before writing anything, so a rejection leaves no partial write behind. A
// returned error is a storage failure and aborts the batch.
type applier struct {
	tx *persistence.Tx
	// index is the Raft index of the command being applied: the revision it stamps on
	// the instances it writes.
	index   uint64
	changed []naming.ServiceKey
	seen    map[naming.ServiceKey]bool
	authDoc []byte // the access-control document after the batch, when it changed
	// namespacesChanged: a namespace record was written or removed.
	namespacesChanged bool
}

func (a *applier) touch(k naming.ServiceKey) {
	if !a.seen[k] {
		a.seen[k] = true
		a.changed = append(a.changed, k)
	}
}

// apply runs the command's row of the command table. Decode only returns commands of
// the table, so every command has one.
func (a *applier) apply(c Command) (any, error) { return commands[c.Type()].apply(a, c) }

func (a *applier) register(k naming.ServiceKey, in naming.Instance, q *Quota) (any, error) {
	svc, err := a.tx.Service(k)
	if err != nil {
		return nil, err
	}
	if svc != nil && svc.Ephemeral {
		return naming.ErrEphemeralService(k), nil
	}
	if refused, err := a.checkQuota(k, svc != nil, &in, q); err != nil {
		return nil, err
	} else if refused != nil {
		return refused, nil
	}
	if svc == nil {
		if err := a.tx.PutService(naming.NewService(k, false)); err != nil {
			return nil, err
		}
	}
	in.Ephemeral = false // this store holds persistent instances only
	_, prev, err := a.tx.InstanceStamped(k, in.Key())
	if err != nil {
		return nil, err
	}
	if err := a.putInstance(k, &in, prev); err != nil {
		return nil, err
	}
	a.touch(k)
	return nil, nil
}

// checkQuota answers naming.ErrQuota when adding service k (unless exists) or instance
// in (when not nil and new) would take k's namespace past its quotas (see Quota).
func (a *applier) checkQuota(k naming.ServiceKey, exists bool, in *naming.Instance, q *Quota) (*naming.Error, error) {
	if q == nil {
		return nil, nil
	}
	maxServices, maxInstances := q.Services, q.Instances
	if k.Namespace != naming.DefaultNamespace {
		rec, err := a.tx.NamespaceRecord(k.Namespace)
		if err != nil {
			return nil, err
		}
		if rec != nil && rec.MaxServices != nil {
			maxServices = *rec.MaxServices
		}
		if rec != nil && rec.MaxInstances != nil {
			maxInstances = *rec.MaxInstances
		}
	}
	if (exists || maxServices <= 0) && (in == nil || maxInstances <= 0) {
		return nil, nil
	}
	// The namespace's counters are kept with its records (persistence), so the check
	// costs the same however many services and instances the namespace holds.
	services, instances, err := a.tx.NamespaceCounts(k.Namespace)
	if err != nil {
		return nil, err
	}
	if !exists && maxServices > 0 && services >= maxServices {
		return naming.ErrQuota(k.Namespace, "services", maxServices), nil
	}
	if in == nil || maxInstances <= 0 {
		return nil, nil
	}
	if exists {
		have, err := a.tx.Instance(k, in.Key())
		if err != nil {
			return nil, err
		}
		if have != nil {
			return nil, nil // a replacement adds nothing
		}
	}
	if instances+1 > maxInstances {
		return naming.ErrQuota(k.Namespace, "instances", maxInstances), nil
	}
	return nil, nil
}

// putInstance writes a persistent instance whose stored stamp was prev, stamped with
// this command's index as its revision. The epoch of the last flip is kept: only a flip
// raises it (health.go).
func (a *applier) putInstance(k naming.ServiceKey, in *naming.Instance, prev persistence.Stamp) error {
	prev.Revision = a.index
	return a.tx.PutInstanceStamped(k, in, prev)
}

func (a *applier) deregister(c DeregisterInstance) (any, error) {
	ok, err := a.tx.DeleteInstance(c.Service, naming.InstanceKey(c.IP, c.Port, c.Cluster))
	if err != nil {
		return nil, err
	}
	if ok {
		a.touch(c.Service)
	}
	return nil, nil
}

func (a *applier) update(c UpdateInstance) (any, error) {
	in, stamp, err := a.tx.InstanceStamped(c.Service, naming.InstanceKey(c.IP, c.Port, c.Cluster))
	if err != nil {
		return nil, err
	}
	if in == nil {
		if c.Upsert == nil {
			return naming.BadRequest("instance not exist: " + nacosInstanceString(c)), nil
		}
		return a.register(c.Service, *c.Upsert, c.Quota)
	}
	if c.Weight != nil {
		in.Weight = *c.Weight
	}
	if c.Enabled != nil {
		in.Enabled = *c.Enabled
	}
	if c.Healthy != nil {
		in.Healthy = *c.Healthy
	}
	if c.Metadata != nil {
		in.Metadata = make(map[string]string, len(c.Metadata))
		for k, v := range c.Metadata {
			in.Metadata[k] = v
		}
	}
	if err := a.putInstance(c.Service, in, stamp); err != nil {
		return nil, err
	}
	a.touch(c.Service)
	return nil, nil
}

func (a *applier) putService(c PutService) (any, error) {
	k := c.Service.Key
	existing, err := a.tx.Service(k)
	if err != nil {
		return nil, err
	}
	switch c.Mode {
	case PutCreate:
		if existing != nil {
			return naming.ErrServiceExists(k), nil
		}
	case PutUpdate:
		if existing == nil {
			return naming.ErrServiceNotFound(k), nil
		}
	case PutUpsert:
	default:
		// Encode refuses this; an entry written by other means is rejected the same
		// way on every server.
		return naming.BadRequest("unknown put mode " + c.Mode.String()), nil
	}
	if refused, err := a.checkQuota(k, existing != nil, nil, c.Quota); err != nil {
		return nil, err
	} else if refused != nil {
		return refused, nil
	}
	svc := c.Service
	if existing != nil {
		svc.Ephemeral = existing.Ephemeral
		if len(svc.Clusters) == 0 {
			svc.Clusters = existing.Clusters
		}
	}
	if err := a.tx.PutService(&svc); err != nil {
		return nil, err
	}
	a.touch(k)
	return nil, nil
}

func (a *applier) deleteService(c DeleteService) (any, error) {
	existing, err := a.tx.Service(c.Service)
	if err != nil {
		return nil, err
	}
	if existing == nil {
		return naming.ErrServiceNotFound(c.Service), nil
	}
	list, err := a.tx.Instances(c.Service)
	if err != nil {
		return nil, err
	}
	if len(list) > 0 {
		return naming.ErrServiceNotEmpty(c.Service), nil
	}
	if err := a.tx.DeleteService(c.Service); err != nil {
		return nil, err
	}
	a.touch(c.Service)
	return nil, nil
}

// updateMetadata follows Nacos' batchUpdateMetadata: with no list, every instance of
// the service in key order; with a list, the listed instances that exist, in list order.
func (a *applier) updateMetadata(c UpdateMetadataBatch) (any, error) {
	var keys []string
	if len(c.Instances) == 0 {
		all, err := a.tx.Instances(c.Service)
		if err != nil {
			return nil, err
		}
		for _, in := range all {
			keys = append(keys, in.Key())
		}
	} else {
		for _, r := range c.Instances {
			keys = append(keys, naming.InstanceKey(r.IP, r.Port, r.Cluster))
		}
	}
	updated := []string{}
	for _, ik := range keys {
		in, stamp, err := a.tx.InstanceStamped(c.Service, ik)
		if err != nil {
			return nil, err
		}
		if in == nil {
			continue
		}
		if c.Remove {
			for k := range c.Metadata {
				delete(in.Metadata, k)
			}
		} else {
			if in.Metadata == nil {
				in.Metadata = make(map[string]string, len(c.Metadata))
			}
			for k, v := range c.Metadata {
				in.Metadata[k] = v
			}
		}
		if err := a.putInstance(c.Service, in, stamp); err != nil {
			return nil, err
		}
		updated = append(updated, in.IP+":"+strconv.Itoa(in.Port)+":unknown:"+in.ClusterName+":persistent")
	}
	if len(updated) > 0 {
		a.touch(c.Service)
	}
	return updated, nil
}

// nacosInstanceString is Nacos 1.x' Instance.toString of the instance a PUT named:
// ip:port:unknown:cluster_weight_healthy_marked_cluster, with the request's weight and
// healthy (defaults 1.0 and true).
func nacosInstanceString(c UpdateInstance) string {
	weight, healthy := 1.0, true
	if c.Weight != nil {
		weight = *c.Weight
	}
	if c.Healthy != nil {
		healthy = *c.Healthy
	}
	datum := c.IP + ":" + strconv.Itoa(c.Port) + ":unknown:" + c.Cluster
	if c.Port <= 0 {
		datum = c.IP + ":unknown:" + c.Cluster
	}
	return datum + "_" + javaDouble(weight) + "_" + strconv.FormatBool(healthy) + "_false_" + c.Cluster
}

// javaDouble formats f as Java's Double.toString does: "1.0", "0.5", "1.0E-4".
func javaDouble(f float64) string {
	abs := math.Abs(f)
	if f == 0 || abs >= 1e-3 && abs < 1e7 {
		s := strconv.FormatFloat(f, 'f', -1, 64)
		if !strings.Contains(s, ".") {
			s += ".0"
		}
		return s
	}
	mant, exp, _ := strings.Cut(strconv.FormatFloat(f, 'E', -1, 64), "E")
	if !strings.Contains(mant, ".") {
		mant += ".0"
	}
	e, _ := strconv.Atoi(exp)
	return mant + "E" + strconv.Itoa(e)
}

// Snapshot opens a read view of the store and returns at once; Persist streams it.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	sn, err := f.store.OpenSnapshot()
	if err != nil {
		return nil, fmt.Errorf("fsm: snapshot: %w", err)
	}
	return &snapshot{sn: sn, logger: f.logger}, nil
}

type snapshot struct {
	sn     *persistence.Snapshot
	logger *slog.Logger
}

// Persist writes the snapshot stream into sink and closes it, or cancels it on error.
func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	n, err := s.sn.WriteTo(sink)
	if err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("fsm: persist snapshot %s: %w", sink.ID(), err)
	}
	if err := sink.Close(); err != nil {
		return fmt.Errorf("fsm: close snapshot %s: %w", sink.ID(), err)
	}
	h := s.sn.Header()
	s.logger.Info("snapshot persisted", "id", sink.ID(), "index", h.Index, "services", h.Services, "instances", h.Instances, "bytes", n)
	return nil
}

// Release ends the snapshot's read transaction.
func (s *snapshot) Release() { s.sn.Release() }

func (a *applier) authChange(c AuthChange) (any, error) {
	st, err := auth.Decode(a.tx.AuthState())
	if err != nil {
		return nil, err
	}
	if err := st.Apply(c.Change); err != nil {
		var ne *naming.Error
		if errors.As(err, &ne) {
			return ne, nil
		}
		return nil, err
	}
	doc, err := st.Encode()
	if err != nil {
		return nil, err
	}
	if err := a.tx.PutAuthState(doc); err != nil {
		return nil, err
	}
	a.authDoc = doc
	return nil, nil
}

// AuthState reads the stored access-control document (nil before the first change).
func (f *FSM) AuthState() ([]byte, error) {
	var doc []byte
	err := f.store.View(func(tx *persistence.Tx) error {
		doc = tx.AuthState()
		return nil
	})
	return doc, err
}

// Restore replaces the whole state with a snapshot stream (persistence.Restore: verified
// in full before anything changes), then tells OnChange callbacks that everything may
// have changed.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	if err := f.store.Restore(rc); err != nil {
		return fmt.Errorf("fsm: restore: %w", err)
	}
	f.unsynced = nil
	index, term := f.store.Applied()
	f.logger.Info("snapshot restored", "index", index, "term", term)
	f.namespaceGen.Add(1)
	f.notify(nil, true)
	doc, err := f.AuthState()
	if err != nil {
		return fmt.Errorf("fsm: restore: read auth state: %w", err)
	}
	f.notifyAuth(doc)
	return nil
}
