package distro

import (
	"encoding/binary"
	"hash/fnv"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/roster-registry/roster/naming"
)

// Replication support. Each instance has a source: the member responsible for it. The
// responsible member runs its expiry and pushes the service's records it is responsible
// for to every other member; the others hold them as replicas (ApplyRemote) and never
// expire them. A member that starts taking a client's beats, or whose peer died, takes
// the records over (the beat path, Adopt) with a fresh timer.

// stallThreshold is how late an expiry tick must be before it counts as a stall.
const stallThreshold = time.Second

// Entry is one replicated instance.
type Entry struct {
	Instance naming.Instance `json:"instance"`
	// Owner is the gRPC connection that owns the instance, if any.
	Owner string `json:"owner,omitempty"`
	// Epoch is when the sender became responsible for it (see record.epoch).
	Epoch int64 `json:"epoch"`
	// Source is set only in SourcedEntries.Moved: the member whose claim took the
	// instance from the sender, and Epoch is that claim's.
	Source string `json:"source,omitempty"`
}

// OnLocalChange adds a hook called after every change of svc that this node made as
// the responsible node (not after replicas arrive). Same rules as OnChange.
func (s *Store) OnLocalChange(fn func(svc naming.ServiceKey)) {
	s.cbMu.Lock()
	defer s.cbMu.Unlock()
	var next []func(naming.ServiceKey)
	if cur := s.localHooks.Load(); cur != nil {
		next = append(next, *cur...)
	}
	next = append(next, fn)
	s.localHooks.Store(&next)
}

// Authoritative returns the instances of svc this node is responsible for, sorted by
// key.
func (s *Store) Authoritative(svc naming.ServiceKey) []Entry {
	sh := s.shardOf(svc)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	return entriesOf(sh.services[svc], "")
}

// PushGroup is what this node pushes of svc to the other members: the instances it is
// responsible for, the ones another member's claim took from it (Moved), and the
// number of this read (Version).
func (s *Store) PushGroup(svc naming.ServiceKey) SourcedEntries {
	sh := s.shardOf(svc)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	sv := sh.services[svc]
	return SourcedEntries{Service: svc, Entries: entriesOf(sv, ""), Moved: movedOf(sv), Version: s.reads.Add(1)}
}

// movedOf lists the records another member's claim took from this node, each with its
// new holder; the caller holds the shard's lock.
func movedOf(sv *service) []Entry {
	if sv == nil {
		return nil
	}
	var out []Entry
	for _, key := range slices.Sorted(maps.Keys(sv.instances)) {
		r := sv.instances[key]
		if r.released && r.source != "" {
			out = append(out, Entry{Instance: *r.inst.instance(), Owner: r.owner, Epoch: r.epoch, Source: r.source})
		}
	}
	return out
}

func entriesOf(sv *service, source string) []Entry {
	out := []Entry{}
	if sv == nil {
		return out
	}
	for _, key := range slices.Sorted(maps.Keys(sv.instances)) {
		r := sv.instances[key]
		if r.source == source {
			out = append(out, Entry{Instance: *r.inst.instance(), Owner: r.owner, Epoch: r.epoch})
		}
	}
	return out
}

// ApplyRemote makes entries the instances of svc that member from is responsible for
// (Apply with nothing moved).
func (s *Store) ApplyRemote(from string, svc naming.ServiceKey, entries []Entry) {
	s.Apply(from, SourcedEntries{Service: svc, Entries: entries})
}

// Apply makes g.Entries the instances of g.Service that member from is responsible
// for: each entry replaces what this node holds under its key unless that is a more
// recent claim of another source (a member that was stalled must not take back what
// others adopted meanwhile). From's other replicas of the service go, except those
// from names in g.Moved with a claim at least as recent as the one held here: they are
// another member's now and are kept as that member's replicas until it pushes them
// itself. (Removing them would take still-beating clients off this node's lists until
// the new holder's push arrives, which may be seconds when this node was stalled.)
// Nothing here is expired locally.
func (s *Store) Apply(from string, g SourcedEntries) {
	s.applyGroup(from, g, true)
}

// ApplyRelayed takes entries of svc that source is responsible for as a third member
// relayed them (a full pull): each is applied as by ApplyRemote, but nothing is removed
// for being absent. The relay's copy of source's set may be older than what source
// itself pushed here already, and its gaps are not source's deletions; the checksum
// comparison with source repairs any difference.
func (s *Store) ApplyRelayed(source string, svc naming.ServiceKey, entries []Entry) {
	s.applyGroup(source, SourcedEntries{Service: svc, Entries: entries}, false)
}

