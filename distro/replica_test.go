package distro

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/roster-registry/roster/naming"
)

func svcKey(name string) naming.ServiceKey {
	return naming.ServiceKey{Namespace: "public", Group: "DEFAULT_GROUP", Name: name}
}

func TestReplicasAreNotExpiredHereAndFollowTheirSource(t *testing.T) {
	s, clk := newTestStore(t)
	svc := svcKey("r")
	var local []naming.ServiceKey
	s.OnLocalChange(func(k naming.ServiceKey) { local = append(local, k) })

	s.ApplyRemote("n2", svc, []Entry{{Instance: *inst("1.1.1.1", 80, "DEFAULT")}, {Instance: *inst("1.1.1.2", 80, "DEFAULT")}})
	if len(local) != 0 {
		t.Fatalf("a replica was reported as a local change: %v", local)
	}
	clk.Advance(time.Hour)
	check(s, clk)
	if got := s.Instances(svc); len(got) != 2 || !got[0].Healthy {
		t.Fatalf("replicas expired locally: %+v", got)
	}
	// The source's next push is its whole set for the service: what it lacks goes.
	s.ApplyRemote("n2", svc, []Entry{{Instance: *inst("1.1.1.2", 80, "DEFAULT")}})
	if got := s.Instances(svc); len(got) != 1 || got[0].IP != "1.1.1.2" {
		t.Fatalf("after the source dropped one: %+v", got)
	}
	// Another source's push does not touch n2's replicas.
	s.ApplyRemote("n3", svc, nil)
	if got := s.Instances(svc); len(got) != 1 {
		t.Fatalf("n3's empty set removed n2's replica: %+v", got)
	}
	if s.Checksum("n2") == s.Checksum("") {
		t.Fatal("checksums of different sources must differ here")
	}
}

func TestBeatOnReplicaTakesItOver(t *testing.T) {
	s, clk := newTestStore(t)
	svc := svcKey("b")
	var local []naming.ServiceKey
	s.OnLocalChange(func(k naming.ServiceKey) { local = append(local, k) })
	s.ApplyRemote("n2", svc, []Entry{{Instance: *inst("1.1.1.1", 80, "DEFAULT")}})
	if _, ok := s.Touch(svc, "1.1.1.1", 80, "DEFAULT"); !ok {
		t.Fatal("beat on a replica not found")
	}
	if len(local) != 1 || len(s.Authoritative(svc)) != 1 {
		t.Fatalf("a beat did not take the replica over: local=%v authoritative=%v", local, s.Authoritative(svc))
	}
	// Now it is ours: it expires here once the beats stop.
	clk.Advance(31 * time.Second)
	check(s, clk)
	if got := s.Instances(svc); len(got) != 0 {
		t.Fatalf("taken-over instance did not expire: %+v", got)
	}
}

func TestAdoptGivesAFreshTimerAndDropOwnedOfRemovesConnections(t *testing.T) {
	s, clk := newTestStore(t)
	svc := svcKey("a")
	s.ApplyRemote("dead", svc, []Entry{
		{Instance: *inst("1.1.1.1", 80, "DEFAULT")},
		{Instance: *inst("1.1.1.2", 80, "DEFAULT")},
		{Instance: *inst("1.1.1.3", 80, "DEFAULT"), Owner: "conn-1"},
	})
	clk.Advance(20 * time.Second)
	n := s.Adopt("dead", func(client string) bool { return client == "1.1.1.1:80" })
	if n != 1 {
		t.Fatalf("adopted %d, want 1", n)
	}
	clk.Advance(29 * time.Second)
	check(s, clk)
	if got := s.Instances(svc); len(got) != 3 {
		t.Fatalf("adopted instance expired before its fresh timer ran out: %+v", got)
	}
	clk.Advance(2 * time.Second)
	check(s, clk)
	if got := s.Instances(svc); len(got) != 2 {
		t.Fatalf("adopted instance not expired after its fresh timer: %+v", got)
	}
	if m := s.DropOwnedOf("dead"); m != 1 {
		t.Fatalf("dropped %d connection-owned instances, want 1", m)
	}
	if got := s.Instances(svc); len(got) != 1 || got[0].IP != "1.1.1.2" {
		t.Fatalf("after dropping the dead member's connections: %+v", got)
	}
}

