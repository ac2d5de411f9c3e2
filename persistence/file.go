package persistence

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"runtime/debug"
)

// FileInfo describes a verified snapshot stream: its header, its length and the SHA-256
// that ends it (the checksum of everything before it, so it names the content).
type FileInfo struct {
	Header
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"` // lower-case hex
}

// VerifyStream reads a whole snapshot stream and checks everything Restore checks, as
// Verify does, and also reports the stream's length and trailing checksum. It reads r to
// its end.
func VerifyStream(r io.Reader) (FileInfo, error) {
	t := &tailReader{r: r}
	hdr, err := Verify(t)
	if err != nil {
		return FileInfo{Header: hdr, Size: t.n}, err
	}
	return FileInfo{Header: hdr, Size: t.n, SHA256: hex.EncodeToString(t.last())}, nil
}

// VerifyFile verifies the snapshot file at path (see VerifyStream). Its errors name the
// file and wrap the stream's sentinels (ErrSnapshotTruncated, ErrSnapshotChecksum, ...).
func VerifyFile(path string) (FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return FileInfo{}, fmt.Errorf("persistence: snapshot file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return FileInfo{}, fmt.Errorf("persistence: snapshot file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return FileInfo{}, fmt.Errorf("persistence: snapshot file %s is not a regular file", path)
	}
	info, err := VerifyStream(f)
	if err != nil {
		return info, fmt.Errorf("snapshot file %s: %w", path, err)
	}
	return info, nil
}

// tailReader counts what it reads and keeps the last 32 bytes (the SHA-256 at the end
// of a stream).
type tailReader struct {
	r    io.Reader
	n    int64
	tail [32]byte
	k    int // valid bytes at the end of tail
}

func (t *tailReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if n > 0 {
		t.n += int64(n)
		b := p[:n]
		if len(b) >= 32 {
			copy(t.tail[:], b[len(b)-32:])
			t.k = 32
		} else {
			// Keep the newest 32 bytes: shift what is there, append b.
			keep := min(t.k, 32-len(b))
			copy(t.tail[:], t.tail[t.k-keep:t.k])
			copy(t.tail[keep:], b)
			t.k = keep + len(b)
		}
	}
	return n, err
}

func (t *tailReader) last() []byte { return t.tail[:t.k] }

// SetNodeID sets the node id written into the headers of later snapshots, for a store
// opened before its node's id was known.
func (s *Store) SetNodeID(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opts.NodeID = id
}

// Check reads every record of the store, as a snapshot would, and verifies the result
// as Restore would (persistence.Verify): every service and instance decodes, keys are
// in order and unique, and the stored counters match the records. It is meant for
// start-up, before a node serves anything: a corrupt file is refused with an error
// naming it instead of crashing or serving wrong answers later.
//
// What it finds: pages bbolt can no longer walk (a panic or memory fault while reading
// is recovered here and reported), records that no longer decode, lost or extra
// records. What it cannot find: bbolt keeps no checksum of its data pages, so a flipped
// bit that leaves a value still valid (a digit of a port, a letter of a name) goes
// unnoticed; nor does it see damage in free pages, which hold nothing.
func (s *Store) Check() error {
	if err := s.check(); err != nil {
		return fmt.Errorf("persistence: %s is corrupt: %w", s.path, err)
	}
	return nil
}

func (s *Store) check() (err error) {
	// A panic or a fault reading a corrupt page becomes the error.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("bbolt: %v", r)
		}
	}()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	sn, err := s.OpenSnapshot()
	if err != nil {
		return err
	}
	defer sn.Release()
	pr, pw := io.Pipe()
	verified := make(chan error, 1)
	go func() {
		_, err := Verify(pr)
		_, _ = io.Copy(io.Discard, pr) // let the writer finish after a failure
		verified <- err
	}()
	defer func() {
		// Runs before the recover above: the reader always ends.
		_ = pw.CloseWithError(err)
		if verr := <-verified; err == nil {
			err = verr
		}
	}()
	// WriteTo hands out slices of bbolt's memory map; copy them here, where a fault is
	// a recoverable panic, rather than in the reading goroutine.
	_, err = sn.WriteTo(copyingWriter{pw})
	return err
}

// copyingWriter writes a copy of every buffer it is given.
type copyingWriter struct{ w io.Writer }

func (c copyingWriter) Write(p []byte) (int, error) { return c.w.Write(bytes.Clone(p)) }
