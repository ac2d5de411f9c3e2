package distro

import (
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/roster-registry/roster/naming"
)

// Connection-owned instances (Nacos 2.x, seed 003): an instance registered over a gRPC
// connection belongs to that connection. It is never expired by beat timers; it leaves
// when its owner deregisters it, replaces it, or is dropped (RemoveOwned) because the
// connection closed or stopped answering.
//
// The record's owner field says who owns it now; the ownerIndex below only finds an
// owner's records quickly. The index may hold stale entries (a record since taken over by
// a 1.x registration, or deregistered over HTTP): every use checks record.owner, and an
// owner's entries go when the owner is removed. Lock order: shard, then ownerIndex.

// ownerIndex maps an owner to the instance keys it holds, per service.
type ownerIndex struct {
	mu sync.Mutex
	m  map[string]map[naming.ServiceKey]map[string]struct{}
}

// keys returns a copy of the keys owner holds in svc.
func (o *ownerIndex) keys(owner string, svc naming.ServiceKey) []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Collect(maps.Keys(o.m[owner][svc]))
}

// set records that owner holds exactly keys in svc (none: forget the service).
func (o *ownerIndex) set(owner string, svc naming.ServiceKey, keys map[string]struct{}) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(keys) == 0 {
		if byOwner := o.m[owner]; byOwner != nil {
			delete(byOwner, svc)
			if len(byOwner) == 0 {
				delete(o.m, owner)
			}
		}
		return
	}
	if o.m == nil {
		o.m = map[string]map[naming.ServiceKey]map[string]struct{}{}
	}
	byOwner := o.m[owner]
	if byOwner == nil {
		byOwner = map[naming.ServiceKey]map[string]struct{}{}
		o.m[owner] = byOwner
	}
	byOwner[svc] = keys
}

// take removes and returns everything owner holds.
func (o *ownerIndex) take(owner string) map[naming.ServiceKey]map[string]struct{} {
	o.mu.Lock()
	defer o.mu.Unlock()
	got := o.m[owner]
	delete(o.m, owner)
	return got
}

// owners counts the owners with at least one indexed instance.
func (o *ownerIndex) owners() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.m)
}

// ReplaceOwned makes insts the instances owner holds in svc: the owner's other instances
// of svc are removed, and each of insts is stored (copied) as owned by owner, taking over
// any instance with the same key. Nacos 2.x keeps one instance per client per service
// (a batch keeps a list), so a register replaces and a batch register replaces the list.
// An empty insts removes the owner's instances of svc. Subscribers are notified once,
// and only if something changed. It returns the instances removed.
func (s *Store) ReplaceOwned(svc naming.ServiceKey, owner string, insts []*naming.Instance) []*naming.Instance {
	now := s.now()
	want := make(map[string]*naming.Instance, len(insts))
	for _, inst := range insts {
		want[inst.Key()] = inst
	}
	sh := s.shardOf(svc)

	sh.mu.Lock()
	changed := false
	var removed []*naming.Instance
	sv := sh.services[svc]
	if sv != nil {
		for _, key := range s.own.keys(owner, svc) {
			if _, keep := want[key]; keep {
				continue
			}
			if r := sv.instances[key]; r != nil && r.owner == owner {
				removed = append(removed, r.inst.instance())
				s.removeLocked(sv, key, now)
				changed = true
			}
		}
	}
	if len(want) > 0 && sv == nil {
		sv = &service{instances: make(map[string]*record)}
		sh.services[svc] = sv
		s.services.Add(1)
	}
	held := make(map[string]struct{}, len(want))
	for key, c := range want {
		held[key] = struct{}{}
		r := sv.instances[key]
		if r == nil {
			r = &record{}
			sv.instances[key] = r
			s.instances.Add(1)
			changed = true
		} else if r.owner != owner || r.source != "" || !r.inst.equal(c) {
			changed = true
		}
		s.setInstance(r, c)
		r.owner = owner
		r.source = ""
		r.released = false
		r.adopted, r.rival = false, ""
		r.epoch = s.wall()
		r.beat(now)
	}
	s.own.set(owner, svc, held)
	sh.mu.Unlock()

	if changed {
		s.notify(svc)
	}
	return removed
}

// RegisterOwned stores inst as the one instance owner holds in svc (ReplaceOwned with
// one instance).
func (s *Store) RegisterOwned(svc naming.ServiceKey, inst *naming.Instance, owner string) {
	s.ReplaceOwned(svc, owner, []*naming.Instance{inst})
}

// DeregisterOwned removes every instance owner holds in svc, whatever their addresses
// (a Nacos 2.x deregister ignores ip and port), and returns them.
func (s *Store) DeregisterOwned(svc naming.ServiceKey, owner string) []*naming.Instance {
	return s.ReplaceOwned(svc, owner, nil)
}

// RemoveOwned removes every instance owner holds, in every service, notifying each
// service once, and returns what it removed by service. Instances since taken over by
// another owner or by a 1.x registration are left alone.
func (s *Store) RemoveOwned(owner string) map[naming.ServiceKey][]*naming.Instance {
	held := s.own.take(owner)
	if len(held) == 0 {
		return nil
	}
	now := s.now()
	out := make(map[naming.ServiceKey][]*naming.Instance, len(held))
	for svc, keys := range held {
		sh := s.shardOf(svc)
		sh.mu.Lock()
		sv := sh.services[svc]
		for key := range keys {
			if sv == nil {
				break
			}
			if r := sv.instances[key]; r != nil && r.owner == owner {
				out[svc] = append(out[svc], r.inst.instance())
				s.removeLocked(sv, key, now)
			}
		}
		sh.mu.Unlock()
		if len(out[svc]) > 0 {
			s.notify(svc)
		}
	}
	for svc, list := range out {
		if len(list) == 0 {
			delete(out, svc)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// Owner returns the owner of the instance with key (ip#port#cluster) in svc: empty for a
// beat-kept instance; ok is false when there is no such instance.
func (s *Store) Owner(svc naming.ServiceKey, key string) (owner string, ok bool) {
	sh := s.shardOf(svc)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	_, r := sh.lookup(svc, key)
	if r == nil {
		return "", false
	}
	return r.owner, true
}

// Owners counts the owners (connections) that hold at least one instance.
func (s *Store) Owners() int { return s.own.owners() }

// LastBeat returns when the instance with key (ip#port#cluster) in svc last showed it
// was alive (a beat, its registration, or a replica's last refresh), on this store's
// clock; ok is false when there is no such instance.
func (s *Store) LastBeat(svc naming.ServiceKey, key string) (at time.Time, ok bool) {
	sh := s.shardOf(svc)
	sh.mu.RLock()
	_, r := sh.lookup(svc, key)
	var last int64
	if r != nil {
		last = r.lastBeat.Load()
	}
	sh.mu.RUnlock()
	if r == nil {
		return time.Time{}, false
	}
	ago := time.Duration(s.now() - last)
	return s.clock.Now().Add(-ago), true
}
