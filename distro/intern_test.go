package distro

import (
	"maps"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"github.com/roster-registry/roster/naming"
)

func TestStoredInstancesShareRepeatedStrings(t *testing.T) {
	s, _ := newTestStore(t)
	a := inst("10.0.0.1", 8080, "DEFAULT")
	b := inst("10.0.0.2", 8080, "DEFAULT")
	// Separate allocations of the same text, as two requests would decode them.
	a.ClusterName, b.ClusterName = strings.Clone("DEFAULT"), strings.Clone("DEFAULT")
	a.Metadata = map[string]string{strings.Clone("version"): strings.Clone("1.0.0")}
	b.Metadata = map[string]string{strings.Clone("version"): strings.Clone("1.0.0")}
	s.Register(svcA, a)
	s.Register(svcA, b)

	ra := s.shardOf(svcA).services[svcA].instances["10.0.0.1#8080#DEFAULT"].inst
	rb := s.shardOf(svcA).services[svcA].instances["10.0.0.2#8080#DEFAULT"].inst
	if unsafe.StringData(ra.cluster) != unsafe.StringData(rb.cluster) {
		t.Error("the two instances keep separate copies of their cluster name")
	}
	if ra.meta == "" || unsafe.StringData(ra.meta) != unsafe.StringData(rb.meta) {
		t.Error("the two instances keep separate copies of the same metadata")
	}
	// The IP is the store's own: a decoded IP is a slice of the whole request body.
	body := "ip=10.0.0.3&port=8080&serviceName=a&metadata=..."
	c := inst(body[3:11], 8080, "DEFAULT")
	s.Register(svcA, c)
	if rc := s.shardOf(svcA).services[svcA].instances["10.0.0.3#8080#DEFAULT"].inst; unsafe.StringData(rc.ip) == unsafe.StringData(c.IP) {
		t.Error("the stored IP shares the caller's memory")
	}
	// What comes back is what went in.
	got := mustInstance(t, s, svcA, "10.0.0.2#8080#DEFAULT")
	if got.ClusterName != "DEFAULT" || len(got.Metadata) != 1 || got.Metadata["version"] != "1.0.0" {
		t.Errorf("stored instance = %+v", got)
	}
}

// TestPackedMetadataRoundTrips checks the stored form of metadata against the maps it
// stands for: any bytes in keys and values, long ones (multi-byte lengths), an empty map
// kept apart from none, and equality with the map it came from and with others.
func TestPackedMetadataRoundTrips(t *testing.T) {
	s, _ := newTestStore(t)
	cases := []map[string]string{
		nil,
		{},
		{"": ""},
		{"app": "bench", "version": "1.0.0", "idx": "12345"},
		{"a\x00b": "c\x00", "\xff": "=", "k": strings.Repeat("v", 300)},
		{strings.Repeat("k", 200): "", "z": "last", "A": "first"},
	}
	for i, m := range cases {
		in := &naming.Instance{IP: "10.0.0.1", Port: 8080, ClusterName: "DEFAULT", Weight: 1.5,
			Healthy: true, Enabled: true, Ephemeral: true, Metadata: m}
		si := s.compact(in)
		out := si.instance()
		if !reflect.DeepEqual(in, out) {
			t.Errorf("case %d: stored %+v, got back %+v", i, in, out)
		}
		if (m == nil) != (out.Metadata == nil) {
			t.Errorf("case %d: nil metadata %v came back as nil %v", i, m == nil, out.Metadata == nil)
		}
		if !si.equal(in) {
			t.Errorf("case %d: the stored form differs from what it came from", i)
		}
		if got := metadataLen(si.meta); got != len(m) {
			t.Errorf("case %d: %d packed pairs, want %d", i, got, len(m))
		}
		for j, other := range cases {
			if j == i || maps.Equal(m, other) {
				continue
			}
			o := *in
			o.Metadata = other
			if si.equal(&o) {
				t.Errorf("case %d equals case %d's metadata", i, j)
			}
		}
	}
	// Equal maps pack alike whatever their insertion order.
	x := map[string]string{}
	y := map[string]string{}
	for i := range 20 {
		x[strconv.Itoa(i)] = "v"
		y[strconv.Itoa(19-i)] = "v"
	}
	if packMetadata(x) != packMetadata(y) {
		t.Error("equal maps pack differently")
	}
}

func TestInternerIsBounded(t *testing.T) {
	var in interner
	long := strings.Repeat("x", maxInternedLen+1)
	if got := in.intern(long); got != long || len(in.m) != 0 {
		t.Errorf("a long string was interned (table %d)", len(in.m))
	}
	for i := range maxInterned + 10 {
		s := naming.InstanceKey("10.0.0.1", i, "c")
		if got := in.intern(s); got != s {
			t.Fatalf("intern(%q) = %q", s, got)
		}
	}
	if len(in.m) != maxInterned {
		t.Errorf("table holds %d strings, want the bound %d", len(in.m), maxInterned)
	}
}

func TestChecksumIgnoresMapOrderAndSeesEveryField(t *testing.T) {
	s1, _ := newTestStore(t)
	s2, _ := newTestStore(t)
	for i := range 50 {
		s1.Register(svcA, inst("10.0.0.1", 1000+i, "DEFAULT"))
		s2.Register(svcA, inst("10.0.0.1", 1049-i, "DEFAULT"))
	}
	if s1.Checksum("") != s2.Checksum("") {
		t.Fatal("the same instances registered in another order digest differently")
	}
	changed := inst("10.0.0.1", 1010, "DEFAULT")
	changed.Metadata["k"] = "other"
	s2.Register(svcA, changed)
	if s1.Checksum("") == s2.Checksum("") {
		t.Error("a changed metadata value does not change the digest")
	}
}
