package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/roster-registry/roster/naming"
	"github.com/roster-registry/roster/registry"
)

// SnapshotPath is where the whole persistent state is read (GET) and replaced (PUT) as
// one snapshot stream (persistence's format: header, records, SHA-256).
const SnapshotPath = "/roster/v1/snapshot"

// DefaultMaxSnapshot bounds an uploaded snapshot when Config.MaxSnapshot is 0.
const DefaultMaxSnapshot = 1 << 30

// snapshotIdle is how long a snapshot transfer may go without moving a byte before its
// connection is cut. It replaces the server's whole-request read and write timeouts,
// which a large snapshot on a slow link would outlast while making progress.
const snapshotIdle = 30 * time.Second

// Headers of a snapshot download, so a client can describe it before reading it all.
const (
	headerSnapshotIndex     = "X-Roster-Snapshot-Index"
	headerSnapshotTerm      = "X-Roster-Snapshot-Term"
	headerSnapshotServices  = "X-Roster-Snapshot-Services"
	headerSnapshotInstances = "X-Roster-Snapshot-Instances"
)

// snapshotRoutes serves save and restore. Both run on the leader; another node sends
// the request on to it (leaderOnly), so the snapshot is always the leader's and a
// restore always enters Raft where it can.
func (a *API) snapshotRoutes(r chi.Router) {
	r.Group(func(r chi.Router) {
		r.Use(a.requireReady)
		r.Get(SnapshotPath, a.wrap(a.snapshotTransfer(a.leaderOnly(a.saveSnapshot))))
		r.Put(SnapshotPath, a.wrap(a.snapshotTransfer(a.leaderOnly(a.restoreSnapshot))))
	})
}

// bodyLimit is the largest body a request may carry: the snapshot upload has its own.
func (a *API) bodyLimit(r *http.Request) int64 {
	if r.Method == http.MethodPut && r.URL.Path == SnapshotPath {
		return a.cfg.MaxSnapshot
	}
	return a.cfg.MaxBody
}