// applyGroup is Apply; whole says g is from's complete set of the service, so that what it
// lacks of from's is removed (or handed over, by g.Moved).
func (s *Store) applyGroup(from string, g SourcedEntries, whole bool) {
	if from == "" {
		return
	}
	svc := g.Service
	now := s.now()
	want := make(map[string]Entry, len(g.Entries))
	for _, e := range g.Entries {
		want[e.Instance.Key()] = e
	}
	var moved map[string]Entry
	for _, e := range g.Moved {
		if e.Source == "" || e.Source == from {
			continue
		}
		if moved == nil {
			moved = make(map[string]Entry, len(g.Moved))
		}
		moved[e.Instance.Key()] = e
	}
	sh := s.shardOf(svc)
	sh.mu.Lock()
	changed := false
	var removed, handed, kept []string
	sv := sh.services[svc]
	if sv != nil && whole {
		for key, r := range sv.instances {
			if _, keep := want[key]; keep || r.source != from {
				continue
			}
			if m, ok := moved[key]; ok && m.Epoch >= r.epoch {
				s.setInstance(r, &m.Instance)
				r.owner = m.Owner
				r.source = m.Source
				r.epoch = m.Epoch
				r.adopted, r.rival = false, ""
				r.beat(now)
				handed = append(handed, key)
				changed = true
				continue
			}
			s.removeLocked(sv, key, now)
			removed = append(removed, key)
			changed = true
		}
	}
	if len(want) > 0 && sv == nil {
		sv = &service{instances: make(map[string]*record)}
		sh.services[svc] = sv
		s.services.Add(1)
	}
	for key, e := range want {
		c := &e.Instance
		r := sv.instances[key]
		if r != nil && r.source != from && r.epoch > e.Epoch {
			if r.source == "" && r.adopted && e.Owner == "" {
				// The member this node adopted the client from (or another) is alive
				// and still keeps it: remember it, so that the copy adopted here is
				// handed to it, not expired, if the client's beats go there.
				r.rival = from
			}
			kept = append(kept, key)
			continue // a newer claim than the sender's
		}
		if r == nil {
			r = &record{}
			sv.instances[key] = r
			s.instances.Add(1)
			changed = true
		} else {
			if r.source != from || r.owner != e.Owner || r.epoch != e.Epoch || !r.inst.equal(c) {
				changed = true
			}
			if r.source == "" {
				r.released = true // ours until now: tell the others who has it
			}
		}
		s.setInstance(r, c)
		r.owner = e.Owner
		r.source = from
		r.epoch = e.Epoch
		r.adopted, r.rival = false, ""
		r.beat(now)
	}
	sh.mu.Unlock()
	if len(removed) > 0 {
		s.logger.Debug("replicas removed: their source no longer lists them", "source", from, "service", svc.String(), "instances", removed)
	}
	if len(handed) > 0 {
		s.logger.Debug("replicas handed over: their source names a newer holder", "source", from, "service", svc.String(), "instances", handed)
	}
	if len(kept) > 0 {
		s.logger.Debug("a member's claim is older than the one held; kept", "source", from, "service", svc.String(), "instances", kept)
	}
	if changed {
		s.notifyRemote(svc)
	}
}

// SourcedEntries are the instances of one service held for one source ("" = this node).
type SourcedEntries struct {
	Source  string            `json:"source"`
	Service naming.ServiceKey `json:"service"`
	Entries []Entry           `json:"entries"`
	// Moved (this node's own group only) lists instances another member's claim took
	// from this node, each with that member (Entry.Source) and its claim's epoch.
	Moved []Entry `json:"moved,omitempty"`
	// Version (this node's own group only) numbers the read that produced the group:
	// of two groups of one service from one member, the higher is at least as recent.
	Version uint64 `json:"version,omitempty"`
}

// Export returns every instance held, grouped by service and source, in a stable order.
// This node's own group of a service carries Moved and Version, and is there whenever
// either list is not empty.
func (s *Store) Export() []SourcedEntries {
	var out []SourcedEntries
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		version := s.reads.Add(1)
		for svc, sv := range sh.services {
			sources := map[string]bool{}
			for _, r := range sv.instances {
				sources[r.source] = true
			}
			moved := movedOf(sv)
			if len(moved) > 0 {
				sources[""] = true
			}
			for _, src := range slices.Sorted(maps.Keys(sources)) {
				g := SourcedEntries{Source: src, Service: svc, Entries: entriesOf(sv, src)}
				if src == "" {
					g.Moved, g.Version = moved, version
				}
				out = append(out, g)
			}
		}
		sh.mu.RUnlock()
	}
	slices.SortFunc(out, func(a, b SourcedEntries) int {
		if c := compareServiceKey(a.Service, b.Service); c != 0 {
			return c
		}
		if a.Source < b.Source {
			return -1
		}
		if a.Source > b.Source {
			return 1
		}
		return 0
	})
	return out
}

