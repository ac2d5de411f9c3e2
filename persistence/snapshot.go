package persistence

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/roster-registry/roster/naming"
)

// SnapshotVersion is the version of the snapshot stream format, shared by Raft
// snapshots and snapshot files.
//
// Stream layout (integers big-endian):
//
//	"RSTRSNAP"                      magic, 8 bytes
//	uint32 version                  SnapshotVersion
//	uint32 n, n bytes               Header as JSON
//	records, each (services, then instances, each in key order, then at most one auth record,
//	then at most one namespaces record):
//	  byte type                     1 = service, 2 = instance, 3 = auth (version 2 on),
//	                                4 = namespaces (version 4 on)
//	  uint32 n, n bytes             JSON: naming.Service, or {"service": key, "instance": naming.Instance
//	                                with its Stamp's fields}, or the access-control document (package auth),
//	                                or the array of namespace records (naming.Namespace) sorted by id
//	byte 0xFF                       end marker
//	32 bytes                        SHA-256 of everything before it
//
// Version 2 added the auth record. Version 3 added each instance's stamp (revision,
// flipEpoch) and the clusters' configurable health checkers (the GRPC checker's service
// among them) to the records: a build that knows only version 2 would read such a stream
// and silently drop them, so it must refuse it, and the version says so. Version 4 added
// the namespaces record (the namespaces operators created, with their quotas). Versions
// 1 to 3 are still read: their instances restore with the zero stamp (before 3) and
// without namespace records (before 4).
const SnapshotVersion uint32 = 4

// minSnapshotVersion is the oldest stream version Restore and Verify accept.
const minSnapshotVersion uint32 = 1

const (
	snapshotMagic   = "RSTRSNAP"
	recordService   = 1
	recordInstance  = 2
	recordAuth      = 3
	recordNamespace = 4
	recordEnd       = 0xFF
	maxHeaderLen    = 1 << 20
	maxRecordLen    = 16 << 20
	restoreBatchLen = 4096 // records per transaction while filling a restore file
)

// Errors of the snapshot stream. Use errors.Is; the returned errors may carry detail.
var (
	ErrSnapshotTruncated = errors.New("persistence: snapshot truncated")
	ErrSnapshotChecksum  = errors.New("persistence: snapshot checksum mismatch")
	ErrSnapshotMagic     = errors.New("persistence: snapshot bad magic")
	// ErrSnapshotVersion is wrapped as "persistence: snapshot unsupported format version N".
	ErrSnapshotVersion = errors.New("persistence: snapshot unsupported format version")
	// ErrSnapshotCorrupt covers a well-framed stream whose content is wrong: an unknown
	// record type, a record that does not decode, counts that disagree with the header.
	ErrSnapshotCorrupt = errors.New("persistence: snapshot corrupt")
	// ErrSnapshotReleased is returned by WriteTo after Release.
	ErrSnapshotReleased = errors.New("persistence: snapshot released")
)

// Header describes a snapshot stream. Index and Term are the Raft position the data
// reflects; the counts let `inspect` describe a file without reading it all.
type Header struct {
	FormatVersion uint32    `json:"formatVersion"`
	Index         uint64    `json:"index"`
	Term          uint64    `json:"term"`
	Created       time.Time `json:"created"`
	NodeID        string    `json:"nodeId"`
	Namespaces    int       `json:"namespaces"`
	Services      int       `json:"services"`
	Instances     int       `json:"instances"`
}

type instanceRecord struct {
	Service  naming.ServiceKey `json:"service"`
	Instance *storedInstance   `json:"instance"`
}

// Snapshot is a consistent read view of the store, held by one read transaction until
// Release. It is cheap to open; WriteTo does the work and may run concurrently with
// Updates.
type Snapshot struct {
	path   string
	header Header

	mu sync.Mutex // guards tx against WriteTo racing Release
	tx *bolt.Tx
	// store is released of the pages the snapshot's full read mapped (ReleaseMapped).
	store *Store
}

