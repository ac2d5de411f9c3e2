package healthcheck

// Ownership is rendezvous (highest-random-weight) hashing: each live member scores each
// target key, and the member with the highest score owns it. A member's score for a key
// does not depend on who else is live, so when a member dies only its own targets move
// (each to the survivor that scored it second) and when it comes back it takes exactly
// those back; every other target stays where it was. Modulo hashing over a sorted list,
// as Distro uses, would move most targets on every change of membership, and every moved
// target starts counting its results again.

// fnv64a hashes s with 64-bit FNV-1a: stable across processes and versions, which the
// members need, since they must all compute the same owner.
func fnv64a[T string | []byte](s T) uint64 {
	const (
		offset = 14695981039346656037
		prime  = 1099511628211
	)
	h := uint64(offset)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= prime
	}
	return h
}

// mix64 is MurmurHash3's finaliser. FNV alone spreads similar short strings (ids that
// differ in their last byte) poorly; the finaliser makes every input bit affect every
// output bit, so that a member's scores look independent of the other members'.
func mix64(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// ring is one round's membership, hashed once for all of the round's targets.
type ring struct {
	ids    []string
	hashes []uint64
}

func newRing(live []string) ring {
	r := ring{ids: make([]string, 0, len(live)), hashes: make([]uint64, 0, len(live))}
	seen := make(map[string]bool, len(live))
	for _, id := range live {
		if seen[id] {
			continue
		}
		seen[id] = true
		r.ids = append(r.ids, id)
		r.hashes = append(r.hashes, mix64(fnv64a(id)))
	}
	return r
}

// owner returns the member that owns key, or "" when no member is live. Ties (64-bit
// scores, so practically never) go to the smaller id, so that the answer does not depend
// on the order of live.
func (r ring) owner(key string) string { return r.ownerOf(fnv64a(key)) }

// ownerOf is owner of a key whose fnv64a hash is k.
func (r ring) ownerOf(k uint64) string {
	best, bestScore := "", uint64(0)
	for i, id := range r.ids {
		score := mix64(k ^ r.hashes[i])
		if best == "" || score > bestScore || (score == bestScore && id < best) {
			best, bestScore = id, score
		}
	}
	return best
}

// Owner returns the member of live that probes the target with this key (Target.Key),
// or "" when live is empty. Every member that sees the same live ids computes the same
// owner, whatever their order.
func Owner(key string, live []string) string {
	return newRing(live).owner(key)
}
