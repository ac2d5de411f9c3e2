package distro

import (
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
	if unsafe.StringData(ra.ClusterName) != unsafe.StringData(rb.ClusterName) {
		t.Error("the two instances keep separate copies of their cluster name")
	}
	if unsafe.StringData(ra.Metadata["version"]) != unsafe.StringData(rb.Metadata["version"]) {
		t.Error("the two instances keep separate copies of a metadata value")
	}
	for k := range ra.Metadata {
		for k2 := range rb.Metadata {
			if unsafe.StringData(k) != unsafe.StringData(k2) {
				t.Error("the two instances keep separate copies of a metadata key")
			}
		}
	}
	// The IP is the store's own: a decoded IP is a slice of the whole request body.
	body := "ip=10.0.0.3&port=8080&serviceName=a&metadata=..."
	c := inst(body[3:11], 8080, "DEFAULT")
	s.Register(svcA, c)
	if rc := s.shardOf(svcA).services[svcA].instances["10.0.0.3#8080#DEFAULT"].inst; unsafe.StringData(rc.IP) == unsafe.StringData(c.IP) {
		t.Error("the stored IP shares the caller's memory")
	}
	// What comes back is what went in.
	got := mustInstance(t, s, svcA, "10.0.0.2#8080#DEFAULT")
	if got.ClusterName != "DEFAULT" || len(got.Metadata) != 1 || got.Metadata["version"] != "1.0.0" {
		t.Errorf("stored instance = %+v", got)
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