func TestStalledTimeDoesNotCount(t *testing.T) {
	s, clk := newTestStore(t)
	svc := svcKey("p")
	s.Register(svc, inst("1.1.1.1", 80, "DEFAULT"))
	clk.Advance(40 * time.Second)
	s.paused.Add(int64(35 * time.Second)) // what the ticker records after a 35 s stall
	check(s, clk)
	if got := s.Instances(svc); len(got) != 1 || !got[0].Healthy {
		t.Fatalf("the stall counted towards expiry: %+v", got)
	}
}

func TestOlderClaimDoesNotTakeBackAnAdoptedClient(t *testing.T) {
	s, clk := newTestStore(t)
	svc := svcKey("e")
	old := clk.Now().UnixNano()
	clk.Advance(time.Second)
	// n3 adopted the client after n1 went quiet: its claim is newer.
	s.ApplyRemote("n3", svc, []Entry{{Instance: *inst("1.1.1.1", 80, "DEFAULT"), Epoch: clk.Now().UnixNano()}})
	// n1 resumes and repeats its stale claim.
	s.ApplyRemote("n1", svc, []Entry{{Instance: *inst("1.1.1.1", 80, "DEFAULT"), Epoch: old}})
	// n1's next (empty) set must not remove n3's copy.
	s.ApplyRemote("n1", svc, nil)
	if got := s.Instances(svc); len(got) != 1 {
		t.Fatalf("a stale claim took the client back and lost it: %+v", got)
	}
	if s.Checksum("n3") == s.Checksum("n1") {
		t.Fatal("the record must still be n3's")
	}
}

// TestSyncBatchRoundTrip: the batch the push loop sends decodes on a receiving member
// to the same entries.
func TestSyncBatchRoundTrip(t *testing.T) {
	s, _ := newTestStore(t)
	in := inst("10.0.0.1", 80, "DEFAULT")
	in.Weight, in.Metadata = 2.5, map[string]string{"zone": "a\nb"}
	s.Register(svcKey("orders"), in)
	r := NewReplicator(s, ReplicatorConfig{Self: "n1", Peers: func() []Peer { return nil }, Logger: quietLogger()})
	sent := r.SyncBatch([]naming.ServiceKey{svcKey("orders"), svcKey("gone")})
	wire, err := sent.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeSyncBatch(bytes.NewReader(wire))
	if err != nil {
		t.Fatal(err)
	}
	if got.From != "n1" || len(got.Services) != 2 || len(got.Services[0].Entries) != 1 || len(got.Services[1].Entries) != 0 {
		t.Fatalf("decoded %+v", got)
	}
	if e := got.Services[0].Entries[0].Instance; e.Weight != 2.5 || e.Metadata["zone"] != "a\nb" {
		t.Fatalf("decoded entry %+v", e)
	}
}

// TestSyncBatchRefusesWhatNoMemberSends: a receiving member refuses a batch carrying
// an instance no write path takes.
func TestSyncBatchRefusesWhatNoMemberSends(t *testing.T) {
	entry := func(instance string) string {
		return `{"from":"n2","services":[{"source":"","service":{"namespace":"public","group":"DEFAULT_GROUP","name":"s"},` +
			`"entries":[{"instance":{"ip":"10.0.0.1","port":1,"clusterName":"DEFAULT","weight":1,` + instance + `},"epoch":1}]}]}`
	}
	for name, body := range map[string]string{
		"weight out of range":    entry(`"weight":20000`),
		"weight beyond a double": entry(`"weight":1e400`),
		"port out of range":      entry(`"port":70000`),
		"ip with NUL":            entry(`"ip":"10.0.0.1\u0000"`),
		"cluster with NUL":       entry(`"clusterName":"c\u0000"`),
		"no sender":              `{"services":[]}`,
	} {
		if _, err := DecodeSyncBatch(strings.NewReader(body)); err == nil {
			t.Errorf("%s: the batch was taken", name)
		}
	}
	if _, err := DecodeSyncBatch(strings.NewReader(entry(`"weight":10000`))); err != nil {
		t.Errorf("a good batch was refused: %v", err)
	}
}