// OpenSnapshot commits the open batch, if any, so that the snapshot holds everything
// applied, then opens a read transaction and returns at once. The caller must Release
// the snapshot: until then the store keeps the pages it sees, and Restore and Close
// wait for it.
func (s *Store) OpenSnapshot() (*Snapshot, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return nil, ErrClosed
	}
	if err := s.commitLocked(); err != nil {
		return nil, err
	}
	btx, err := s.db.Begin(false)
	if err != nil {
		return nil, fmt.Errorf("persistence: begin snapshot of %s: %w", s.path, err)
	}
	tx := &Tx{tx: btx, path: s.path}
	hdr, err := tx.header(s.opts.NodeID)
	if err != nil {
		_ = btx.Rollback()
		return nil, err
	}
	return &Snapshot{path: s.path, header: hdr, tx: btx, store: s}, nil
}

// header describes the state this transaction sees.
func (tx *Tx) header(nodeID string) (Header, error) {
	index, term, ok := decodeApplied(tx.meta().Get(keyApplied))
	if !ok {
		return Header{}, tx.corrupt("applied index record", errors.New("bad length"))
	}
	services, instances, err := tx.Counts()
	if err != nil {
		return Header{}, err
	}
	namespaces, err := tx.Namespaces()
	if err != nil {
		return Header{}, err
	}
	return Header{
		FormatVersion: SnapshotVersion,
		Index:         index,
		Term:          term,
		Created:       time.Now().UTC(),
		NodeID:        nodeID,
		Namespaces:    len(namespaces),
		Services:      services,
		Instances:     instances,
	}, nil
}

// Header describes the snapshot; Index and Term are the applied position as of its read
// transaction.
func (sn *Snapshot) Header() Header { return sn.header }

// WriteTo streams the snapshot: header, records, end marker, SHA-256. It returns the
// bytes written. It fails, before the end marker, if the records disagree with the
// header's counts, so a stream that Restore would refuse is never finished.
func (sn *Snapshot) WriteTo(w io.Writer) (int64, error) {
	sn.mu.Lock()
	defer sn.mu.Unlock()
	if sn.tx == nil {
		return 0, ErrSnapshotReleased
	}
	cw := &countingWriter{w: w}
	bw := bufio.NewWriterSize(cw, 64<<10)
	h := sha256.New()
	out := io.MultiWriter(bw, h)
	fail := func(err error) (int64, error) {
		_ = bw.Flush()
		return cw.n, fmt.Errorf("persistence: write snapshot of %s: %w", sn.path, err)
	}

	hdr, err := json.Marshal(sn.header)
	if err != nil {
		return fail(err)
	}
	var pre bytes.Buffer
	pre.WriteString(snapshotMagic)
	pre.Write(u32(SnapshotVersion))
	pre.Write(u32(uint32(len(hdr))))
	pre.Write(hdr)
	if _, err := out.Write(pre.Bytes()); err != nil {
		return fail(err)
	}

	var frame [5]byte
	writeRecord := func(kind byte, parts ...[]byte) error {
		n := 0
		for _, p := range parts {
			n += len(p)
		}
		frame[0] = kind
		binary.BigEndian.PutUint32(frame[1:], uint32(n))
		if _, err := out.Write(frame[:]); err != nil {
			return err
		}
		for _, p := range parts {
			if _, err := out.Write(p); err != nil {
				return err
			}
		}
		return nil
	}

	// Stored values are the JSON the records carry, so they are copied as they are.
	services := 0
	err = sn.tx.Bucket(bucketServices).ForEach(func(_, v []byte) error {
		services++
		return writeRecord(recordService, v)
	})
	if err != nil {
		return fail(err)
	}
	instances := 0
	ib := sn.tx.Bucket(bucketInstances)
	err = ib.ForEach(func(sk, _ []byte) error {
		svc, err := decodeServiceKey(sk)
		if err != nil {
			return fmt.Errorf("corrupt service key: %w", err)
		}
		key, err := json.Marshal(svc)
		if err != nil {
			return err
		}
		prefix := append(append([]byte(`{"service":`), key...), `,"instance":`...)
		return ib.Bucket(sk).ForEach(func(_, v []byte) error {
			instances++
			return writeRecord(recordInstance, prefix, v, []byte("}"))
		})
	})
	if err != nil {
		return fail(err)
	}
	if services != sn.header.Services || instances != sn.header.Instances {
		return fail(fmt.Errorf("counters say %d services and %d instances, found %d and %d",
			sn.header.Services, sn.header.Instances, services, instances))
	}
	if doc := sn.tx.Bucket(bucketMeta).Get(keyAuth); doc != nil {
		if err := writeRecord(recordAuth, doc); err != nil {
			return fail(err)
		}
	}
	if doc := sn.tx.Bucket(bucketMeta).Get(keyNamespaces); doc != nil {
		if err := writeRecord(recordNamespace, doc); err != nil {
			return fail(err)
		}
	}
	if _, err := out.Write([]byte{recordEnd}); err != nil {
		return fail(err)
	}
	if _, err := bw.Write(h.Sum(nil)); err != nil {
		return fail(err)
	}
	if err := bw.Flush(); err != nil {
		return cw.n, fmt.Errorf("persistence: write snapshot of %s: %w", sn.path, err)
	}
	return cw.n, nil
}

