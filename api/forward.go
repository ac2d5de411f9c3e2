package api

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/roster-registry/roster/cluster"
)

// forwardTimeout bounds a request sent on to the member responsible for a 1.x client.
const forwardTimeout = 10 * time.Second

// toResponsible sends an ephemeral write or beat for client ip:port on to the member
// responsible for that client, and copies its answer back; it reports whether it did.
// It does not forward a request that was already forwarded, and when the responsible
// member cannot be reached at all it leaves the request to this node: availability
// first, as Distro is an AP store.
func (a *API) toResponsible(w http.ResponseWriter, r *http.Request, body []byte, ip string, port int) bool {
	if a.cfg.Distro == nil || r.Header.Get(cluster.ForwardedHeader) != "" {
		return false
	}
	peer, self := a.cfg.Distro.Responsible(net.JoinHostPort(ip, strconv.Itoa(port)))
	if self || peer.HTTPAddr == "" {
		return false
	}
	u := *r.URL
	u.Scheme, u.Host = "http", peer.HTTPAddr
	req, err := http.NewRequestWithContext(r.Context(), r.Method, u.String(), bytes.NewReader(body))
	if err != nil {
		return false
	}
	for _, h := range []string{"Content-Type", "User-Agent", "Client-Version", "Authorization"} {
		if v := r.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	req.Header.Set(cluster.ForwardedHeader, "1")
	// The member's own transport: it carries the node credential.
	resp, err := (&http.Client{Transport: a.cfg.Distro.Transport(), Timeout: forwardTimeout}).Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return false // never reached it: take the request here
		}
		writeText(w, http.StatusServiceUnavailable, "responsible member "+peer.ID+" did not answer: "+err.Error())
		return true
	}
	defer resp.Body.Close()
	for _, h := range []string{"Content-Type"} {
		if v := resp.Header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, io.LimitReader(resp.Body, 16<<20))
	return true
}
