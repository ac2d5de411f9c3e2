package distro

import (
	"reflect"
	"testing"
	"time"

	"github.com/roster-registry/roster/naming"
)

func TestRegisterStoresACopy(t *testing.T) {
	s, _ := newTestStore(t)
	in := inst("10.0.0.1", 8080, "DEFAULT")
	s.Register(svcA, in)

	// The caller's instance is not shared with the store.
	in.Weight = 7
	in.Metadata["k"] = "changed"
	got := mustInstance(t, s, svcA, "10.0.0.1#8080#DEFAULT")
	if got.Weight != 1 || got.Metadata["k"] != "v" {
		t.Fatalf("store shares the registered instance: %+v", got)
	}

	// Nor is what it hands out.
	got.Healthy = false
	got.Metadata["k"] = "mutated"
	list := s.Instances(svcA)
	list[0].Weight = 99
	list[0].Metadata["k"] = "mutated"
	list[0] = nil
	again := mustInstance(t, s, svcA, "10.0.0.1#8080#DEFAULT")
	want := inst("10.0.0.1", 8080, "DEFAULT")
	if !reflect.DeepEqual(again, want) {
		t.Fatalf("stored instance changed through a copy: %+v, want %+v", again, want)
	}
	if svc, n := s.Counts(); svc != 1 || n != 1 {
		t.Fatalf("Counts = %d, %d; want 1, 1", svc, n)
	}
}

func TestRegisterUpserts(t *testing.T) {
	s, clk := newTestStore(t)
	s.Register(svcA, inst("10.0.0.1", 8080, "DEFAULT"))

	clk.Advance(14 * time.Second)
	in := inst("10.0.0.1", 8080, "DEFAULT")
	in.Weight = 3
	in.Metadata = map[string]string{"version": "2"}
	s.Register(svcA, in)

	got := mustInstance(t, s, svcA, "10.0.0.1#8080#DEFAULT")
	if got.Weight != 3 || !reflect.DeepEqual(got.Metadata, map[string]string{"version": "2"}) {
		t.Fatalf("re-register did not overwrite: %+v", got)
	}
	if _, n := s.Counts(); n != 1 {
		t.Fatalf("re-register added an instance: %d", n)
	}

	// The re-register counted as a beat: 14 s later the instance is still healthy.
	clk.Advance(14 * time.Second)
	check(s, clk)
	if !mustInstance(t, s, svcA, "10.0.0.1#8080#DEFAULT").Healthy {
		t.Fatal("re-register did not record a beat")
	}

	// The same ip:port in another cluster is another instance.
	s.Register(svcA, inst("10.0.0.1", 8080, "OTHER"))
	list := s.Instances(svcA)
	if len(list) != 2 || list[0].ClusterName != "DEFAULT" || list[1].ClusterName != "OTHER" {
		t.Fatalf("Instances = %+v, want DEFAULT and OTHER", list)
	}
}

func TestInstancesSorted(t *testing.T) {
	s, _ := newTestStore(t)
	for _, ip := range []string{"10.0.0.3", "10.0.0.1", "10.0.0.2"} {
		s.Register(svcA, inst(ip, 80, "DEFAULT"))
	}
	s.Register(svcA, inst("10.0.0.1", 9, "DEFAULT"))
	var keys []string
	for _, i := range s.Instances(svcA) {
		keys = append(keys, i.Key())
	}
	want := []string{"10.0.0.1#80#DEFAULT", "10.0.0.1#9#DEFAULT", "10.0.0.2#80#DEFAULT", "10.0.0.3#80#DEFAULT"}
	if !reflect.DeepEqual(keys, want) {
		t.Fatalf("Instances order = %v, want %v", keys, want)
	}

	none := s.Instances(naming.ServiceKey{Namespace: "public", Group: "DEFAULT_GROUP", Name: "none"})
	if none == nil || len(none) != 0 {
		t.Fatalf("Instances of an unknown service = %#v, want empty non-nil", none)
	}
}

