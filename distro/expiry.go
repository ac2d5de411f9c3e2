package distro

import (
	"time"

	"github.com/roster-registry/roster/naming"
)

type action uint8

const (
	markUnhealthy action = iota + 1
	removeInstance
	dropService
	// handToRival makes an adopted record that its beats no longer reach a replica of
	// the live member that still holds it as its own (record.rival).
	handToRival
)

// maxScratch bounds the candidate buffer kept between passes.
const maxScratch = 4096

// candidate is a change the scan found; it is applied only if a re-check under the
// write lock still calls for it.
type candidate struct {
	act action
	svc naming.ServiceKey
	key string
	rec *record
}

// CheckExpiry runs one expiry pass now, as the ticker does. It lets callers that drive
// a fake clock (tests of the layers above) expire instances without waiting.
func (s *Store) CheckExpiry() { s.checkExpiry(s.clock.Now()) }

// checkExpiry turns instances unhealthy, removes them and drops empty services whose
// time has come at now. The ticker calls it; tests call it with a fake time.
func (s *Store) checkExpiry(now time.Time) {
	s.checkMu.Lock()
	defer s.checkMu.Unlock()

	at := int64(now.Sub(s.base)) - s.paused.Load()
	var unhealthy, removed, dropped, handed int
	var changed []naming.ServiceKey
	for i := range s.shards {
		sh := &s.shards[i]
		cands := s.scan(sh, at, s.scratch[:0])

		changed = changed[:0]
		for _, c := range cands {
			if !s.apply(sh, c, at) {
				continue
			}
			switch c.act {
			case markUnhealthy:
				unhealthy++
			case removeInstance:
				removed++
			case dropService:
				dropped++
			case handToRival:
				handed++
			}
			// The scan visits a service's records together, so duplicates are adjacent.
			if n := len(changed); n == 0 || changed[n-1] != c.svc {
				changed = append(changed, c.svc)
			}
		}
		clear(cands) // drop references to records and keys until the next pass
		s.scratch = cands[:0]
		if cap(s.scratch) > maxScratch {
			s.scratch = nil // after a mass expiry, do not hold its buffer for ever
		}

		for _, svc := range changed {
			s.notify(svc)
		}
	}
	if unhealthy+removed+dropped+handed > 0 {
		s.logger.Info("ephemeral expiry", "unhealthy", unhealthy, "removed", removed, "empty_services_dropped", dropped,
			"adopted_handed_back", handed)
	}
}

// scan collects the changes due at under the shard's read lock, so beats (which take the
// read lock too) continue meanwhile.
func (s *Store) scan(sh *shard, at int64, out []candidate) []candidate {
	ttl := int64(s.cfg.EmptyServiceTTL)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	for k, sv := range sh.services {
		if len(sv.instances) == 0 {
			if at-sv.emptySince >= ttl {
				out = append(out, candidate{act: dropService, svc: k})
			}
			continue
		}
		for key, r := range sv.instances {
			if r.owner != "" || r.source != "" {
				continue // kept alive by its connection, or a replica another member expires
			}
			idle := at - r.lastBeat.Load()
			switch {
			case r.rival != "" && idle >= r.hbTimeout:
				// Adopted during a false death, while the member it came from kept the
				// client and its beats: expiring this copy would remove a live client
				// from every member that took this node's claim.
				out = append(out, candidate{act: handToRival, svc: k, key: key, rec: r})
			case idle >= r.delTimeout:
				out = append(out, candidate{act: removeInstance, svc: k, key: key, rec: r})
			case idle >= r.hbTimeout && r.inst.healthy:
				out = append(out, candidate{act: markUnhealthy, svc: k, key: key, rec: r})
			}
		}
	}
	return out
}

// apply makes one change under the shard's write lock if it is still due, and reports
// whether it did. A record replaced since the scan (deregistered and registered again)
// is fresh and left alone.
func (s *Store) apply(sh *shard, c candidate, at int64) bool {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sv := sh.services[c.svc]
	if sv == nil {
		return false
	}
	switch c.act {
	case dropService:
		if len(sv.instances) > 0 || at-sv.emptySince < int64(s.cfg.EmptyServiceTTL) {
			return false
		}
		delete(sh.services, c.svc)
		s.services.Add(-1)
		s.logger.Debug("empty service dropped", "service", c.svc.String())
		return true
	case removeInstance:
		r := sv.instances[c.key]
		if r != c.rec || r.owner != "" || r.source != "" || at-r.lastBeat.Load() < r.delTimeout {
			return false
		}
		s.removeLocked(sv, c.key, at)
		s.logger.Debug("ephemeral instance expired", "service", c.svc.String(), "instance", c.key, "client", r.inst.addr())
		return true
	case handToRival:
		r := sv.instances[c.key]
		if r != c.rec || r.owner != "" || r.source != "" || r.rival == "" || at-r.lastBeat.Load() < r.hbTimeout {
			return false
		}
		// This node's pushes now name the rival as the holder (Moved), so the members
		// that took this node's claim keep the client as the rival's.
		r.source, r.released = r.rival, true
		r.adopted, r.rival = false, ""
		s.logger.Debug("adopted instance handed back to the member that kept it", "service", c.svc.String(), "instance", c.key,
			"client", r.inst.addr(), "member", r.source)
		return true
	case markUnhealthy:
		r := sv.instances[c.key]
		if r != c.rec || r.owner != "" || r.source != "" || !r.inst.healthy || at-r.lastBeat.Load() < r.hbTimeout {
			return false
		}
		r.inst.healthy = false
		s.logger.Debug("ephemeral instance unhealthy", "service", c.svc.String(), "instance", c.key, "client", r.inst.addr())
		return true
	}
	return false
}