// saveSnapshot streams a consistent snapshot of all persistent state. The barrier
// first makes the view hold every write committed before the request (a leader elected
// a moment ago may not have applied them all yet); the view is then one bbolt read
// transaction, so writes that go on meanwhile are either wholly in it or not at all,
// and its header's index is exactly the last entry it reflects.
func (a *API) saveSnapshot(w http.ResponseWriter, r *http.Request) error {
	if err := a.reg.Barrier(r.Context()); err != nil {
		return err
	}
	sn, err := a.reg.OpenSnapshot()
	if err != nil {
		return err
	}
	defer sn.Release()
	h := sn.Header()
	start := time.Now()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="roster-%d.snap"`, h.Index))
	w.Header().Set(headerSnapshotIndex, strconv.FormatUint(h.Index, 10))
	w.Header().Set(headerSnapshotTerm, strconv.FormatUint(h.Term, 10))
	w.Header().Set(headerSnapshotServices, strconv.Itoa(h.Services))
	w.Header().Set(headerSnapshotInstances, strconv.Itoa(h.Instances))
	w.WriteHeader(http.StatusOK)
	n, err := sn.WriteTo(w)
	if err != nil {
		// The status is out. Cut the connection so the client sees a broken transfer,
		// never a clean end of a short one (it would fail verification anyway).
		a.log.Warn("snapshot download failed", "request_id", middleware.GetReqID(r.Context()), "index", h.Index, "bytes", n, "err", err)
		panic(http.ErrAbortHandler)
	}
	a.log.Info("snapshot saved", "request_id", middleware.GetReqID(r.Context()), "index", h.Index, "services", h.Services,
		"instances", h.Instances, "bytes", n, "duration", time.Since(start))
	return nil
}

// RestoreResult is the answer to a restore: the snapshot that is now the state, and
// the Raft index at which it was installed.
type RestoreResult struct {
	registry.SnapshotInfo
	RaftIndex uint64 `json:"raftIndex"`
}

// restoreSnapshot replaces all persistent state with the uploaded snapshot. The upload
// is spooled to a file and verified in full (magic, version, every record, counts,
// SHA-256) before anything changes; only then is it handed to Raft, which installs it
// on every member (registry.RestoreSnapshot). The answer comes once the restore is durable
// on a quorum. A bad upload is answered 400 (413 over the size limit) and changes
// nothing. Ephemeral instances are not in snapshots and are left as they are.
func (a *API) restoreSnapshot(w http.ResponseWriter, r *http.Request) error {
	if !a.restoring.TryLock() {
		return naming.Errorf(http.StatusConflict, "a snapshot restore is already running on this node; retry when it has finished")
	}
	defer a.restoring.Unlock()
	if r.ContentLength == 0 {
		return naming.BadRequest("snapshot refused: the upload is empty; nothing was changed")
	}

	spool, err := os.CreateTemp(a.cfg.SpoolDir, "snapshot-upload-*")
	if err != nil {
		return fmt.Errorf("spool snapshot upload: %w", err)
	}
	defer func() {
		_ = spool.Close()
		_ = os.Remove(spool.Name())
	}()
	start := time.Now()
	info, err := a.reg.VerifySnapshot(io.TeeReader(r.Body, spool))
	if err != nil {
		// Read what is left (bounded by the limit): an upload over the limit is told so
		// even when its first bytes already failed to verify.
		if _, derr := io.Copy(io.Discard, r.Body); derr != nil {
			err = errors.Join(err, derr)
		}
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			return naming.Errorf(http.StatusRequestEntityTooLarge,
				"snapshot refused: the upload exceeds the limit of %d bytes (server flag --max-snapshot-size); nothing was changed", tooBig.Limit)
		case info.Size == 0:
			return naming.BadRequest("snapshot refused: the upload is empty; nothing was changed")
		case registry.IsSnapshotError(err):
			return naming.BadRequest(fmt.Sprintf("snapshot refused: %v; nothing was changed", err))
		}
		return fmt.Errorf("read snapshot upload: %w", err)
	}
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("spool snapshot upload: %w", err)
	}
	verified := time.Since(start)
	// The body is read; the restore may take minutes without a byte moving. Keep the
	// server's read of the idle connection from timing out meanwhile (the answer's write
	// deadline is extended when it is written).
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(registry.SnapshotRestoreTimeout + snapshotIdle))

	// The restore is not abandoned when the client goes away: once raft has taken it,
	// it completes either way, and raftnode waits for raft's answer before the spool
	// file is closed.
	raftIndex, err := a.reg.RestoreSnapshot(context.WithoutCancel(r.Context()), spool, info.Size, info.Index)
	if err != nil {
		return err
	}
	res := RestoreResult{SnapshotInfo: info, RaftIndex: raftIndex}
	a.log.Info("snapshot restored", "request_id", middleware.GetReqID(r.Context()), "index", info.Index, "raft_index", res.RaftIndex,
		"services", info.Services, "instances", info.Instances, "bytes", info.Size,
		"upload_and_verify", verified, "duration", time.Since(start))
	return writeJSON(w, res)
}

// snapshotTransfer replaces the server's whole-request timeouts by idle timeouts for
// the duration of a snapshot transfer: every read of the body and every write of the
// answer pushes the connection's deadline snapshotIdle ahead. It wraps what a proxied
// request reads and writes too, so a follower passing a snapshot on to the leader is
// not cut either.
func (a *API) snapshotTransfer(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		// Sent on to the leader, a transfer is kept alive by its progress, below, not cut
		// at the forward timeout: a restore answers only once it is installed.
		r = registry.Unbounded(r)
		rc := http.NewResponseController(w)
		d := &deadlines{rc: rc}
		d.extendRead()
		if r.Body != nil {
			r.Body = &progressReader{ReadCloser: r.Body, d: d}
		}
		return h(&progressWriter{ResponseWriter: w, d: d}, r)
	}
}

// deadlines moves a connection's deadlines forward, at most once a second.
type deadlines struct {
	rc                *http.ResponseController
	lastRead, lastWri time.Time
}

func (d *deadlines) extendRead() {
	if now := time.Now(); now.Sub(d.lastRead) > time.Second {
		d.lastRead = now
		_ = d.rc.SetReadDeadline(now.Add(snapshotIdle)) // ErrNotSupported: keep the server's
	}
}

func (d *deadlines) extendWrite() {
	if now := time.Now(); now.Sub(d.lastWri) > time.Second {
		d.lastWri = now
		_ = d.rc.SetWriteDeadline(now.Add(snapshotIdle))
	}
}

type progressReader struct {
	io.ReadCloser
	d *deadlines
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.ReadCloser.Read(b)
	if n > 0 {
		p.d.extendRead()
	}
	return n, err
}

// progressWriter extends the write deadline before each write: the first one may
// follow a long restore.
type progressWriter struct {
	http.ResponseWriter
	d *deadlines
}

func (p *progressWriter) WriteHeader(code int) {
	p.d.extendWrite()
	p.ResponseWriter.WriteHeader(code)
}

func (p *progressWriter) Write(b []byte) (int, error) {
	p.d.extendWrite()
	return p.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController (and the reverse proxy's flushes) reach the
// connection.
func (p *progressWriter) Unwrap() http.ResponseWriter { return p.ResponseWriter }