// Release ends the snapshot's read transaction. It is safe to call more than once.
func (sn *Snapshot) Release() {
	sn.mu.Lock()
	defer sn.mu.Unlock()
	if sn.tx != nil {
		_ = sn.tx.Rollback()
		sn.tx = nil
		// WriteTo read every page, which the store's steady work mostly does not.
		if sn.store != nil {
			sn.store.ReleaseMapped()
		}
	}
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// streamReader reads the stream and hashes everything it reads.
type streamReader struct {
	r *bufio.Reader
	h hash.Hash
}

func newStreamReader(r io.Reader) *streamReader {
	return &streamReader{r: bufio.NewReaderSize(r, 64<<10), h: sha256.New()}
}

func (sr *streamReader) full(p []byte) error {
	if _, err := io.ReadFull(sr.r, p); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return ErrSnapshotTruncated
		}
		return fmt.Errorf("persistence: read snapshot: %w", err)
	}
	sr.h.Write(p)
	return nil
}

func (sr *streamReader) uint32() (uint32, error) {
	var b [4]byte
	if err := sr.full(b[:]); err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint32(b[:]), nil
}

func (sr *streamReader) header() (Header, error) {
	var magic [len(snapshotMagic)]byte
	if err := sr.full(magic[:]); err != nil {
		return Header{}, err
	}
	if string(magic[:]) != snapshotMagic {
		return Header{}, ErrSnapshotMagic
	}
	ver, err := sr.uint32()
	if err != nil {
		return Header{}, err
	}
	if ver < minSnapshotVersion || ver > SnapshotVersion {
		return Header{}, fmt.Errorf("%w %d", ErrSnapshotVersion, ver)
	}
	n, err := sr.uint32()
	if err != nil {
		return Header{}, err
	}
	if n > maxHeaderLen {
		return Header{}, fmt.Errorf("%w: header length %d over the limit", ErrSnapshotCorrupt, n)
	}
	buf := make([]byte, n)
	if err := sr.full(buf); err != nil {
		return Header{}, err
	}
	var hdr Header
	if err := json.Unmarshal(buf, &hdr); err != nil {
		return Header{}, fmt.Errorf("%w: header: %v", ErrSnapshotCorrupt, err)
	}
	if hdr.FormatVersion != ver {
		return Header{}, fmt.Errorf("%w: header says version %d, stream %d", ErrSnapshotCorrupt, hdr.FormatVersion, ver)
	}
	return hdr, nil
}

// ReadHeader reads the header at the start of a snapshot stream, for inspection. It
// does not verify the checksum; Verify reads the whole stream and does.
func ReadHeader(r io.Reader) (Header, error) {
	return newStreamReader(r).header()
}

