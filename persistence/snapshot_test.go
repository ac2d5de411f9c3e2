package persistence

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/roster-registry/roster/naming"
)

// populate fills a store with services and instances in three namespaces, including an
// instance whose service has no record, at the given position.
func populate(t *testing.T, s *Store, index, term uint64) {
	t.Helper()
	err := s.Update(index, term, func(tx *Tx) error {
		orders := naming.NewService(key("public", "DEFAULT_GROUP", "orders"), false)
		orders.ProtectThreshold = 0.25
		orders.Metadata = map[string]string{"owner": "team-a", "tier": "1"}
		orders.Selector = naming.Selector{Type: "label", Expression: "CONSUMER.label.zone = PROVIDER.label.zone"}
		orders.Clusters = map[string]*naming.Cluster{
			"DEFAULT": {Name: "DEFAULT", HealthChecker: naming.HealthChecker{Type: "TCP"}, Metadata: map[string]string{}},
			"blue": {Name: "blue", HealthChecker: naming.HealthChecker{Type: "HTTP", Path: "/ok", Headers: "a|b", ExpectedResponseCode: 204},
				Metadata: map[string]string{"x": "y"}, CheckPort: 8081, UseInstancePort: false},
		}
		eph := naming.NewService(key("dev", "G", "cache"), true)
		odd := naming.NewService(key("dev", "G:x.y", "name#with@odd\x00bytes"), false)
		for _, svc := range []*naming.Service{orders, eph, odd} {
			if err := tx.PutService(svc); err != nil {
				return err
			}
		}
		for i := 0; i < 5; i++ {
			in := inst("10.0.0.1", 8080+i, "DEFAULT")
			in.Weight = float64(i) + 0.5
			in.Healthy = i%2 == 0
			in.Enabled = i != 3
			in.Metadata = map[string]string{"i": string(rune('a' + i)), "preserved.heart.beat.timeout": "20000"}
			if err := tx.PutInstance(orders.Key, in); err != nil {
				return err
			}
		}
		if err := tx.PutInstance(odd.Key, inst("::1", 1, "blue")); err != nil {
			return err
		}
		return tx.PutInstance(key("prod", "G", "no-record"), inst("10.1.1.1", 9000, "DEFAULT"))
	})
	if err != nil {
		t.Fatal(err)
	}
}

