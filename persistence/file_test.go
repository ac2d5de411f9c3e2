package persistence

import (
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/roster-registry/roster/naming"
)

var updateGolden = flag.Bool("update", false, "rewrite the current version's golden snapshot, testdata/snapshot/v4.snap")

// goldenSnapshot is a version-1 snapshot file kept in the repository: every later build
// must read it (formats are only ever added, never changed in place). v2.snap,
// v3.snap and v4.snap are the files of the later versions; only the current version's file is ever
// rewritten (-update), the older ones are frozen as their builds wrote them.
var goldenSnapshot = filepath.Join("..", "testdata", "snapshot", "v1.snap")

func TestVerifyStreamDescribesTheStream(t *testing.T) {
	src := openStore(t, "")
	src.SetNodeID("node-7")
	populate(t, src, 7, 3)
	good, hdr := snapshotBytes(t, src)
	for _, tt := range []struct {
		name string
		r    io.Reader
	}{
		{"plain", bytes.NewReader(good)},
		{"one byte at a time", iotest.OneByteReader(bytes.NewReader(good))},
		{"half reads", iotest.HalfReader(bytes.NewReader(good))},
	} {
		info, err := VerifyStream(tt.r)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if info.Size != int64(len(good)) || info.SHA256 != hex.EncodeToString(good[len(good)-32:]) {
			t.Errorf("%s: size %d sha %s, want %d %x", tt.name, info.Size, info.SHA256, len(good), good[len(good)-32:])
		}
		if info.Index != 7 || info.Term != 3 || info.NodeID != "node-7" || info.Services != hdr.Services || info.Instances != hdr.Instances {
			t.Errorf("%s: header %+v, want %+v", tt.name, info.Header, hdr)
		}
	}
}

func TestVerifyFileNamesTheFileAndTheProblem(t *testing.T) {
	src := openStore(t, "")
	populate(t, src, 7, 3)
	good, _ := snapshotBytes(t, src)
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	flipped := append([]byte(nil), good...)
	flipped[len(flipped)-32-3] ^= 0x10 // inside the last record
	version := append([]byte(nil), good...)
	version[11] = 9
	for _, tt := range []struct {
		name string
		data []byte
		want error
		text string
	}{
		{"truncated.snap", good[:len(good)-40], ErrSnapshotTruncated, "truncated"},
		{"flipped.snap", flipped, ErrSnapshotChecksum, "checksum mismatch"},
		{"magic.snap", append([]byte("NOTROSTR"), good[8:]...), ErrSnapshotMagic, "bad magic"},
		{"version.snap", version, ErrSnapshotVersion, "unsupported format version 9"},
		{"empty.snap", nil, ErrSnapshotTruncated, "truncated"},
	} {
		p := write(tt.name, tt.data)
		_, err := VerifyFile(p)
		if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), tt.text) {
			t.Errorf("%s: VerifyFile = %v, want %v naming the file and saying %q", tt.name, err, tt.want, tt.text)
		}
	}
	if _, err := VerifyFile(filepath.Join(dir, "missing.snap")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	if _, err := VerifyFile(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory: %v", err)
	}
	info, err := VerifyFile(write("good.snap", good))
	if err != nil || info.Size != int64(len(good)) {
		t.Errorf("good file: %+v %v", info, err)
	}
}