// readStream parses a whole stream, calling onRecord for each record in order. The
// checksum is checked at the end; when it fails it is the error reported, even if a
// record failed to decode first, since the corruption explains both. Nothing after the
// checksum may follow.
func readStream(r io.Reader, onRecord func(kind byte, body []byte) error) (Header, error) {
	sr := newStreamReader(r)
	hdr, err := sr.header()
	if err != nil {
		return hdr, err
	}
	var recErr error
	for {
		var kind [1]byte
		if err := sr.full(kind[:]); err != nil {
			return hdr, err
		}
		if kind[0] == recordEnd {
			break
		}
		known := kind[0] == recordService || kind[0] == recordInstance ||
			kind[0] == recordAuth && hdr.FormatVersion >= 2 || kind[0] == recordNamespace && hdr.FormatVersion >= 4
		if !known {
			return hdr, fmt.Errorf("%w: unknown record type 0x%02x", ErrSnapshotCorrupt, kind[0])
		}
		n, err := sr.uint32()
		if err != nil {
			return hdr, err
		}
		if n > maxRecordLen {
			return hdr, fmt.Errorf("%w: record length %d over the limit", ErrSnapshotCorrupt, n)
		}
		body := make([]byte, n)
		if err := sr.full(body); err != nil {
			return hdr, err
		}
		if recErr == nil {
			recErr = onRecord(kind[0], body)
		}
	}
	want := sr.h.Sum(nil)
	got := make([]byte, len(want))
	if _, err := io.ReadFull(sr.r, got); err != nil {
		return hdr, ErrSnapshotTruncated
	}
	if !bytes.Equal(got, want) {
		return hdr, ErrSnapshotChecksum
	}
	if recErr != nil {
		return hdr, recErr
	}
	if _, err := sr.r.ReadByte(); err != io.EOF {
		return hdr, fmt.Errorf("%w: data after the checksum", ErrSnapshotCorrupt)
	}
	return hdr, nil
}

// recordSet checks records as they are read and tallies them against the header.
// WriteTo emits services and instances in key order, so requiring strictly increasing
// keys refuses duplicates without remembering every key.
type recordSet struct {
	services, instances int
	namespaces          map[string]bool
	lastService         []byte
	lastInstance        [2][]byte // encoded service key, instance key
	auth                []byte    // the auth record, at most one
	nsRecords           []*naming.Namespace
	sawNamespaces       bool // the namespaces record, at most one
}

func (rs *recordSet) namespaceDoc(body []byte) ([]*naming.Namespace, error) {
	if rs.sawNamespaces {
		return nil, fmt.Errorf("%w: more than one namespaces record", ErrSnapshotCorrupt)
	}
	rs.sawNamespaces = true
	all, err := decodeNamespaces(body)
	if err != nil {
		return nil, fmt.Errorf("%w: namespaces record: %v", ErrSnapshotCorrupt, err)
	}
	for _, n := range all {
		for _, q := range []*int{n.MaxServices, n.MaxInstances} {
			if q != nil && *q < 0 {
				return nil, fmt.Errorf("%w: namespace %s has a negative quota", ErrSnapshotCorrupt, n.ID)
			}
		}
	}
	rs.nsRecords = all
	return all, nil
}

func (rs *recordSet) authDoc(body []byte) error {
	if rs.auth != nil {
		return fmt.Errorf("%w: more than one auth record", ErrSnapshotCorrupt)
	}
	if !json.Valid(body) {
		return fmt.Errorf("%w: auth record does not decode", ErrSnapshotCorrupt)
	}
	rs.auth = body
	return nil
}

func (rs *recordSet) service(body []byte) (*naming.Service, error) {
	var svc naming.Service
	if err := json.Unmarshal(body, &svc); err != nil {
		return nil, fmt.Errorf("%w: service record %d: %v", ErrSnapshotCorrupt, rs.services+1, err)
	}
	if svc.Key.Name == "" {
		return nil, fmt.Errorf("%w: service record %d has no name", ErrSnapshotCorrupt, rs.services+1)
	}
	if err := checkServiceRecord(&svc); err != nil {
		return nil, fmt.Errorf("%w: service record %d (%s): %v", ErrSnapshotCorrupt, rs.services+1, svc.Key, err)
	}
	k := encodeServiceKey(svc.Key)
	if rs.lastService != nil && bytes.Compare(k, rs.lastService) <= 0 {
		return nil, fmt.Errorf("%w: service %s duplicate or out of order", ErrSnapshotCorrupt, svc.Key)
	}
	rs.lastService = k
	rs.services++
	rs.namespaces[svc.Key.Namespace] = true
	return &svc, nil
}

