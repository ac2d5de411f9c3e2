package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Cluster is N roster processes formed with --bootstrap-expect N.
type Cluster struct {
	t     *testing.T
	Nodes []*Server
}

// StartCluster starts n nodes at once (each needs the others to form) and waits until
// every one is ready and they agree on one leader. extra flags go to every node.
func StartCluster(t *testing.T, n int, extra ...string) *Cluster {
	t.Helper()
	c := &Cluster{t: t}
	for i := 0; i < n; i++ {
		c.Nodes = append(c.Nodes, NewServer(t, fmt.Sprintf("n%d", i+1)))
	}
	var join []string
	for _, s := range c.Nodes {
		join = append(join, "127.0.0.1:"+strconv.Itoa(s.Port))
	}
	for _, s := range c.Nodes {
		s.Extra = append([]string{"--bootstrap-expect", strconv.Itoa(n), "--join", strings.Join(join, ",")}, extra...)
		s.Launch()
	}
	for _, s := range c.Nodes {
		s.WaitReady()
	}
	c.Leader()
	return c
}

// raftView is GET /roster/v1/operator/raft.
type raftView struct {
	Leader  string `json:"leader"`
	Term    uint64 `json:"term"`
	Servers []struct {
		ID       string `json:"id"`
		RaftAddr string `json:"raftAddr"`
		HTTPAddr string `json:"httpAddr"`
		Leader   bool   `json:"leader"`
		Voter    bool   `json:"voter"`
	} `json:"servers"`
}

var fastHTTP = &http.Client{Timeout: 5 * time.Second}

func raftOf(s *Server) (raftView, error) {
	var v raftView
	resp, err := fastHTTP.Get(s.URL + "/roster/v1/operator/raft")
	if err != nil {
		return v, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return v, fmt.Errorf("GET raft: %s", resp.Status)
	}
	return v, json.NewDecoder(resp.Body).Decode(&v)
}

// Leader waits until every running node names the same leader and returns it.
func (c *Cluster) Leader() *Server {
	c.t.Helper()
	var leader *Server
	eventually(c.t, 20*time.Second, func() error {
		id := ""
		for _, s := range c.Running() {
			v, err := raftOf(s)
			if err != nil {
				return err
			}
			if v.Leader == "" {
				return fmt.Errorf("%s knows no leader", s.NodeID)
			}
			if id != "" && v.Leader != id {
				return fmt.Errorf("nodes disagree on the leader: %s vs %s", id, v.Leader)
			}
			id = v.Leader
		}
		for _, s := range c.Nodes {
			if s.NodeID == id {
				leader = s
				return nil
			}
		}
		return fmt.Errorf("leader %s is not one of the nodes", id)
	})
	return leader
}

// Running lists the nodes whose process is up.
func (c *Cluster) Running() []*Server {
	var out []*Server
	for _, s := range c.Nodes {
		if s.running() {
			out = append(out, s)
		}
	}
	return out
}

func (s *Server) running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd != nil
}

// outcome classifies a write's answer as a client sees it.
type outcome int

const (
	acked   outcome = iota // 200 ok
	failed                 // refused before it could have happened (connection refused, 4xx)
	unknown                // may or may not have happened (503, timeout, reset)
)

// putInstance writes a persistent instance through node s.
func putInstance(s *Server, svc string, port int) (outcome, error) {
	return write(s, http.MethodPost, svc, port)
}

func delInstance(s *Server, svc string, port int) (outcome, error) {
	return write(s, http.MethodDelete, svc, port)
}

func write(s *Server, method, svc string, port int) (outcome, error) {
	form := url.Values{"serviceName": {svc}, "ip": {"127.0.0.1"}, "port": {strconv.Itoa(port)}, "ephemeral": {"false"}}
	req, _ := http.NewRequest(method, s.URL+"/nacos/v1/ns/instance", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := fastHTTP.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			return failed, err
		}
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return failed, err
		}
		return unknown, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	switch {
	case resp.StatusCode == 200 && string(b) == "ok":
		return acked, nil
	case resp.StatusCode >= 400 && resp.StatusCode < 500:
		return failed, fmt.Errorf("%d %s", resp.StatusCode, b)
	}
	return unknown, fmt.Errorf("%d %s", resp.StatusCode, b)
}

// ports lists the ports of a service's instances as node s serves them; consistent
// asks for a linearizable read.
func ports(s *Server, svc string, consistent bool) (map[int]bool, error) {
	u := s.URL + "/nacos/v1/ns/instance/list?serviceName=" + url.QueryEscape(svc)
	if consistent {
		u += "&consistent=true"
	}
	resp, err := fastHTTP.Get(u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("list: %d %s", resp.StatusCode, b)
	}
	var info struct {
		Hosts []struct {
			Port int `json:"port"`
		} `json:"hosts"`
	}
	if err := json.Unmarshal(b, &info); err != nil {
		return nil, err
	}
	out := map[int]bool{}
	for _, h := range info.Hosts {
		out[h.Port] = true
	}
	return out, nil
}

// waitHas waits until every running node lists all wanted ports of svc.
func (c *Cluster) waitHas(svc string, want map[int]bool, timeout time.Duration) {
	c.t.Helper()
	eventually(c.t, timeout, func() error {
		for _, s := range c.Running() {
			got, err := ports(s, svc, false)
			if err != nil {
				return fmt.Errorf("%s: %v", s.NodeID, err)
			}
			for p := range want {
				if !got[p] {
					return fmt.Errorf("%s lacks port %d of %s (has %d of %d)", s.NodeID, p, svc, len(got), len(want))
				}
			}
		}
		return nil
	})
}

// kill9 sends SIGKILL and reaps the process, keeping its ports and data dir.
func (s *Server) kill9() {
	s.t.Helper()
	if _, err := s.signal(syscall.SIGKILL, stopTimeout); err != nil {
		s.t.Fatalf("kill -9 %s: %v", s.NodeID, err)
	}
	s.clear()
}

func readAll(resp *http.Response) string {
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func jsonDecode(r io.Reader, v any) error { return json.NewDecoder(r).Decode(v) }