func TestServicesSortedFilteredAndOwned(t *testing.T) {
	s, _ := newTestStore(t)
	keys := []naming.ServiceKey{
		{Namespace: "public", Group: "G", Name: "b"},
		{Namespace: "dev", Group: "DEFAULT_GROUP", Name: "z"},
		{Namespace: "public", Group: "DEFAULT_GROUP", Name: "c"},
		{Namespace: "public", Group: "DEFAULT_GROUP", Name: "a"},
	}
	for _, k := range keys {
		s.Register(k, inst("10.0.0.1", 80, "DEFAULT"))
	}
	all := s.Services("")
	wantAll := []naming.ServiceKey{keys[1], keys[3], keys[2], keys[0]}
	if !reflect.DeepEqual(all, wantAll) {
		t.Fatalf("Services(\"\") = %v, want %v", all, wantAll)
	}
	pub := s.Services("public")
	wantPub := []naming.ServiceKey{keys[3], keys[2], keys[0]}
	if !reflect.DeepEqual(pub, wantPub) {
		t.Fatalf("Services(public) = %v, want %v", pub, wantPub)
	}
	if got := s.Services("nope"); got == nil || len(got) != 0 {
		t.Fatalf("Services(nope) = %#v, want empty non-nil", got)
	}

	pub[0].Name = "mutated"
	if again := s.Services("public"); !reflect.DeepEqual(again, wantPub) {
		t.Fatalf("mutating a listing changed the store: %v", again)
	}
}

func TestDeregister(t *testing.T) {
	s, _ := newTestStore(t)
	s.Register(svcA, inst("10.0.0.1", 8080, "DEFAULT"))
	s.Register(svcA, inst("10.0.0.1", 8080, "OTHER"))
	if !s.Deregister(svcA, "10.0.0.1", 8080, "DEFAULT") {
		t.Fatal("Deregister of a present instance = false")
	}
	if s.Deregister(svcA, "10.0.0.1", 8080, "DEFAULT") {
		t.Fatal("second Deregister = true")
	}
	if s.Deregister(naming.ServiceKey{Name: "none"}, "10.0.0.1", 8080, "DEFAULT") {
		t.Fatal("Deregister in an unknown service = true")
	}
	if _, ok := s.Instance(svcA, "10.0.0.1#8080#DEFAULT"); ok {
		t.Fatal("deregistered instance still present")
	}
	if _, ok := s.Instance(svcA, "10.0.0.1#8080#OTHER"); !ok {
		t.Fatal("instance in the other cluster went too")
	}
	if svc, n := s.Counts(); svc != 1 || n != 1 {
		t.Fatalf("Counts = %d, %d; want 1, 1", svc, n)
	}
}

func TestBeat(t *testing.T) {
	s, clk := newTestStore(t)
	s.Register(svcA, inst("10.0.0.1", 8080, "DEFAULT"))

	if _, ok := s.Beat(svcA, "10.0.0.1", 8081, "DEFAULT"); ok {
		t.Fatal("beat for another port found an instance")
	}
	if _, ok := s.Beat(svcA, "10.0.0.1", 8080, "OTHER"); ok {
		t.Fatal("beat for another cluster found an instance")
	}
	if _, ok := s.Beat(naming.ServiceKey{Name: "none"}, "10.0.0.1", 8080, "DEFAULT"); ok {
		t.Fatal("beat in an unknown service found an instance")
	}

	// Beats every 5 s keep the instance healthy far beyond both timeouts.
	for range 20 {
		clk.Advance(5 * time.Second)
		got, ok := s.Beat(svcA, "10.0.0.1", 8080, "DEFAULT")
		if !ok || !got.Healthy {
			t.Fatalf("beat = %+v, %v", got, ok)
		}
		got.Metadata["k"] = "mutated" // a copy
		check(s, clk)
	}
	if got := mustInstance(t, s, svcA, "10.0.0.1#8080#DEFAULT"); !got.Healthy || got.Metadata["k"] != "v" {
		t.Fatalf("after beats: %+v", got)
	}
}

func TestBeatRestoresHealth(t *testing.T) {
	s, clk := newTestStore(t)
	s.Register(svcA, inst("10.0.0.1", 8080, "DEFAULT"))
	log := watch(s)

	clk.Advance(20 * time.Second)
	check(s, clk)
	if mustInstance(t, s, svcA, "10.0.0.1#8080#DEFAULT").Healthy {
		t.Fatal("instance still healthy 20 s after its last beat")
	}
	log.expectCalls(t, "unhealthy", svcA, 1)

	got, ok := s.Beat(svcA, "10.0.0.1", 8080, "DEFAULT")
	if !ok || !got.Healthy {
		t.Fatalf("beat on an unhealthy instance = %+v, %v; want healthy", got, ok)
	}
	log.expectCalls(t, "beat flip", svcA, 1)
	if !mustInstance(t, s, svcA, "10.0.0.1#8080#DEFAULT").Healthy {
		t.Fatal("stored instance still unhealthy after a beat")
	}

	// The beat restarted the clocks: 29 s after it the instance is unhealthy but present.
	clk.Advance(29 * time.Second)
	check(s, clk)
	if got, ok := s.Instance(svcA, "10.0.0.1#8080#DEFAULT"); !ok || got.Healthy {
		t.Fatalf("29 s after the beat: %+v, %v; want present and unhealthy", got, ok)
	}
	// A healthy beat does not notify; this one flips again and does.
	log.take()
	if _, ok := s.Beat(svcA, "10.0.0.1", 8080, "DEFAULT"); !ok {
		t.Fatal("beat failed")
	}
	if _, ok := s.Beat(svcA, "10.0.0.1", 8080, "DEFAULT"); !ok {
		t.Fatal("beat failed")
	}
	log.expectCalls(t, "one flip, one plain beat", svcA, 1)
}