func (rs *recordSet) instance(body []byte) (*instanceRecord, error) {
	var rec instanceRecord
	if err := json.Unmarshal(body, &rec); err != nil {
		return nil, fmt.Errorf("%w: instance record %d: %v", ErrSnapshotCorrupt, rs.instances+1, err)
	}
	if rec.Service.Name == "" || rec.Instance == nil {
		return nil, fmt.Errorf("%w: instance record %d is incomplete", ErrSnapshotCorrupt, rs.instances+1)
	}
	if err := checkInstanceRecord(&rec.Instance.Instance); err != nil {
		return nil, fmt.Errorf("%w: instance record %d (%s of %s): %v", ErrSnapshotCorrupt, rs.instances+1, rec.Instance.Key(), rec.Service, err)
	}
	k := [2][]byte{encodeServiceKey(rec.Service), []byte(rec.Instance.Key())}
	if rs.lastInstance[0] != nil {
		c := bytes.Compare(k[0], rs.lastInstance[0])
		if c < 0 || c == 0 && bytes.Compare(k[1], rs.lastInstance[1]) <= 0 {
			return nil, fmt.Errorf("%w: instance %s of %s duplicate or out of order", ErrSnapshotCorrupt, rec.Instance.Key(), rec.Service)
		}
	}
	rs.lastInstance = k
	rs.instances++
	rs.namespaces[rec.Service.Namespace] = true
	return &rec, nil
}

// The numbers of a record are checked as the write paths check them: a record with a
// weight or a port out of range (JSON cannot carry NaN or Infinity; a number beyond a
// double's range does not decode) is corrupt, or else it would be stored as it is and
// break lists, pushes and the next snapshot. Names are not checked again: they were
// checked when the record was written, and a rule added since must not make a snapshot
// an older version wrote unreadable (the persistent key format takes any bytes).

func checkServiceRecord(svc *naming.Service) error {
	if err := naming.CheckProtectThreshold(svc.ProtectThreshold); err != nil {
		return err
	}
	for name, cl := range svc.Clusters {
		if cl == nil {
			return fmt.Errorf("cluster %s is empty", name)
		}
		if cl.CheckPort < 0 || cl.CheckPort > 65535 {
			return naming.ErrPortRange
		}
	}
	return nil
}

func checkInstanceRecord(inst *naming.Instance) error {
	if inst.Port < 0 || inst.Port > 65535 {
		return naming.ErrPortRange
	}
	return naming.CheckWeight(inst.Weight)
}

func (rs *recordSet) check(hdr Header) error {
	if rs.services != hdr.Services || rs.instances != hdr.Instances || len(rs.namespaces) != hdr.Namespaces {
		return fmt.Errorf("%w: header says %d namespaces, %d services, %d instances; stream has %d, %d, %d",
			ErrSnapshotCorrupt, hdr.Namespaces, hdr.Services, hdr.Instances, len(rs.namespaces), rs.services, rs.instances)
	}
	return nil
}

// Verify reads a whole snapshot stream and checks everything Restore checks (magic,
// version, records, counts, checksum) without writing anything.
func Verify(r io.Reader) (Header, error) {
	rs := &recordSet{namespaces: map[string]bool{}}
	hdr, err := readStream(r, func(kind byte, body []byte) error {
		var err error
		switch kind {
		case recordService:
			_, err = rs.service(body)
		case recordInstance:
			_, err = rs.instance(body)
		case recordAuth:
			err = rs.authDoc(body)
		case recordNamespace:
			_, err = rs.namespaceDoc(body)
		}
		return err
	})
	if err != nil {
		return hdr, err
	}
	return hdr, rs.check(hdr)
}

// restoreTempInfix follows the store's file name in the name of a restore's temporary
// file.
const restoreTempInfix = ".restore-"

