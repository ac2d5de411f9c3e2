package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// snapshotPath is Roster's snapshot endpoint (GET saves, PUT restores).
const snapshotPath = "/roster/v1/snapshot"

// maxErrorBody bounds how much of a failed snapshot answer is read.
const maxErrorBody = 64 << 10

// SnapshotHeader is what the server announces about a snapshot before sending it.
type SnapshotHeader struct {
	Index     uint64
	Term      uint64
	Services  int
	Instances int
}

// RestoreResult is the answer to a restore: the snapshot that is now the state and the
// Raft index at which it was installed.
type RestoreResult struct {
	FormatVersion uint32    `json:"formatVersion"`
	Index         uint64    `json:"index"`
	Term          uint64    `json:"term"`
	Created       time.Time `json:"created"`
	NodeID        string    `json:"nodeId"`
	Namespaces    int       `json:"namespaces"`
	Services      int       `json:"services"`
	Instances     int       `json:"instances"`
	Size          int64     `json:"size"`
	SHA256        string    `json:"sha256"`
	RaftIndex     uint64    `json:"raftIndex"`
}

// streaming is the client's HTTP client without its per-request timeout: a snapshot
// transfer takes as long as its size needs, so only ctx bounds it (and the server cuts
// a transfer that stops moving).
func (c *Client) streaming() *http.Client {
	hc := *c.http
	hc.Timeout = 0
	return &hc
}

// SaveSnapshot streams a snapshot of the server's whole persistent state into w: GET
// /roster/v1/snapshot, served by the leader. onHeader, when not nil, is called with the
// server's description before the body is copied. It returns the bytes written. The
// stream carries its own SHA-256; the caller verifies it before trusting it.
func (c *Client) SaveSnapshot(ctx context.Context, w io.Writer, onHeader func(SnapshotHeader)) (int64, error) {
	u := *c.base
	u.Path = c.base.Path + snapshotPath
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return 0, fmt.Errorf("client: GET %s: %w", snapshotPath, err)
	}
	c.authorize(req)
	resp, err := c.streaming().Do(req)
	if err != nil {
		return 0, fmt.Errorf("client: GET %s: %w", snapshotPath, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, errorAnswer(resp)
	}
	if onHeader != nil {
		onHeader(SnapshotHeader{
			Index:     headerUint(resp, "X-Roster-Snapshot-Index"),
			Term:      headerUint(resp, "X-Roster-Snapshot-Term"),
			Services:  int(headerUint(resp, "X-Roster-Snapshot-Services")),
			Instances: int(headerUint(resp, "X-Roster-Snapshot-Instances")),
		})
	}
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return n, fmt.Errorf("client: GET %s: after %d bytes: %w", snapshotPath, n, err)
	}
	return n, nil
}

// RestoreSnapshot replaces the server's whole persistent state with the snapshot in r
// (size bytes): PUT /roster/v1/snapshot. The leader verifies all of it before changing
// anything and answers once the restore is durable. A refused snapshot is an *Error
// (400, or 413 over the server's size limit).
func (c *Client) RestoreSnapshot(ctx context.Context, r io.Reader, size int64) (*RestoreResult, error) {
	u := *c.base
	u.Path = c.base.Path + snapshotPath
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u.String(), r)
	if err != nil {
		return nil, fmt.Errorf("client: PUT %s: %w", snapshotPath, err)
	}
	req.ContentLength = size
	if size == 0 {
		req.Body = http.NoBody
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	c.authorize(req)
	resp, err := c.streaming().Do(req)
	if err != nil {
		return nil, fmt.Errorf("client: PUT %s: %w", snapshotPath, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, errorAnswer(resp)
	}
	var res RestoreResult
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	if err != nil {
		return nil, fmt.Errorf("client: PUT %s: read answer: %w", snapshotPath, err)
	}
	if err := decode(b, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

func errorAnswer(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	return &Error{Status: resp.StatusCode, Body: string(b)}
}

func headerUint(resp *http.Response, name string) uint64 {
	v, _ := strconv.ParseUint(resp.Header.Get(name), 10, 64)
	return v
}