// Checksum digests the instances held for source ("" = this node's own), so that
// members can find out cheaply whether their replicas match. Each instance is hashed on
// its own and the sorted hashes are digested, so the digest does not depend on map order
// and the pass keeps 8 bytes per instance rather than a copy of each.
func (s *Store) Checksum(source string) uint64 {
	var sums []uint64
	var buf []byte
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		for svc, sv := range sh.services {
			for key, r := range sv.instances {
				if r.source == source {
					buf = appendSignature(buf[:0], svc, key, r)
					h := fnv.New64a()
					h.Write(buf)
					sums = append(sums, h.Sum64())
				}
			}
		}
		sh.mu.RUnlock()
	}
	slices.Sort(sums)
	h := fnv.New64a()
	var word [8]byte
	for _, sum := range sums {
		binary.LittleEndian.PutUint64(word[:], sum)
		h.Write(word[:])
	}
	return h.Sum64()
}

// appendSignature appends what replication must carry exactly for one record, with its
// service and key, to b. The metadata goes in key order, as it is packed.
func appendSignature(b []byte, svc naming.ServiceKey, key string, r *record) []byte {
	in := &r.inst
	b = append(b, svc.Namespace...)
	b = append(b, 0)
	b = append(b, svc.Group...)
	b = append(b, 0)
	b = append(b, svc.Name...)
	b = append(b, 0)
	b = append(b, key...)
	b = append(b, 0)
	b = strconv.AppendFloat(b, in.weight, 'g', -1, 64)
	b = strconv.AppendBool(b, in.healthy)
	b = strconv.AppendBool(b, in.enabled)
	b = append(b, r.owner...)
	eachMetadata(in.meta, func(k, v string) bool {
		b = append(b, 0)
		b = append(b, k...)
		b = append(b, '=')
		b = append(b, v...)
		return true
	})
	return b
}

// Adopt takes over the beat-kept instances of source whose client take says this node
// is now responsible for, with a fresh timer: a member died, and its clients' beats
// come here from now on. It returns how many it took.
func (s *Store) Adopt(source string, take func(client string) bool) int {
	if source == "" {
		return 0
	}
	return s.sweep(true,
		func(r *record) bool { return r.source == source && r.owner == "" && take(r.inst.addr()) },
		func(_ *service, _ string, r *record, now int64) {
			r.source = ""
			r.released = false
			r.adopted, r.rival = true, ""
			r.epoch = s.wall()
			r.lastBeat.Store(now)
		})
}

// DropOwnedOf removes the connection-owned replicas of source: the member that held
// those connections is gone and their clients had time to reconnect elsewhere (their
// redo re-registers them under a new connection, which is not touched). It returns how
// many it removed.
func (s *Store) DropOwnedOf(source string) int {
	if source == "" {
		return 0
	}
	return s.sweep(false,
		func(r *record) bool { return r.source == source && r.owner != "" },
		func(sv *service, key string, _ *record, now int64) { s.removeLocked(sv, key, now) })
}

// sweep applies act to every record that match selects, shard by shard under the write
// lock, then notifies each changed service: as this node's own change when local (it
// is replicated), else as a change learned from elsewhere. It returns the count.
func (s *Store) sweep(local bool, match func(*record) bool, act func(sv *service, key string, r *record, now int64)) int {
	now := s.now()
	count := 0
	for i := range s.shards {
		sh := &s.shards[i]
		var changed []naming.ServiceKey
		sh.mu.Lock()
		for svc, sv := range sh.services {
			hit := false
			for key, r := range sv.instances {
				if match(r) {
					act(sv, key, r, now)
					count++
					hit = true
				}
			}
			if hit {
				changed = append(changed, svc)
			}
		}
		sh.mu.Unlock()
		for _, svc := range changed {
			if local {
				s.notify(svc)
			} else {
				s.notifyRemote(svc)
			}
		}
	}
	return count
}

// Sources counts the instances held per source ("" = this node's own).
func (s *Store) Sources() map[string]int {
	out := map[string]int{}
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		for _, sv := range sh.services {
			for _, r := range sv.instances {
				out[r.source]++
			}
		}
		sh.mu.RUnlock()
	}
	return out
}
