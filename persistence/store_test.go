package persistence

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/roster-registry/roster/naming"
)

func key(ns, group, name string) naming.ServiceKey {
	return naming.ServiceKey{Namespace: ns, Group: group, Name: name}
}

func inst(ip string, port int, cluster string) *naming.Instance {
	return &naming.Instance{IP: ip, Port: port, ClusterName: cluster, Weight: 1, Healthy: true, Enabled: true}
}

func openStore(t *testing.T, path string) *Store {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "fsm.db")
	}
	s, err := Open(path, Options{OpenTimeout: 100 * time.Millisecond, InitialMmapSize: 1 << 20})
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func update(t *testing.T, s *Store, index uint64, fn func(tx *Tx) error) {
	t.Helper()
	if err := s.Update(index, 1, fn); err != nil {
		t.Fatalf("update at %d: %v", index, err)
	}
}

// state is everything a store holds, for comparisons.
type state struct {
	Index, Term         uint64
	Services            []*naming.Service
	Instances           map[naming.ServiceKey][]*naming.Instance
	NServices, NInstans int
	Namespaces          []string
}

func dump(t *testing.T, s *Store) state {
	t.Helper()
	st := state{Instances: map[naming.ServiceKey][]*naming.Instance{}}
	st.Index, st.Term = s.Applied()
	err := s.View(func(tx *Tx) error {
		var err error
		if st.Services, err = tx.Services(""); err != nil {
			return err
		}
		if err := tx.ForEachInstance(func(k naming.ServiceKey, in *naming.Instance) error {
			st.Instances[k] = append(st.Instances[k], in)
			return nil
		}); err != nil {
			return err
		}
		if st.NServices, st.NInstans, err = tx.Counts(); err != nil {
			return err
		}
		st.Namespaces, err = tx.Namespaces()
		return err
	})
	if err != nil {
		t.Fatalf("dump: %v", err)
	}
	return st
}

func TestServiceCRUD(t *testing.T) {
	s := openStore(t, "")
	a := naming.NewService(key("public", "DEFAULT_GROUP", "orders"), false)
	a.ProtectThreshold = 0.5
	a.Metadata = map[string]string{"team": "core"}
	a.Selector = naming.Selector{Type: "label", Expression: "CONSUMER.label.a = PROVIDER.label.a"}
	a.Clusters = map[string]*naming.Cluster{"DEFAULT": {
		Name: "DEFAULT", HealthChecker: naming.HealthChecker{Type: "HTTP", Path: "/health", ExpectedResponseCode: 200},
		Metadata: map[string]string{"k": "v"}, CheckPort: 80, UseInstancePort: true,
	}}
	b := naming.NewService(key("public", "DEFAULT_GROUP", "users"), true)

	steps := []struct {
		name      string
		fn        func(tx *Tx) error
		check     naming.ServiceKey
		want      *naming.Service
		nServices int
	}{
		{"create a", func(tx *Tx) error { return tx.PutService(a) }, a.Key, a, 1},
		{"create b", func(tx *Tx) error { return tx.PutService(b) }, b.Key, b, 2},
		{"overwrite a keeps count", func(tx *Tx) error {
			c := a.Clone()
			c.ProtectThreshold = 0.9
			return tx.PutService(c)
		}, a.Key, func() *naming.Service { c := a.Clone(); c.ProtectThreshold = 0.9; return c }(), 2},
		{"delete b", func(tx *Tx) error { return tx.DeleteService(b.Key) }, b.Key, nil, 1},
		{"delete absent is fine", func(tx *Tx) error { return tx.DeleteService(b.Key) }, b.Key, nil, 1},
	}
	for i, step := range steps {
		update(t, s, uint64(i+1), step.fn)
		err := s.View(func(tx *Tx) error {
			got, err := tx.Service(step.check)
			if err != nil {
				return err
			}
			if !reflect.DeepEqual(got, step.want) {
				t.Errorf("%s: service = %+v, want %+v", step.name, got, step.want)
			}
			n, _, err := tx.Counts()
			if n != step.nServices {
				t.Errorf("%s: services count = %d, want %d", step.name, n, step.nServices)
			}
			return err
		})
		if err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
	}
	if idx, term := s.Applied(); idx != uint64(len(steps)) || term != 1 {
		t.Errorf("Applied() = %d, %d; want %d, 1", idx, term, len(steps))
	}
}