func TestUpdate(t *testing.T) {
	s, clk := newTestStore(t)
	s.Register(svcA, inst("10.0.0.1", 8080, "DEFAULT"))
	log := watch(s)

	if s.Update(svcA, "10.0.0.9#8080#DEFAULT", func(*naming.Instance) { t.Fatal("fn called for a missing instance") }) {
		t.Fatal("Update of a missing instance = true")
	}
	ok := s.Update(svcA, "10.0.0.1#8080#DEFAULT", func(i *naming.Instance) {
		i.Weight = 5
		i.Enabled = false
		i.Metadata[naming.MetaHeartBeatTimeout] = "3000"
		// Identity is not editable.
		i.IP, i.Port, i.ClusterName = "1.2.3.4", 1, "X"
	})
	if !ok {
		t.Fatal("Update of a present instance = false")
	}
	log.expectCalls(t, "update", svcA, 1)
	got := mustInstance(t, s, svcA, "10.0.0.1#8080#DEFAULT")
	if got.Weight != 5 || got.Enabled || got.IP != "10.0.0.1" || got.Port != 8080 || got.ClusterName != "DEFAULT" {
		t.Fatalf("after Update: %+v", got)
	}
	if _, n := s.Counts(); n != 1 {
		t.Fatalf("Update changed the count: %d", n)
	}

	// A no-op update does not notify.
	s.Update(svcA, "10.0.0.1#8080#DEFAULT", func(i *naming.Instance) { i.Weight = 5 })
	log.expectCalls(t, "no-op update", svcA, 0)

	// The new preserved.heart.beat.timeout applies; Update is not a beat.
	clk.Advance(3 * time.Second)
	check(s, clk)
	if mustInstance(t, s, svcA, "10.0.0.1#8080#DEFAULT").Healthy {
		t.Fatal("updated heart beat timeout (3 s) not applied")
	}
}

func TestOnChangeForEveryKindOfChange(t *testing.T) {
	s, clk := newTestStore(t)
	first, second := watch(s), watch(s)
	both := func(what string, n int) {
		t.Helper()
		first.expectCalls(t, what+" (first callback)", svcA, n)
		second.expectCalls(t, what+" (second callback)", svcA, n)
	}

	s.Register(svcA, inst("10.0.0.1", 8080, "DEFAULT"))
	both("register", 1)
	s.Register(svcA, inst("10.0.0.1", 8080, "DEFAULT"))
	both("identical re-register", 0)
	changed := inst("10.0.0.1", 8080, "DEFAULT")
	changed.Weight = 2
	s.Register(svcA, changed)
	both("changed re-register", 1)
	s.Update(svcA, "10.0.0.1#8080#DEFAULT", func(i *naming.Instance) { i.Metadata["x"] = "y" })
	both("update", 1)
	s.Beat(svcA, "10.0.0.1", 8080, "DEFAULT")
	both("healthy beat", 0)

	clk.Advance(15 * time.Second)
	check(s, clk)
	both("expiry: unhealthy", 1)
	check(s, clk)
	both("expiry: nothing more", 0)
	s.Beat(svcA, "10.0.0.1", 8080, "DEFAULT")
	both("beat: healthy again", 1)

	clk.Advance(30 * time.Second)
	check(s, clk)
	both("expiry: removed", 1)

	s.Register(svcA, inst("10.0.0.2", 8080, "DEFAULT"))
	both("register", 1)
	s.Deregister(svcA, "10.0.0.2", 8080, "DEFAULT")
	both("deregister", 1)
	s.Deregister(svcA, "10.0.0.2", 8080, "DEFAULT")
	both("deregister of nothing", 0)

	clk.Advance(60 * time.Second)
	check(s, clk)
	both("empty service dropped", 1)
}

