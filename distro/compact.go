package distro

import (
	"encoding/binary"
	"slices"
	"strings"

	"github.com/roster-registry/roster/naming"
)

// storedInstance is an instance as the store keeps it: held in its record by value, with
// the metadata packed into one string (packMetadata) rather than a map, which for three
// entries costs ≈ 300 bytes against ≈ 50 here. Callers never see this form: every read
// converts back to a *naming.Instance (instance), so answers are unchanged.
type storedInstance struct {
	ip      string
	cluster string
	// meta is the packed metadata; hasMeta tells an empty map from none, which a copy
	// handed out keeps as it came in.
	meta    string
	weight  float64
	port    int
	healthy bool
	enabled bool
	// ephemeral is kept as given: the store holds ephemeral instances, but a caller's
	// value comes back unchanged.
	ephemeral bool
	hasMeta   bool
}

// compact is the store's copy of inst. The cluster name and the packed metadata are
// interned; the IP is copied, since a form-decoded IP is a slice of the request's whole
// body, which it would otherwise keep alive.
func (s *Store) compact(inst *naming.Instance) storedInstance {
	si := storedInstance{
		ip:        strings.Clone(inst.IP),
		cluster:   s.strings.intern(inst.ClusterName),
		weight:    inst.Weight,
		port:      inst.Port,
		healthy:   inst.Healthy,
		enabled:   inst.Enabled,
		ephemeral: inst.Ephemeral,
		hasMeta:   inst.Metadata != nil,
	}
	if len(inst.Metadata) > 0 {
		si.meta = s.strings.intern(packMetadata(inst.Metadata))
	}
	return si
}

// instance is a copy of the stored instance in the callers' form. Its metadata keys and
// values are slices of the packed string, so they cost the map alone.
func (si *storedInstance) instance() *naming.Instance {
	in := &naming.Instance{
		IP: si.ip, Port: si.port, ClusterName: si.cluster, Weight: si.weight,
		Healthy: si.healthy, Enabled: si.enabled, Ephemeral: si.ephemeral,
	}
	if si.hasMeta {
		in.Metadata = make(map[string]string, metadataLen(si.meta))
		eachMetadata(si.meta, func(k, v string) bool {
			in.Metadata[k] = v
			return true
		})
	}
	return in
}

// equal reports whether b is what the store holds (nil and empty metadata alike, as
// maps.Equal has it).
func (si *storedInstance) equal(b *naming.Instance) bool {
	if si.ip != b.IP || si.port != b.Port || si.cluster != b.ClusterName || si.weight != b.Weight ||
		si.healthy != b.Healthy || si.enabled != b.Enabled || si.ephemeral != b.Ephemeral {
		return false
	}
	if metadataLen(si.meta) != len(b.Metadata) {
		return false
	}
	return eachMetadata(si.meta, func(k, v string) bool {
		bv, ok := b.Metadata[k]
		return ok && bv == v
	})
}

// addr is ip:port, the identity of a 1.x client.
func (si *storedInstance) addr() string {
	return (&naming.Instance{IP: si.ip, Port: si.port}).Addr()
}

// packMetadata encodes metadata sorted by key, each key and value prefixed by its
// length as a uvarint: any byte may occur in either, and equal maps pack alike.
func packMetadata(m map[string]string) string {
	keys := make([]string, 0, len(m))
	size := 0
	for k, v := range m {
		keys = append(keys, k)
		size += len(k) + len(v) + 2*binary.MaxVarintLen32
	}
	slices.Sort(keys)
	b := make([]byte, 0, size)
	for _, k := range keys {
		v := m[k]
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
		b = binary.AppendUvarint(b, uint64(len(v)))
		b = append(b, v...)
	}
	return string(b)
}

// eachMetadata calls fn with the packed pairs in key order while it returns true, and
// reports whether every call did.
func eachMetadata(p string, fn func(k, v string) bool) bool {
	for len(p) > 0 {
		var k, v string
		k, p = nextPacked(p)
		v, p = nextPacked(p)
		if !fn(k, v) {
			return false
		}
	}
	return true
}

func nextPacked(p string) (string, string) {
	var n uint64
	var shift uint
	i := 0
	for ; i < len(p); i++ {
		c := p[i]
		n |= uint64(c&0x7f) << shift
		if c < 0x80 {
			i++
			break
		}
		shift += 7
	}
	return p[i : i+int(n)], p[i+int(n):]
}

// metadataLen is the number of packed pairs.
func metadataLen(p string) int {
	n := 0
	eachMetadata(p, func(string, string) bool { n++; return true })
	return n
}