func TestInstanceCRUD(t *testing.T) {
	s := openStore(t, "")
	svc := key("public", "G", "S")
	other := key("public", "G", "S2")
	x := inst("10.0.0.1", 80, "DEFAULT")
	x.Metadata = map[string]string{"zone": "a"}
	y := inst("10.0.0.2", 80, "DEFAULT")
	z := inst("10.0.0.1", 80, "OTHER")

	update(t, s, 1, func(tx *Tx) error {
		for _, in := range []*naming.Instance{y, x, z} {
			if err := tx.PutInstance(svc, in); err != nil {
				return err
			}
		}
		return tx.PutInstance(other, x)
	})
	err := s.View(func(tx *Tx) error {
		got, err := tx.Instances(svc)
		if err != nil {
			return err
		}
		want := []*naming.Instance{x, z, y} // by Key(): 10.0.0.1#80#DEFAULT < 10.0.0.1#80#OTHER < 10.0.0.2#80#DEFAULT
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Instances = %v, want %v", got, want)
		}
		one, err := tx.Instance(svc, x.Key())
		if err != nil || !reflect.DeepEqual(one, x) {
			t.Errorf("Instance(%s) = %+v, %v", x.Key(), one, err)
		}
		none, err := tx.Instance(svc, "10.9.9.9#1#DEFAULT")
		if err != nil || none != nil {
			t.Errorf("absent Instance = %+v, %v; want nil, nil", none, err)
		}
		none, err = tx.Instance(key("public", "G", "nope"), x.Key())
		if err != nil || none != nil {
			t.Errorf("Instance of absent service = %+v, %v; want nil, nil", none, err)
		}
		_, n, err := tx.Counts()
		if n != 4 {
			t.Errorf("instances count = %d, want 4", n)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}

	// The returned copy is the caller's: changing it changes nothing stored.
	update(t, s, 2, func(tx *Tx) error {
		got, err := tx.Instance(svc, x.Key())
		if err != nil {
			return err
		}
		got.Metadata["zone"] = "changed"
		got.Weight = 5
		return tx.PutInstance(svc, got) // overwrite: count unchanged
	})
	update(t, s, 3, func(tx *Tx) error {
		for _, c := range []struct {
			k    naming.ServiceKey
			ik   string
			want bool
		}{{svc, y.Key(), true}, {svc, y.Key(), false}, {key("x", "y", "z"), "a#1#b", false}} {
			ok, err := tx.DeleteInstance(c.k, c.ik)
			if err != nil {
				return err
			}
			if ok != c.want {
				t.Errorf("DeleteInstance(%s, %s) = %v, want %v", c.k, c.ik, ok, c.want)
			}
		}
		return nil
	})
	st := dump(t, s)
	if st.NInstans != 3 {
		t.Errorf("instances count = %d, want 3", st.NInstans)
	}
	if got := st.Instances[svc][0]; got.Weight != 5 || got.Metadata["zone"] != "changed" {
		t.Errorf("overwritten instance = %+v", got)
	}

	// DeleteService takes the instances with it and fixes the counter.
	update(t, s, 4, func(tx *Tx) error { return tx.DeleteService(svc) })
	st = dump(t, s)
	if st.NInstans != 1 || len(st.Instances[svc]) != 0 || len(st.Instances[other]) != 1 {
		t.Errorf("after DeleteService: count %d, instances %v", st.NInstans, st.Instances)
	}
	// Deleting the last instance drops the per-service bucket but keeps the record.
	update(t, s, 5, func(tx *Tx) error {
		if err := tx.PutService(naming.NewService(other, false)); err != nil {
			return err
		}
		_, err := tx.DeleteInstance(other, x.Key())
		return err
	})
	st = dump(t, s)
	if st.NInstans != 0 || len(st.Instances) != 0 || st.NServices != 1 {
		t.Errorf("after last delete: %+v", st)
	}
}

func TestServicesSortedAndByNamespace(t *testing.T) {
	s := openStore(t, "")
	// Names whose bytes would collide under a naive separator, a NUL, a prefix of another
	// namespace, and a namespace that sorts between them.
	keys := []naming.ServiceKey{
		key("ns", "G", "b"),
		key("ns", "G", "a"),
		key("ns", "G@@x", "y"),
		key("ns", "G", "@@x@@y"),
		key("ns\x00", "G", "a"),
		key("nsx", "G", "a"),
		key("n", "s", "a"),
		key("ns", "G\x00", "a"),
		key("", "G", "a"),
	}
	update(t, s, 1, func(tx *Tx) error {
		for _, k := range keys {
			if err := tx.PutService(naming.NewService(k, false)); err != nil {
				return err
			}
			if err := tx.PutInstance(k, inst("1.1.1.1", 1, "C")); err != nil {
				return err
			}
		}
		return nil
	})
	names := func(list []*naming.Service) []naming.ServiceKey {
		var out []naming.ServiceKey
		for _, svc := range list {
			out = append(out, svc.Key)
		}
		return out
	}
	tests := []struct {
		ns   string
		want []naming.ServiceKey
	}{
		{"ns", []naming.ServiceKey{key("ns", "G", "@@x@@y"), key("ns", "G", "a"), key("ns", "G", "b"), key("ns", "G\x00", "a"), key("ns", "G@@x", "y")}},
		{"ns\x00", []naming.ServiceKey{key("ns\x00", "G", "a")}},
		{"n", []naming.ServiceKey{key("n", "s", "a")}},
		{"absent", nil},
		{"", []naming.ServiceKey{
			key("", "G", "a"), key("n", "s", "a"),
			key("ns", "G", "@@x@@y"), key("ns", "G", "a"), key("ns", "G", "b"), key("ns", "G\x00", "a"), key("ns", "G@@x", "y"),
			key("ns\x00", "G", "a"), key("nsx", "G", "a"),
		}},
	}
	for _, tt := range tests {
		err := s.View(func(tx *Tx) error {
			got, err := tx.Services(tt.ns)
			if err != nil {
				return err
			}
			if !reflect.DeepEqual(names(got), tt.want) {
				t.Errorf("Services(%q) = %q, want %q", tt.ns, names(got), tt.want)
			}
			for _, k := range tt.want {
				in, err := tx.Instances(k)
				if err != nil || len(in) != 1 {
					t.Errorf("Instances(%q) = %v, %v; want one", k, in, err)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	st := dump(t, s)
	if want := []string{"", "n", "ns", "ns\x00", "nsx"}; !reflect.DeepEqual(st.Namespaces, want) {
		t.Errorf("Namespaces = %q, want %q", st.Namespaces, want)
	}
	if st.NServices != len(keys) || st.NInstans != len(keys) {
		t.Errorf("Counts = %d, %d; want %d, %d", st.NServices, st.NInstans, len(keys), len(keys))
	}
}

func TestServiceKeyEncodingRoundTrip(t *testing.T) {
	for _, k := range []naming.ServiceKey{
		{}, key("a", "b", "c"), key("\x00", "\x00\x01", "\xff\x00\xff"), key("public", "DEFAULT_GROUP", "订单#1@x"),
	} {
		got, err := decodeServiceKey(encodeServiceKey(k))
		if err != nil || got != k {
			t.Errorf("decode(encode(%q)) = %q, %v", k, got, err)
		}
	}
	for _, bad := range [][]byte{nil, {0}, {'a', 0, 7}, {'a', 0, 1, 'b', 0, 1}, append(encodeServiceKey(key("a", "b", "c")), 'x')} {
		if _, err := decodeServiceKey(bad); err == nil {
			t.Errorf("decode(%q) succeeded", bad)
		}
	}
}

func TestUpdateRollsBackOnError(t *testing.T) {
	s := openStore(t, "")
	update(t, s, 3, func(tx *Tx) error { return tx.PutService(naming.NewService(key("p", "G", "a"), false)) })
	boom := errors.New("boom")
	err := s.Update(4, 2, func(tx *Tx) error {
		if err := tx.PutService(naming.NewService(key("p", "G", "b"), false)); err != nil {
			return err
		}
		if err := tx.PutInstance(key("p", "G", "b"), inst("1.1.1.1", 1, "C")); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update error = %v, want boom", err)
	}
	st := dump(t, s)
	if st.Index != 3 || st.Term != 1 || len(st.Services) != 1 || st.NServices != 1 || st.NInstans != 0 {
		t.Errorf("after failed update: %+v", st)
	}
}

func TestUpdateRefusesOlderIndex(t *testing.T) {
	s := openStore(t, "")
	update(t, s, 10, func(*Tx) error { return nil })
	update(t, s, 10, func(*Tx) error { return nil }) // equal is fine
	if err := s.Update(9, 1, func(*Tx) error { return nil }); err == nil {
		t.Fatal("Update at 9 after 10 succeeded")
	}
	if idx, _ := s.Applied(); idx != 10 {
		t.Errorf("Applied = %d, want 10", idx)
	}
}

func TestAppliedAndDataSurviveReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fsm.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	update(t, s, 42, func(tx *Tx) error {
		if err := tx.PutService(naming.NewService(key("p", "G", "a"), false)); err != nil {
			return err
		}
		return tx.PutInstance(key("p", "G", "a"), inst("1.1.1.1", 1, "C"))
	})
	before := dump(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.View(func(*Tx) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Errorf("View after Close = %v, want ErrClosed", err)
	}
	if err := s.Update(43, 1, func(*Tx) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Errorf("Update after Close = %v, want ErrClosed", err)
	}
	if _, err := s.OpenSnapshot(); !errors.Is(err, ErrClosed) {
		t.Errorf("OpenSnapshot after Close = %v, want ErrClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	s2 := openStore(t, path)
	if after := dump(t, s2); !reflect.DeepEqual(before, after) {
		t.Errorf("after reopen:\n got %+v\nwant %+v", after, before)
	}
}

func TestOpenLocked(t *testing.T) {
	s := openStore(t, "")
	start := time.Now()
	_, err := Open(s.Path(), Options{OpenTimeout: 50 * time.Millisecond})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
	if !strings.Contains(err.Error(), s.Path()) || !strings.Contains(err.Error(), "in use by another process") {
		t.Errorf("error %q does not name %s", err, s.Path())
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("second Open took %v", d)
	}
}

// setMeta rewrites a meta key of a closed store file directly with bbolt.
func setMeta(t *testing.T, path string, k, v []byte) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(k, v) })
	if err != nil {
		t.Fatal(err)
	}
}

func TestOpenRefusesBadFiles(t *testing.T) {
	dir := t.TempDir()
	newStore := func(t *testing.T, name string, fill int) string {
		path := filepath.Join(dir, name)
		s, err := Open(path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		update(t, s, 1, func(tx *Tx) error {
			for i := 0; i < fill; i++ {
				in := inst("10.0.0.1", i, "C")
				in.Metadata = map[string]string{"pad": strings.Repeat("x", 200)}
				if err := tx.PutInstance(key("p", "G", "a"), in); err != nil {
					return err
				}
			}
			return nil
		})
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		return path
	}
	tests := []struct {
		name    string
		prepare func(t *testing.T) string
		want    string
	}{
		{"newer format version", func(t *testing.T) string {
			p := newStore(t, "newer.db", 0)
			setMeta(t, p, keyFormat, u32(FormatVersion+1))
			return p
		}, "newer than this build supports"},
		{"bad applied record", func(t *testing.T) string {
			p := newStore(t, "applied.db", 0)
			setMeta(t, p, keyApplied, []byte{1, 2, 3})
			return p
		}, "corrupt"},
		{"garbage file", func(t *testing.T) string {
			p := filepath.Join(dir, "garbage.db")
			if err := os.WriteFile(p, []byte(strings.Repeat("not a bbolt file ", 1000)), 0o600); err != nil {
				t.Fatal(err)
			}
			return p
		}, ""},
		{"truncated file", func(t *testing.T) string {
			// bbolt preallocates, so the cut must fall below the pages in use
			// (about 1.7 MB here), not just below the file's length.
			p := newStore(t, "trunc.db", 2000)
			if err := os.Truncate(p, 256<<10); err != nil {
				t.Fatal(err)
			}
			return p
		}, ""},
		{"garbage pages", func(t *testing.T) string {
			// Meta pages intact (their checksums pass), everything after them scribbled
			// over: bbolt panics reading the freelist, which Open must turn into an error.
			p := newStore(t, "pages.db", 50)
			f, err := os.OpenFile(p, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			fi, err := f.Stat()
			if err != nil {
				t.Fatal(err)
			}
			page := int64(os.Getpagesize())
			if _, err := f.WriteAt([]byte(strings.Repeat("\xab", int(fi.Size()-2*page))), 2*page); err != nil {
				t.Fatal(err)
			}
			return p
		}, "corrupt"},
		{"foreign bbolt file", func(t *testing.T) string {
			p := filepath.Join(dir, "raft.db")
			db, err := bolt.Open(p, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("logs")); return err }); err != nil {
				t.Fatal(err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			return p
		}, "not a roster store"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.prepare(t)
			s, err := Open(path, Options{OpenTimeout: 100 * time.Millisecond})
			if err == nil {
				_ = s.Close()
				t.Fatal("Open succeeded")
			}
			t.Logf("Open: %v", err)
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the file", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
			// A failed Open must not leave the file locked: a second try fails the same
			// way, not with ErrLocked. (After a recovered bbolt panic the mapping, and
			// with it the lock, stays until the process exits; that case is skipped.)
			if tt.name == "garbage pages" {
				return
			}
			if _, err := Open(path, Options{OpenTimeout: 100 * time.Millisecond}); errors.Is(err, ErrLocked) {
				t.Errorf("second Open: %v", err)
			}
		})
	}
}

func TestOpenRemovesStaleRestoreFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fsm.db")
	stale := path + ".restore-123"
	if err := os.WriteFile(stale, []byte("half a restore"), 0o600); err != nil {
		t.Fatal(err)
	}
	openStore(t, path)
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale restore file still there: %v", err)
	}
}

func TestCountersDetectUnderflow(t *testing.T) {
	s := openStore(t, "")
	update(t, s, 1, func(tx *Tx) error { return tx.PutInstance(key("p", "G", "a"), inst("1.1.1.1", 1, "C")) })
	// Break the counter behind the store's back: a delete must then fail, not wrap.
	err := s.Update(2, 1, func(tx *Tx) error {
		if err := tx.meta().Put(keyInstanceCount, u64(0)); err != nil {
			return err
		}
		_, err := tx.DeleteInstance(key("p", "G", "a"), "1.1.1.1#1#C")
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("delete with broken counter = %v, want a corrupt error", err)
	}
	if st := dump(t, s); st.NInstans != 1 {
		t.Errorf("count after failed update = %d, want 1", st.NInstans)
	}
}