func snapshotBytes(t *testing.T, s *Store) ([]byte, Header) {
	t.Helper()
	sn, err := s.OpenSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Release()
	var buf bytes.Buffer
	n, err := sn.WriteTo(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(buf.Len()) {
		t.Errorf("WriteTo returned %d, wrote %d", n, buf.Len())
	}
	return buf.Bytes(), sn.Header()
}

func noTempFiles(t *testing.T, s *Store) {
	t.Helper()
	if left, _ := filepath.Glob(s.Path() + restoreTempInfix + "*"); len(left) > 0 {
		t.Errorf("restore left temporary files: %v", left)
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	src, err := Open(filepath.Join(t.TempDir(), "src.db"), Options{NodeID: "node-1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = src.Close() })
	populate(t, src, 7, 3)
	want := dump(t, src)

	sn, err := src.OpenSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	hdr := sn.Header()
	if hdr.FormatVersion != SnapshotVersion || hdr.Index != 7 || hdr.Term != 3 || hdr.NodeID != "node-1" ||
		hdr.Namespaces != 3 || hdr.Services != 3 || hdr.Instances != 7 || hdr.Created.IsZero() {
		t.Errorf("Header = %+v", hdr)
	}
	// Writes after OpenSnapshot are not in the snapshot.
	update(t, src, 8, func(tx *Tx) error {
		if err := tx.PutService(naming.NewService(key("public", "G", "later"), false)); err != nil {
			return err
		}
		return tx.DeleteService(key("public", "DEFAULT_GROUP", "orders"))
	})
	var buf bytes.Buffer
	if _, err := sn.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	sn.Release()
	sn.Release()
	if _, err := sn.WriteTo(io.Discard); !errors.Is(err, ErrSnapshotReleased) {
		t.Errorf("WriteTo after Release = %v, want ErrSnapshotReleased", err)
	}

	got, err := ReadHeader(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if !got.Created.Equal(hdr.Created) {
		t.Errorf("ReadHeader Created = %v, want %v", got.Created, hdr.Created)
	}
	got.Created, hdr.Created = time.Time{}, time.Time{}
	if got != hdr {
		t.Errorf("ReadHeader = %+v, want %+v", got, hdr)
	}
	if _, err := Verify(bytes.NewReader(buf.Bytes())); err != nil {
		t.Errorf("Verify: %v", err)
	}

	// The destination has state of its own, at a later index: Restore discards both.
	dst := openStore(t, "")
	populate(t, dst, 100, 9)
	update(t, dst, 101, func(tx *Tx) error { return tx.PutService(naming.NewService(key("other", "G", "x"), false)) })
	if err := dst.Restore(bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatal(err)
	}
	if after := dump(t, dst); !reflect.DeepEqual(after, want) {
		t.Errorf("restored state:\n got %+v\nwant %+v", after, want)
	}
	noTempFiles(t, dst)

	// Restored data is durable and the store keeps working.
	path := dst.Path()
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	re := openStore(t, path)
	if after := dump(t, re); !reflect.DeepEqual(after, want) {
		t.Errorf("after reopen:\n got %+v\nwant %+v", after, want)
	}
	update(t, re, 8, func(tx *Tx) error { return tx.PutService(naming.NewService(key("public", "G", "new"), false)) })

	// A snapshot of the restored store carries the same records, byte for byte.
	again, _ := snapshotBytes(t, openStoreFrom(t, want))
	if !bytes.Equal(recordsOf(t, again), recordsOf(t, buf.Bytes())) {
		t.Error("re-snapshot records differ from the original")
	}
}

// openStoreFrom builds a fresh store holding exactly st.
func openStoreFrom(t *testing.T, st state) *Store {
	t.Helper()
	s := openStore(t, "")
	update(t, s, st.Index, func(tx *Tx) error {
		for _, svc := range st.Services {
			if err := tx.PutService(svc); err != nil {
				return err
			}
		}
		for k, list := range st.Instances {
			for _, in := range list {
				if err := tx.PutInstance(k, in); err != nil {
					return err
				}
			}
		}
		return nil
	})
	return s
}

// recordsOf strips the header and checksum off a stream.
func recordsOf(t *testing.T, b []byte) []byte {
	t.Helper()
	hl := binary.BigEndian.Uint32(b[12:16])
	return b[16+hl : len(b)-sha256.Size]
}

func TestSnapshotOfEmptyStore(t *testing.T) {
	src := openStore(t, "")
	data, hdr := snapshotBytes(t, src)
	if hdr.Index != 0 || hdr.Services != 0 || hdr.Instances != 0 || hdr.Namespaces != 0 {
		t.Errorf("Header = %+v", hdr)
	}
	dst := openStore(t, "")
	populate(t, dst, 5, 1)
	if err := dst.Restore(bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if st := dump(t, dst); st.Index != 0 || len(st.Services) != 0 || len(st.Instances) != 0 || st.NServices != 0 || st.NInstans != 0 {
		t.Errorf("after restoring an empty snapshot: %+v", st)
	}
}

func TestRestoreLargeSnapshotSpansTransactions(t *testing.T) {
	src := openStore(t, "")
	n := restoreBatchLen*2 + 17
	update(t, src, 3, func(tx *Tx) error {
		for i := 0; i < n; i++ {
			if err := tx.PutInstance(key("p", "G", "big"), inst("10.0.0.1", i, "C")); err != nil {
				return err
			}
		}
		return nil
	})
	data, _ := snapshotBytes(t, src)
	dst := openStore(t, "")
	if err := dst.Restore(bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if st := dump(t, dst); st.NInstans != n || len(st.Instances[key("p", "G", "big")]) != n || st.Index != 3 {
		t.Errorf("restored %d instances (counter %d) at %d, want %d at 3", len(st.Instances[key("p", "G", "big")]), st.NInstans, st.Index, n)
	}
}

// record is one record for buildStream.
type record struct {
	kind byte
	body string
}

// buildStream frames a header and records with a correct checksum, so tests can reach
// the checks behind the checksum.
func buildStream(hdr Header, recs ...record) []byte {
	var b bytes.Buffer
	h, _ := json.Marshal(hdr)
	b.WriteString(snapshotMagic)
	ver := SnapshotVersion
	if hdr.FormatVersion >= minSnapshotVersion && hdr.FormatVersion <= SnapshotVersion {
		ver = hdr.FormatVersion
	}
	b.Write(u32(ver))
	b.Write(u32(uint32(len(h))))
	b.Write(h)
	for _, r := range recs {
		b.WriteByte(r.kind)
		b.Write(u32(uint32(len(r.body))))
		b.WriteString(r.body)
	}
	b.WriteByte(recordEnd)
	sum := sha256.Sum256(b.Bytes())
	b.Write(sum[:])
	return b.Bytes()
}

// instanceStream is a stream of one instance record with field (JSON) added to an
// otherwise good instance; a later key wins in encoding/json.
func instanceStream(field string) []byte {
	body := `{"service":{"namespace":"p","group":"G","name":"s"},"instance":{"ip":"1.1.1.1","port":1,"clusterName":"C","weight":1,` + field + `}}`
	return buildStream(Header{FormatVersion: SnapshotVersion, Index: 1, Term: 1, Namespaces: 1, Instances: 1}, record{recordInstance, body})
}

func TestRestoreRefusesBadStreams(t *testing.T) {
	src := openStore(t, "")
	populate(t, src, 7, 3)
	good, _ := snapshotBytes(t, src)
	hdrLen := int(binary.BigEndian.Uint32(good[12:16]))
	firstBody := 16 + hdrLen + 5 // first record's JSON

	mutate := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	flip := func(at int, bit byte) []byte {
		return mutate(func(b []byte) []byte { b[at] ^= bit; return b })
	}
	svc := `{"key":{"namespace":"p","group":"G","name":"s"},"ephemeral":false,"protectThreshold":0,"selector":{"type":"none"}}`
	one := Header{FormatVersion: SnapshotVersion, Index: 1, Term: 1, Namespaces: 1, Services: 1}

	tests := []struct {
		name string
		data []byte
		want error // nil: any error
		text string
	}{
		{"empty", nil, ErrSnapshotTruncated, "persistence: snapshot truncated"},
		{"magic only", good[:8], ErrSnapshotTruncated, ""},
		{"cut in header", good[:20], ErrSnapshotTruncated, ""},
		{"cut in records", good[:len(good)/2], ErrSnapshotTruncated, ""},
		{"cut before end marker", good[:len(good)-sha256.Size-1], ErrSnapshotTruncated, ""},
		{"cut before checksum", good[:len(good)-sha256.Size], ErrSnapshotTruncated, ""},
		{"cut in checksum", good[:len(good)-1], ErrSnapshotTruncated, ""},
		{"bad magic", flip(0, 0x20), ErrSnapshotMagic, "persistence: snapshot bad magic"},
		{"unknown version", mutate(func(b []byte) []byte { binary.BigEndian.PutUint32(b[8:12], SnapshotVersion+1); return b }),
			ErrSnapshotVersion, fmt.Sprintf("persistence: snapshot unsupported format version %d", SnapshotVersion+1)},
		{"auth record in a version 1 stream", buildStream(Header{FormatVersion: 1, Namespaces: 1, Services: 1},
			record{recordService, svc}, record{recordAuth, `{}`}), ErrSnapshotCorrupt, ""},
		{"two auth records", buildStream(one, record{recordService, svc}, record{recordAuth, `{}`}, record{recordAuth, `{}`}), ErrSnapshotCorrupt, ""},
		{"auth record not JSON", buildStream(one, record{recordService, svc}, record{recordAuth, `{x`}), ErrSnapshotCorrupt, ""},
		{"namespaces record in a version 3 stream", buildStream(Header{FormatVersion: 3, Index: 1, Term: 1, Namespaces: 1, Services: 1},
			record{recordService, svc}, record{recordNamespace, `[{"id":"dev","name":"d"}]`}), ErrSnapshotCorrupt, ""},
		{"two namespaces records", buildStream(one, record{recordService, svc}, record{recordNamespace, `[{"id":"dev","name":"d"}]`},
			record{recordNamespace, `[{"id":"qa","name":"q"}]`}), ErrSnapshotCorrupt, ""},
		{"namespaces record not JSON", buildStream(one, record{recordService, svc}, record{recordNamespace, `[{`}), ErrSnapshotCorrupt, ""},
		{"namespaces out of order", buildStream(one, record{recordService, svc}, record{recordNamespace, `[{"id":"qa","name":"q"},{"id":"dev","name":"d"}]`}), ErrSnapshotCorrupt, ""},
		{"namespace without id", buildStream(one, record{recordService, svc}, record{recordNamespace, `[{"name":"q"}]`}), ErrSnapshotCorrupt, ""},
		{"namespace negative quota", buildStream(one, record{recordService, svc}, record{recordNamespace, `[{"id":"dev","name":"d","maxServices":-1}]`}), ErrSnapshotCorrupt, ""},
		{"bit flip in header", flip(16+hdrLen/2, 0x01), nil, ""},
		{"bit flip in a record", flip(firstBody+10, 0x04), ErrSnapshotChecksum, "persistence: snapshot checksum mismatch"},
		{"bit flip in last record", flip(len(good)-sha256.Size-3, 0x02), ErrSnapshotChecksum, ""},
		{"bit flip in checksum", flip(len(good)-1, 0x80), ErrSnapshotChecksum, ""},
		{"bit flip in end marker", flip(len(good)-sha256.Size-1, 0x01), ErrSnapshotCorrupt, ""},
		{"data after checksum", append(append([]byte(nil), good...), 0), ErrSnapshotCorrupt, ""},
		{"unknown record type", buildStream(one, record{7, svc}), ErrSnapshotCorrupt, ""},
		{"record not JSON", buildStream(one, record{recordService, "{nope"}), ErrSnapshotCorrupt, ""},
		{"service without name", buildStream(one, record{recordService, `{"key":{"namespace":"p"}}`}), ErrSnapshotCorrupt, ""},
		{"instance without instance", buildStream(Header{FormatVersion: 1, Namespaces: 1, Instances: 1},
			record{recordInstance, `{"service":{"namespace":"p","group":"G","name":"s"}}`}), ErrSnapshotCorrupt, ""},
		{"duplicate service", buildStream(Header{FormatVersion: 1, Namespaces: 1, Services: 2},
			record{recordService, svc}, record{recordService, svc}), ErrSnapshotCorrupt, ""},
		{"duplicate instance", buildStream(Header{FormatVersion: 1, Namespaces: 1, Instances: 2},
			record{recordInstance, `{"service":{"namespace":"p","group":"G","name":"s"},"instance":{"ip":"1.1.1.1","port":1,"clusterName":"C"}}`},
			record{recordInstance, `{"service":{"namespace":"p","group":"G","name":"s"},"instance":{"ip":"1.1.1.1","port":1,"clusterName":"C"}}`}), ErrSnapshotCorrupt, ""},
		{"services out of order", buildStream(Header{FormatVersion: 1, Namespaces: 1, Services: 2},
			record{recordService, strings.Replace(svc, `"s"`, `"t"`, 1)}, record{recordService, svc}), ErrSnapshotCorrupt, ""},
		{"counts disagree", buildStream(Header{FormatVersion: 1, Namespaces: 1, Services: 2}, record{recordService, svc}), ErrSnapshotCorrupt, ""},
		{"header version disagrees", buildStream(Header{FormatVersion: 9, Namespaces: 1, Services: 1}, record{recordService, svc}), ErrSnapshotCorrupt, ""},
		// Well-framed records whose numbers no write path takes: restored, they would
		// be stored as they are and break lists, pushes and the next snapshot.
		{"instance weight out of range", instanceStream(`"weight":20000`), ErrSnapshotCorrupt,
			"instance format invalid: The weights range from 0.0 to 10000.0"},
		{"instance weight negative", instanceStream(`"weight":-1`), ErrSnapshotCorrupt, "The weights range from 0.0 to 10000.0"},
		{"instance weight beyond a double", instanceStream(`"weight":1e400`), ErrSnapshotCorrupt, ""},
		{"instance weight NaN", instanceStream(`"weight":NaN`), ErrSnapshotCorrupt, ""},
		{"instance weight as text", instanceStream(`"weight":"NaN"`), ErrSnapshotCorrupt, ""},
		{"instance port out of range", instanceStream(`"port":70000`), ErrSnapshotCorrupt,
			"Param 'port' is illegal, the value should be between 0 and 65535."},
		{"service threshold beyond a double", buildStream(one, record{recordService, strings.Replace(svc, `"protectThreshold":0`, `"protectThreshold":-1e999`, 1)}),
			ErrSnapshotCorrupt, ""},
		{"cluster check port out of range", buildStream(one, record{recordService, strings.Replace(svc, `"selector"`,
			`"clusters":{"c":{"name":"c","healthChecker":{"type":"TCP"},"metadata":{},"checkPort":65536,"useInstancePort4Check":false}},"selector"`, 1)}),
			ErrSnapshotCorrupt, "Param 'port' is illegal, the value should be between 0 and 65535."},
		{"cluster without a body", buildStream(one, record{recordService, strings.Replace(svc, `"selector"`, `"clusters":{"c":null},"selector"`, 1)}),
			ErrSnapshotCorrupt, "cluster c is empty"},
	}
	dst := openStore(t, "")
	populate(t, dst, 50, 4)
	update(t, dst, 51, func(tx *Tx) error { return tx.PutService(naming.NewService(key("mine", "G", "x"), false)) })
	before := dump(t, dst)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := dst.Restore(bytes.NewReader(tt.data))
			if err == nil {
				t.Fatal("Restore succeeded")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("Restore = %v, want %v", err, tt.want)
			}
			if tt.text != "" && !strings.HasSuffix(err.Error(), tt.text) {
				t.Errorf("Restore = %q, want it to end in %q", err, tt.text)
			}
			if after := dump(t, dst); !reflect.DeepEqual(after, before) {
				t.Errorf("store changed:\n got %+v\nwant %+v", after, before)
			}
			noTempFiles(t, dst)
			if _, verr := Verify(bytes.NewReader(tt.data)); verr == nil {
				t.Error("Verify accepted the stream")
			}
		})
	}
	// The refusals left a working store behind.
	update(t, dst, 52, func(tx *Tx) error { return tx.PutService(naming.NewService(key("mine", "G", "y"), false)) })
}

// TestVerifyRefusesEveryBitFlip flips one bit in every byte of a stream. Verify shares
// the parser and checks with Restore, without the disk, so it can afford to try them all.
func TestVerifyRefusesEveryBitFlip(t *testing.T) {
	src := openStore(t, "")
	populate(t, src, 7, 3)
	good, _ := snapshotBytes(t, src)
	if _, err := Verify(bytes.NewReader(good)); err != nil {
		t.Fatalf("Verify(good) = %v", err)
	}
	b := append([]byte(nil), good...)
	for i := range b {
		bit := byte(1) << (i % 8)
		b[i] ^= bit
		if _, err := Verify(bytes.NewReader(b)); err == nil {
			t.Errorf("flip of bit %d at byte %d accepted", i%8, i)
		}
		b[i] ^= bit
	}
}

func TestReadHeader(t *testing.T) {
	src := openStore(t, "")
	populate(t, src, 7, 3)
	good, hdr := snapshotBytes(t, src)
	// Only the header is needed: the records may be missing.
	got, err := ReadHeader(bytes.NewReader(good[:16+int(binary.BigEndian.Uint32(good[12:16]))]))
	if err != nil {
		t.Fatal(err)
	}
	if got.Index != 7 || got.Term != 3 || got.Services != hdr.Services || got.Instances != hdr.Instances || !got.Created.Equal(hdr.Created) {
		t.Errorf("ReadHeader = %+v, want %+v", got, hdr)
	}
	bad := append([]byte(nil), good...)
	binary.BigEndian.PutUint32(bad[8:12], SnapshotVersion+1)
	for _, tt := range []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, ErrSnapshotTruncated},
		{"short", good[:10], ErrSnapshotTruncated},
		{"bad magic", []byte("NOTASNAPSHOT...."), ErrSnapshotMagic},
		{"a version from the future", bad, ErrSnapshotVersion},
		{"huge header", append([]byte(snapshotMagic+"\x00\x00\x00\x01"), u32(maxHeaderLen+1)...), ErrSnapshotCorrupt},
	} {
		if _, err := ReadHeader(bytes.NewReader(tt.data)); !errors.Is(err, tt.want) {
			t.Errorf("%s: ReadHeader = %v, want %v", tt.name, err, tt.want)
		}
	}
}

// failingWriter fails after n bytes.
type failingWriter struct{ n int }

func (w *failingWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		k := w.n
		w.n = 0
		return k, errors.New("disk full")
	}
	w.n -= len(p)
	return len(p), nil
}

func TestSnapshotWriteError(t *testing.T) {
	src := openStore(t, "")
	populate(t, src, 7, 3)
	sn, err := src.OpenSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Release()
	if _, err := sn.WriteTo(&failingWriter{n: 100}); err == nil || !strings.Contains(err.Error(), src.Path()) {
		t.Errorf("WriteTo into a failing writer = %v, want an error naming the store", err)
	}
}

func TestRestoreIntoClosedStore(t *testing.T) {
	src := openStore(t, "")
	good, _ := snapshotBytes(t, src)
	dst := openStore(t, "")
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	if err := dst.Restore(bytes.NewReader(good)); !errors.Is(err, ErrClosed) {
		t.Errorf("Restore into closed store = %v, want ErrClosed", err)
	}
	noTempFiles(t, dst)
	if _, err := os.Stat(dst.Path()); err != nil {
		t.Errorf("store file: %v", err)
	}
}

// TestRestoreUnderConcurrentUse runs readers, a writer and an open snapshot against a
// store while it restores: the lock must keep every one of them on a whole file.
func TestRestoreUnderConcurrentUse(t *testing.T) {
	src := openStore(t, "")
	populate(t, src, 5, 2)
	data, _ := snapshotBytes(t, src)

	dst := openStore(t, "")
	populate(t, dst, 50, 4)
	old, _ := snapshotBytes(t, dst)
	held, err := dst.OpenSnapshot()
	if err != nil {
		t.Fatal(err)
	}

	stop := make(chan struct{})
	errs := make(chan error, 3)
	done := make(chan struct{})
	go func() { // reader
		defer func() { done <- struct{}{} }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := dst.View(func(tx *Tx) error {
				list, err := tx.Services("")
				if err == nil && len(list) == 0 {
					err = errors.New("reader saw an empty store")
				}
				return err
			}); err != nil {
				errs <- err
				return
			}
		}
	}()
	go func() { // writer
		defer func() { done <- struct{}{} }()
		for i := uint64(0); ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := dst.Update(1000+i, 9, func(tx *Tx) error {
				return tx.PutService(naming.NewService(key("w", "G", "x"), false))
			}); err != nil {
				errs <- err
				return
			}
		}
	}()
	restored := make(chan error, 1)
	go func() { restored <- dst.Restore(bytes.NewReader(data)) }()

	// The held snapshot still streams the state it was opened on, then lets Restore
	// finish.
	var buf bytes.Buffer
	if _, err := held.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	held.Release()
	if err := <-restored; err != nil {
		t.Fatal(err)
	}
	close(stop)
	<-done
	<-done
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if !bytes.Equal(recordsOf(t, buf.Bytes()), recordsOf(t, old)) {
		t.Error("the held snapshot did not stream the state it was opened on")
	}
	if err := dst.View(func(tx *Tx) error {
		svc, err := tx.Service(key("public", "DEFAULT_GROUP", "orders"))
		if err == nil && svc == nil {
			err = errors.New("restored service missing")
		}
		return err
	}); err != nil {
		t.Error(err)
	}
}

func TestSnapshotCarriesAuthState(t *testing.T) {
	src := openStore(t, "")
	populate(t, src, 5, 2)
	doc := []byte(`{"users":{"admin":{"hash":"x"}}}`)
	update(t, src, 6, func(tx *Tx) error { return tx.PutAuthState(doc) })
	data, _ := snapshotBytes(t, src)
	if _, err := Verify(bytes.NewReader(data)); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	dst := openStore(t, "")
	if err := dst.Restore(bytes.NewReader(data)); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	var got []byte
	if err := dst.View(func(tx *Tx) error { got = tx.AuthState(); return nil }); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, doc) {
		t.Fatalf("auth state after restore = %s, want %s", got, doc)
	}
	if err := dst.Check(); err != nil {
		t.Fatalf("Check: %v", err)
	}
	err := dst.Update(7, 1, func(tx *Tx) error { return tx.PutAuthState([]byte("{not json")) })
	if err == nil {
		t.Fatal("PutAuthState accepted a document that is not JSON")
	}
}