// TestHoldingsNameTheSourceOfEachCopy: a replica is held for its source, a beat there
// makes it this node's own (source empty), as the operator responsibility route shows.
func TestHoldingsNameTheSourceOfEachCopy(t *testing.T) {
	s, _ := newTestStore(t)
	svc := svcKey("h")
	s.ApplyRemote("n2", svc, []Entry{{Instance: *inst("1.1.1.1", 80, "DEFAULT")}, {Instance: *inst("1.1.1.2", 80, "DEFAULT")}})
	if _, ok := s.Touch(svc, "1.1.1.2", 80, "DEFAULT"); !ok {
		t.Fatal("beat on a replica not found")
	}
	got := s.Holdings(svc)
	want := []Holding{
		{Key: "1.1.1.1#80#DEFAULT", Client: "1.1.1.1:80", Source: "n2"},
		{Key: "1.1.1.2#80#DEFAULT", Client: "1.1.1.2:80", Source: ""},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Holdings = %+v, want %+v", got, want)
	}
	if got := s.Holdings(svcKey("none")); len(got) != 0 {
		t.Errorf("Holdings of an unknown service = %+v", got)
	}
}

// TestPullKeepsWhatASourcePushedDirectly (R8: a restarted member reported ready with
// clients missing): n3 claimed X, which n2 had owned before it restarted, and pushed
// it to n2; n2's full pull then answered from n1, whose copy still had X as n2's (old
// claim) and n3's set without it. The relayed n3 set must not delete n3's own push.
func TestPullKeepsWhatASourcePushedDirectly(t *testing.T) {
	s, clk := newTestStore(t)
	svc := svcKey("pull")
	old := clk.Now().UnixNano()
	clk.Advance(time.Second)
	x, y := inst("127.0.0.1", 12010, "DEFAULT"), inst("127.0.0.1", 12011, "DEFAULT")
	s.ApplyRemote("n3", svc, []Entry{{Instance: *x, Epoch: clk.Now().UnixNano()}, {Instance: *y, Epoch: old}})
	r := NewReplicator(s, ReplicatorConfig{Self: "n2", Peers: func() []Peer { return nil }, Logger: quietLogger()})
	r.load("n1", dataAnswer{groups: []SourcedEntries{
		{Source: "n2", Service: svc, Entries: []Entry{{Instance: *x, Epoch: old}}},
		{Source: "n3", Service: svc, Entries: []Entry{{Instance: *y, Epoch: old}}},
	}})
	if got := s.Instances(svc); len(got) != 2 {
		t.Fatalf("after the pull n2 holds %d instances, want both: %+v", len(got), got)
	}
	if s.Checksum("n3") == s.Checksum("") {
		t.Fatal("X must still be n3's (its claim is newer than n2's old one)")
	}
	// The relay's own instances still replace: what n1 no longer has goes.
	s.ApplyRemote("n1", svc, []Entry{{Instance: *inst("127.0.0.1", 12020, "DEFAULT"), Epoch: old}})
	r.load("n1", dataAnswer{groups: []SourcedEntries{{Source: "", Service: svc, Entries: nil}}})
	for _, in := range s.Instances(svc) {
		if in.Port == 12020 {
			t.Fatal("the relay's own set did not replace its instances")
		}
	}
}