// Restore replaces the store's whole content with a snapshot stream. It reads and
// verifies the entire stream into a fresh bbolt file beside the live one and only then,
// holding the store's lock, closes the live file, renames the new one over it, fsyncs
// the directory and reopens. Applied() becomes the header's index and term. A bad
// stream changes nothing. If the final reopen fails the store is left closed.
func (s *Store) Restore(r io.Reader) error {
	dir := filepath.Dir(s.path)
	f, err := os.CreateTemp(dir, filepath.Base(s.path)+restoreTempInfix)
	if err != nil {
		return fmt.Errorf("persistence: restore %s: %w", s.path, err)
	}
	tmp := f.Name()
	_ = f.Close()
	renamed := false
	defer func() {
		if !renamed {
			_ = os.Remove(tmp)
		}
	}()

	if err := fillFile(tmp, s.opts, r); err != nil {
		return fmt.Errorf("persistence: restore %s: %w", s.path, err)
	}

	// The open batch is committed first (the old file must be complete if the swap
	// fails), and no Update may start a new one until the new file is in place.
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db == nil {
		return ErrClosed
	}
	if err := s.commitLocked(); err != nil {
		return fmt.Errorf("persistence: restore %s: %w", s.path, err)
	}
	// Close waits for open snapshots, so nothing reads the old file after this.
	closeErr := s.db.Close()
	s.db = nil
	if closeErr != nil {
		closeErr = fmt.Errorf("persistence: restore %s: close old file: %w", s.path, closeErr)
	}
	if err := os.Rename(tmp, s.path); err != nil {
		// Keep serving the old state.
		if rerr := s.reopenLocked(); rerr != nil {
			return errors.Join(fmt.Errorf("persistence: restore %s: rename: %w", s.path, err), rerr)
		}
		return errors.Join(fmt.Errorf("persistence: restore %s: rename: %w", s.path, err), closeErr)
	}
	renamed = true
	syncErr := syncDir(dir)
	if syncErr != nil {
		syncErr = fmt.Errorf("persistence: restore %s: sync directory: %w", s.path, syncErr)
	}
	if err := s.reopenLocked(); err != nil {
		return errors.Join(err, closeErr, syncErr)
	}
	return errors.Join(closeErr, syncErr)
}

func (s *Store) reopenLocked() error {
	db, pos, err := openDB(s.path, s.opts)
	if err != nil {
		return err
	}
	s.db = db
	s.applied.Store(&pos)
	s.durable.Store(&pos)
	s.signalAdvanced()
	return nil
}

// fillFile builds a complete store file at path from a stream, committing every
// restoreBatchLen records, and records the header's position in it.
func fillFile(path string, opts Options, r io.Reader) (err error) {
	db, err := bolt.Open(path, 0o600, opts.bolt())
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer func() {
		if cerr := db.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close %s: %w", path, cerr)
		}
	}()
	btx, err := db.Begin(true)
	if err != nil {
		return fmt.Errorf("begin write on %s: %w", path, err)
	}
	defer func() {
		if btx != nil {
			_ = btx.Rollback()
		}
	}()
	if err := createSchema(btx, path); err != nil {
		return err
	}
	tx := &Tx{tx: btx, path: path}
	rs := &recordSet{namespaces: map[string]bool{}}
	pending := 0
	put := func(kind byte, body []byte) error {
		switch kind {
		case recordService:
			svc, err := rs.service(body)
			if err != nil {
				return err
			}
			if err := tx.PutService(svc); err != nil {
				return err
			}
		case recordInstance:
			rec, err := rs.instance(body)
			if err != nil {
				return err
			}
			if err := tx.PutInstanceStamped(rec.Service, &rec.Instance.Instance, rec.Instance.Stamp); err != nil {
				return err
			}
		case recordAuth:
			if err := rs.authDoc(body); err != nil {
				return err
			}
			if err := tx.PutAuthState(body); err != nil {
				return err
			}
		case recordNamespace:
			all, err := rs.namespaceDoc(body)
			if err != nil {
				return err
			}
			if err := tx.putNamespaces(all); err != nil {
				return err
			}
		}
		if pending++; pending < restoreBatchLen {
			return nil
		}
		pending = 0
		if err := btx.Commit(); err != nil {
			btx = nil
			return fmt.Errorf("commit %s: %w", path, err)
		}
		if btx, err = db.Begin(true); err != nil {
			return fmt.Errorf("begin write on %s: %w", path, err)
		}
		tx.tx = btx
		return nil
	}
	hdr, err := readStream(r, put)
	if err != nil {
		return err
	}
	if err := rs.check(hdr); err != nil {
		return err
	}
	if err := btx.Bucket(bucketMeta).Put(keyApplied, encodeApplied(hdr.Index, hdr.Term)); err != nil {
		return fmt.Errorf("record applied index in %s: %w", path, err)
	}
	err = btx.Commit()
	btx = nil
	if err != nil {
		return fmt.Errorf("commit %s: %w", path, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