// Callbacks run without the store's locks: one that reads the store must not deadlock.
func TestOnChangeMayCallTheStore(t *testing.T) {
	s, clk := newTestStore(t)
	var seen []int
	s.OnChange(func(svc naming.ServiceKey) {
		seen = append(seen, len(s.Instances(svc)))
		s.HasService(svc)
		s.Services("")
		s.Instance(svc, "10.0.0.1#8080#DEFAULT")
	})

	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Register(svcA, inst("10.0.0.1", 8080, "DEFAULT"))
		s.Update(svcA, "10.0.0.1#8080#DEFAULT", func(i *naming.Instance) { i.Weight = 9 })
		clk.Advance(15 * time.Second)
		check(s, clk)
		s.Beat(svcA, "10.0.0.1", 8080, "DEFAULT")
		clk.Advance(30 * time.Second)
		check(s, clk)
		s.Register(svcA, inst("10.0.0.1", 8080, "DEFAULT"))
		s.Deregister(svcA, "10.0.0.1", 8080, "DEFAULT")
		clk.Advance(60 * time.Second)
		check(s, clk)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("a callback that reads the store deadlocked: callbacks run under a lock")
	}
	want := []int{1, 1, 1, 1, 0, 1, 0, 0}
	if !reflect.DeepEqual(seen, want) {
		t.Fatalf("instances seen by callbacks = %v, want %v", seen, want)
	}
}

func TestConfigDefaultsAndValidate(t *testing.T) {
	s := New(Config{})
	if s.cfg.Timing != naming.DefaultTiming() || s.cfg.CheckInterval != DefaultCheckInterval ||
		s.cfg.EmptyServiceTTL != DefaultEmptyServiceTTL || s.cfg.Clock == nil || s.cfg.Logger == nil {
		t.Fatalf("defaults not applied: %+v", s.cfg)
	}
	if got := New(Config{CheckInterval: 5 * time.Second}).cfg.CheckInterval; got != MaxCheckInterval {
		t.Fatalf("CheckInterval 5s became %v, want clamped to %v", got, MaxCheckInterval)
	}
	if err := (Config{}).Validate(); err != nil {
		t.Fatalf("zero Config: %v", err)
	}
	for _, bad := range []Config{
		{CheckInterval: 2 * time.Second},
		{CheckInterval: -1},
		{EmptyServiceTTL: -1},
		{Timing: naming.Timing{HeartBeatTimeout: -1}},
	} {
		if err := bad.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil, want an error", bad)
		}
	}
}

func TestStartStop(t *testing.T) {
	s, _ := newTestStore(t)
	s.Stop() // before Start: nothing to wait for
	s.Start()
	s.Stop()

	s2, _ := newTestStore(t)
	s2.Start()
	s2.Start()
	done := make(chan struct{})
	go func() {
		s2.Stop()
		s2.Stop()
		close(done)
	}()
	s2.Stop()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Stop did not return")
	}
	s2.Start() // after Stop: does nothing, and there is nothing to stop again
	s2.Stop()
}

func TestTouch(t *testing.T) {
	s, clk := newTestStore(t)
	s.Register(svcA, inst("10.0.0.1", 8080, "DEFAULT"))
	custom := inst("10.0.0.2", 8080, "DEFAULT")
	custom.Metadata[naming.MetaHeartBeatInterval] = "1000"
	s.Register(svcA, custom)
	log := watch(s)

	if _, ok := s.Touch(svcA, "10.0.0.3", 8080, "DEFAULT"); ok {
		t.Fatal("Touch of a missing instance = true")
	}
	if d, ok := s.Touch(svcA, "10.0.0.1", 8080, "DEFAULT"); !ok || d != 5*time.Second {
		t.Fatalf("Touch = %v, %v; want the default 5s interval", d, ok)
	}
	if d, ok := s.Touch(svcA, "10.0.0.2", 8080, "DEFAULT"); !ok || d != time.Second {
		t.Fatalf("Touch = %v, %v; want the preserved 1s interval", d, ok)
	}
	log.expectCalls(t, "healthy touches", svcA, 0)

	// Touch is a beat: it keeps the instance alive and brings it back to health.
	clk.Advance(14 * time.Second)
	s.Touch(svcA, "10.0.0.1", 8080, "DEFAULT")
	clk.Advance(14 * time.Second)
	check(s, clk)
	if !mustInstance(t, s, svcA, "10.0.0.1#8080#DEFAULT").Healthy {
		t.Fatal("Touch did not record a beat")
	}
	log.expectCalls(t, "10.0.0.2 unhealthy", svcA, 1)
	if _, ok := s.Touch(svcA, "10.0.0.2", 8080, "DEFAULT"); !ok {
		t.Fatal("Touch failed")
	}
	log.expectCalls(t, "touch flip", svcA, 1)
	if !mustInstance(t, s, svcA, "10.0.0.2#8080#DEFAULT").Healthy {
		t.Fatal("Touch did not restore health")
	}
}