// TestGoldenV1Snapshot reads the version-1 file kept in testdata (written by populate
// with a version-1 build) and restores it to exactly populate's state.
func TestGoldenV1Snapshot(t *testing.T) {
	want := openStore(t, "")
	want.SetNodeID("golden")
	populate(t, want, 7, 3)
	info, err := VerifyFile(goldenSnapshot)
	if err != nil {
		t.Fatal(err)
	}
	if info.FormatVersion != 1 || info.Index != 7 || info.Term != 3 || info.NodeID != "golden" ||
		info.Namespaces != 3 || info.Services != 3 || info.Instances != 7 {
		t.Errorf("golden header = %+v", info)
	}
	f, err := os.Open(goldenSnapshot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := openStore(t, "")
	if err := got.Restore(f); err != nil {
		t.Fatal(err)
	}
	if g, w := dump(t, got), dump(t, want); !reflect.DeepEqual(g, w) {
		t.Errorf("golden restores to\n %+v\nwant\n %+v", g, w)
	}
}

// TestCheckFindsDamageOpenMisses damages a closed store in ways Open does not notice
// (it reads only the meta pages and the applied index): Check must refuse each, naming
// the file, and accept the intact store.
func TestCheckFindsDamageOpenMisses(t *testing.T) {
	build := func(t *testing.T) string {
		s := openStore(t, "")
		populate(t, s, 7, 3)
		if err := s.Check(); err != nil {
			t.Fatalf("Check of an intact store: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		return s.Path()
	}
	tests := []struct {
		name   string
		damage func(t *testing.T, path string)
		want   string
	}{
		{"a byte of a record", func(t *testing.T, path string) {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			i := bytes.Index(b, []byte(`"ip":"10.0.0.1"`))
			if i < 0 {
				t.Fatal("instance record not found in the file")
			}
			b[i] = '#' // one byte: the record no longer decodes
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}, "corrupt"},
		{"a counter", func(t *testing.T, path string) {
			setMeta(t, path, keyInstanceCount, u64(3))
		}, "counters say"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := build(t)
			tt.damage(t, path)
			s, err := Open(path, Options{})
			if err != nil {
				t.Fatalf("Open refused it already (%v); pick damage that only Check sees", err)
			}
			defer s.Close()
			err = s.Check()
			if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Check = %v, want an error naming %s and saying %q", err, path, tt.want)
			}
		})
	}
}

// goldenAuthDoc is the access-control document of the version-2 and version-3 golden
// files.
var goldenAuthDoc = []byte(`{"users":{"admin":{"hash":"x"}}}`)

// TestGoldenV2Snapshot reads the version-2 file kept in testdata (written by a version-2
// build: populate at index 7, then an auth document at 8) and restores it to exactly
// that state, every instance with the zero stamp.
func TestGoldenV2Snapshot(t *testing.T) {
	path := filepath.Join("..", "testdata", "snapshot", "v2.snap")
	want := openStore(t, "")
	populate(t, want, 7, 3)
	update(t, want, 8, func(tx *Tx) error { return tx.PutAuthState(goldenAuthDoc) })
	info, err := VerifyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.FormatVersion != 2 || info.Index != 8 || info.Term != 1 || info.NodeID != "golden" ||
		info.Namespaces != 3 || info.Services != 3 || info.Instances != 7 {
		t.Errorf("golden header = %+v", info)
	}
	got := restoreFile(t, path)
	if g, w := dump(t, got), dump(t, want); !reflect.DeepEqual(g, w) {
		t.Errorf("golden restores to\n %+v\nwant\n %+v", g, w)
	}
	if doc := authOf(t, got); !bytes.Equal(doc, goldenAuthDoc) {
		t.Errorf("auth state = %s, want %s", doc, goldenAuthDoc)
	}
	for k, st := range stampsOf(t, got) {
		if st != (Stamp{}) {
			t.Errorf("%s restored from a version-2 file with stamp %+v", k, st)
		}
	}
	// A store restored from an old file keeps working and stamps what it writes.
	update(t, got, 9, func(tx *Tx) error {
		return tx.PutInstanceStamped(key("public", "DEFAULT_GROUP", "orders"), inst("10.0.0.1", 8080, "DEFAULT"), Stamp{Revision: 9})
	})
	if st := stampsOf(t, got)["public##DEFAULT_GROUP@@orders/10.0.0.1#8080#DEFAULT"]; st.Revision != 9 {
		t.Errorf("stamp after a write = %+v", st)
	}
}

// TestGoldenV3Snapshot reads the version-3 file kept in testdata (written by a
// version-3 build from populateStamped) and restores it with its stamps and health
// checkers, and without namespace records.
func TestGoldenV3Snapshot(t *testing.T) {
	path := filepath.Join("..", "testdata", "snapshot", "v3.snap")
	want := openStore(t, "")
	want.SetNodeID("golden")
	populateStamped(t, want, 7, 3)
	info, err := VerifyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.FormatVersion != 3 || info.Index != 8 || info.Term != 3 || info.NodeID != "golden" ||
		info.Namespaces != 3 || info.Services != 4 || info.Instances != 9 {
		t.Errorf("golden header = %+v", info)
	}
	got := restoreFile(t, path)
	if g, w := dump(t, got), dump(t, want); !reflect.DeepEqual(g, w) {
		t.Errorf("golden restores to\n %+v\nwant\n %+v", g, w)
	}
	if g, w := stampsOf(t, got), stampsOf(t, want); !reflect.DeepEqual(g, w) {
		t.Errorf("stamps restored as %v, want %v", g, w)
	}
	if doc := authOf(t, got); !bytes.Equal(doc, goldenAuthDoc) {
		t.Errorf("auth state = %s, want %s", doc, goldenAuthDoc)
	}
}

// goldenNamespaces are the namespace records of the version-4 golden file.
func goldenNamespaces() []*naming.Namespace {
	zero, five := 0, 5
	return []*naming.Namespace{
		{ID: "dev", Name: "Development", Desc: "the dev team's services", MaxServices: &five},
		{ID: "empty", Name: "empty"},
		{ID: "prod", Name: "Production", MaxServices: &zero, MaxInstances: &five},
	}
}

// TestGoldenV4Snapshot reads the current version's file (populateStamped and the
// namespace records; regenerate with go test ./persistence -run TestGoldenV4Snapshot
// -update) and restores it with its namespace records.
func TestGoldenV4Snapshot(t *testing.T) {
	path := filepath.Join("..", "testdata", "snapshot", "v4.snap")
	want := openStore(t, "")
	want.SetNodeID("golden")
	populateStamped(t, want, 7, 3)
	update(t, want, 9, func(tx *Tx) error {
		for _, n := range goldenNamespaces() {
			if err := tx.PutNamespaceRecord(n); err != nil {
				return err
			}
		}
		return nil
	})
	if *updateGolden {
		b, _ := snapshotBytes(t, want)
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	info, err := VerifyFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./persistence -run %s -update to create it)", err, t.Name())
	}
	if info.FormatVersion != 4 || info.Index != 9 || info.Term != 1 || info.NodeID != "golden" ||
		info.Namespaces != 3 || info.Services != 4 || info.Instances != 9 {
		t.Errorf("golden header = %+v", info)
	}
	got := restoreFile(t, path)
	if g, w := dump(t, got), dump(t, want); !reflect.DeepEqual(g, w) {
		t.Errorf("golden restores to\n %+v\nwant\n %+v", g, w)
	}
	if g, w := namespacesOf(t, got), goldenNamespaces(); !reflect.DeepEqual(g, w) {
		t.Errorf("namespace records restored as %+v, want %+v", g, w)
	}
	if doc := authOf(t, got); !bytes.Equal(doc, goldenAuthDoc) {
		t.Errorf("auth state = %s, want %s", doc, goldenAuthDoc)
	}
	// A restore from an older file has no namespace records, and replaces any there were.
	old := restoreFile(t, filepath.Join("..", "testdata", "snapshot", "v3.snap"))
	if n := namespacesOf(t, old); len(n) != 0 {
		t.Errorf("restored from v3: namespace records %+v", n)
	}
	f, err := os.Open(filepath.Join("..", "testdata", "snapshot", "v3.snap"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := got.Restore(f); err != nil {
		t.Fatal(err)
	}
	if n := namespacesOf(t, got); len(n) != 0 {
		t.Errorf("v4 store restored over with v3: namespace records %+v", n)
	}
}

func namespacesOf(t *testing.T, s *Store) []*naming.Namespace {
	t.Helper()
	var out []*naming.Namespace
	if err := s.View(func(tx *Tx) error {
		var err error
		out, err = tx.NamespaceRecords()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// populateStamped is populate at (index, term) and then, at index+1, what version 3
// added: a service whose clusters have every kind of checker, and instances stamped as
// the FSM stamps them.
func populateStamped(t *testing.T, s *Store, index, term uint64) {
	t.Helper()
	populate(t, s, index, term)
	err := s.Update(index+1, term, func(tx *Tx) error {
		checks := naming.NewService(key("public", "G", "checks"), false)
		checks.Clusters = map[string]*naming.Cluster{
			"grpc": {Name: "grpc", HealthChecker: naming.HealthChecker{Type: naming.CheckerGRPC, Service: "pkg.Orders"},
				Metadata: map[string]string{}, CheckPort: 9090, UseInstancePort: false},
			"http": {Name: "http", HealthChecker: naming.HealthChecker{Type: naming.CheckerHTTP, Path: "/health", Headers: "A:b|C:d", ExpectedResponseCode: 200},
				Metadata: map[string]string{"m": "1"}, CheckPort: 80, UseInstancePort: true},
			"manual": {Name: "manual", HealthChecker: naming.HealthChecker{Type: naming.CheckerNone}, Metadata: map[string]string{}, CheckPort: 80, UseInstancePort: true},
		}
		if err := tx.PutService(checks); err != nil {
			return err
		}
		if err := tx.PutInstanceStamped(checks.Key, inst("10.2.0.1", 9090, "grpc"), Stamp{Revision: index + 1, FlipEpoch: 4}); err != nil {
			return err
		}
		if err := tx.PutInstanceStamped(checks.Key, inst("10.2.0.2", 80, "http"), Stamp{Revision: 5}); err != nil {
			return err
		}
		return tx.PutAuthState(goldenAuthDoc)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func restoreFile(t *testing.T, path string) *Store {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := openStore(t, "")
	if err := s.Restore(f); err != nil {
		t.Fatal(err)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	return s
}

func authOf(t *testing.T, s *Store) []byte {
	t.Helper()
	var doc []byte
	if err := s.View(func(tx *Tx) error { doc = tx.AuthState(); return nil }); err != nil {
		t.Fatal(err)
	}
	return doc
}

// stampsOf maps "namespace##G@@S/instance key" to each instance's stamp.
func stampsOf(t *testing.T, s *Store) map[string]Stamp {
	t.Helper()
	out := map[string]Stamp{}
	err := s.View(func(tx *Tx) error {
		return tx.ForEachInstance(func(k naming.ServiceKey, in *naming.Instance) error {
			got, st, err := tx.InstanceStamped(k, in.Key())
			if err != nil || got == nil {
				return fmt.Errorf("InstanceStamped(%s, %s) = %v, %v", k, in.Key(), got, err)
			}
			if !reflect.DeepEqual(got, in) {
				return fmt.Errorf("InstanceStamped(%s) = %+v, Instance = %+v", in.Key(), got, in)
			}
			out[k.String()+"/"+in.Key()] = st
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
