package distro

import "sync"

// Instances of a registry repeat the same few strings: cluster names, metadata keys
// and many metadata values (versions, zones, "true"). Stored instances share one copy of
// each instead of every registration keeping its own.
const (
	// maxInternedLen is the longest string interned: long values are rarely shared.
	maxInternedLen = 64
	// maxInterned bounds the table, whose strings come from clients: once full, new
	// strings are stored as they came.
	maxInterned = 1 << 14
)

type interner struct {
	mu sync.RWMutex
	m  map[string]string
}

// intern returns the table's copy of s, adding s while there is room.
func (in *interner) intern(s string) string {
	if len(s) > maxInternedLen {
		return s
	}
	in.mu.RLock()
	v, ok := in.m[s]
	in.mu.RUnlock()
	if ok {
		return v
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if v, ok := in.m[s]; ok {
		return v
	}
	if in.m == nil {
		in.m = make(map[string]string)
	}
	if len(in.m) >= maxInterned {
		return s
	}
	in.m[s] = s
	return s
}
