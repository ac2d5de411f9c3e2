package chaos

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func newRand(stream uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, stream)) }

var hc = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

// probe is for requests whose answer time is itself asserted: its timeout is far past
// every server bound, so a late answer is measured rather than cut off at hc's 5 s.
var probe = &http.Client{Timeout: 3 * forwardTimeout}

// beatHC is the ephemeral clients' HTTP client: Nacos clients time a request out after
// a few seconds and try another server.
var beatHC = &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256}}

type raftView struct {
	Leader       string `json:"leader"`
	Term         uint64 `json:"term"`
	CommitIndex  uint64 `json:"commitIndex"`
	AppliedIndex uint64 `json:"appliedIndex"`
	Servers      []struct {
		ID     string `json:"id"`
		Leader bool   `json:"leader"`
		Voter  bool   `json:"voter"`
	} `json:"servers"`
}

func raftOf(n *Node) (raftView, error) {
	var v raftView
	resp, err := hc.Get(n.URL + "/roster/v1/operator/raft")
	if err != nil {
		return v, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return v, fmt.Errorf("GET raft of %s: %s", n.ID, resp.Status)
	}
	return v, json.NewDecoder(resp.Body).Decode(&v)
}

// outcome of a write as a client sees it.
type outcome int

const (
	acked   outcome = iota // 200 ok
	failed                 // cannot have happened (refused connection, 4xx)
	unknown                // may or may not have happened (timeout, 5xx, reset)
)

func (o outcome) String() string { return [...]string{"acked", "failed", "unknown"}[o] }

func doForm(method, u string, form url.Values) (outcome, int, string, error) {
	return doFormWith(hc, method, u, form)
}

func doFormWith(c *http.Client, method, u string, form url.Values) (outcome, int, string, error) {
	req, _ := http.NewRequest(method, u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.Is(err, syscall.ECONNREFUSED) || (errors.As(err, &op) && op.Op == "dial") {
			return failed, 0, "", err
		}
		return unknown, 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	switch {
	case resp.StatusCode == 200:
		return acked, 200, string(b), nil
	case resp.StatusCode >= 400 && resp.StatusCode < 500:
		return failed, resp.StatusCode, string(b), fmt.Errorf("%d %s", resp.StatusCode, b)
	}
	return unknown, resp.StatusCode, string(b), fmt.Errorf("%d %s", resp.StatusCode, b)
}

// putP and delP write a persistent instance 127.0.0.1:port of svc through n.
func putP(n *Node, svc string, port int) (outcome, int) { return putPAt(n, svc, "127.0.0.1", port) }

// unprobedIP is outside --health-check-cidrs: its persistent instances are never probed,
// so they cause no health-flip writes (R9s needs a log that stays still).
const unprobedIP = "10.255.0.9"

func putPAt(n *Node, svc, ip string, port int) (outcome, int) {
	o, code, _, _ := doForm(http.MethodPost, n.URL+"/nacos/v1/ns/instance", url.Values{
		"serviceName": {svc}, "ip": {ip}, "port": {strconv.Itoa(port)}, "ephemeral": {"false"}})
	return o, code
}

func delP(n *Node, svc string, port int) (outcome, int) {
	o, code, _, _ := doForm(http.MethodDelete, n.URL+"/nacos/v1/ns/instance", url.Values{
		"serviceName": {svc}, "ip": {"127.0.0.1"}, "port": {strconv.Itoa(port)}, "ephemeral": {"false"}})
	return o, code
}

type host struct {
	IP      string `json:"ip"`
	Port    int    `json:"port"`
	Healthy bool   `json:"healthy"`
}

// list is instance/list of svc on n (all instances, healthy or not).
func list(n *Node, svc string, consistent bool) ([]host, error) {
	u := n.URL + "/nacos/v1/ns/instance/list?serviceName=" + url.QueryEscape(svc)
	if consistent {
		u += "&consistent=true"
	}
	resp, err := hc.Get(u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("list %s on %s: %d %s", svc, n.ID, resp.StatusCode, b)
	}
	var info struct {
		Hosts []host `json:"hosts"`
	}
	if err := json.Unmarshal(b, &info); err != nil {
		return nil, err
	}
	return info.Hosts, nil
}

func portSet(n *Node, svc string, consistent bool) (map[int]bool, error) {
	hs, err := list(n, svc, consistent)
	if err != nil {
		return nil, err
	}
	out := map[int]bool{}
	for _, h := range hs {
		out[h.Port] = true
	}
	return out, nil
}

// stateOf is what n serves of the given services, as one comparable string: the
// registry state the suite compares between nodes ("FSM checksum").
func stateOf(n *Node, svcs []string) (string, error) {
	var b strings.Builder
	for _, svc := range svcs {
		hs, err := list(n, svc, false)
		if err != nil {
			return "", err
		}
		ports := make([]int, 0, len(hs))
		for _, h := range hs {
			ports = append(ports, h.Port)
		}
		sortInts(ports)
		fmt.Fprintf(&b, "%s:%v;", svc, ports)
	}
	return b.String(), nil
}

func sortInts(a []int) {
	for i := 1; i < len(a); i++ {
		for j := i; j > 0 && a[j] < a[j-1]; j-- {
			a[j], a[j-1] = a[j-1], a[j]
		}
	}
}

// converged waits until every given node serves the same state of svcs and returns how
// long that took.
func converged(nodes []*Node, svcs []string, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	err := within(timeout, func() error {
		first := ""
		for i, n := range nodes {
			s, err := stateOf(n, svcs)
			if err != nil {
				return err
			}
			if i == 0 {
				first = s
			} else if s != first {
				return fmt.Errorf("%s serves a different state than %s", n.ID, nodes[0].ID)
			}
		}
		return nil
	})
	return time.Since(start), err
}

// Beaters are ephemeral clients as Nacos 1.x runs them: register, beat every
// beatInterval with the full beat info, register again on 20404.
type Beaters struct {
	Service string
	nodes   func() []*Node
	mu      sync.Mutex
	live    map[int]*beater // by port
	all     map[int]*beater // by port, stopped ones too (the latest start of each)
	wg      sync.WaitGroup
	// Reregs counts 20404 answers (the instance was missing where the beat landed).
	Reregs atomic.Int64
	Errors atomic.Int64
}

type beater struct {
	port      int
	stop      chan struct{}
	stoppedAt time.Time
	// exited is closed when the client's goroutine returned: no request of it is in
	// flight any more (a beat sent just before the stop may be answered seconds later
	// on a loaded machine, and counts from when the server took it).
	exited   chan struct{}
	exitedAt time.Time
	// firstOK is when the first beat or register was answered ok.
	firstOK atomic.Int64
	meta    string
}

func NewBeaters(svc string, nodes func() []*Node) *Beaters {
	return &Beaters{Service: svc, nodes: nodes, live: map[int]*beater{}, all: map[int]*beater{}}
}

// Start starts a client for port; meta is its metadata JSON (may be empty).
func (b *Beaters) Start(port int, meta string) {
	bt := &beater{port: port, stop: make(chan struct{}), exited: make(chan struct{}), meta: meta}
	b.mu.Lock()
	b.live[port] = bt
	b.all[port] = bt
	b.mu.Unlock()
	b.wg.Add(1)
	go func() {
		b.run(bt)
		bt.exitedAt = time.Now()
		close(bt.exited)
	}()
}

func (b *Beaters) pick(i int) *Node {
	ns := b.nodes()
	var up []*Node
	for _, n := range ns {
		if n.Up() {
			up = append(up, n)
		}
	}
	if len(up) == 0 {
		return nil
	}
	return up[i%len(up)]
}

func (b *Beaters) register(n *Node, bt *beater) bool {
	form := url.Values{"serviceName": {b.Service}, "ip": {"127.0.0.1"}, "port": {strconv.Itoa(bt.port)}, "ephemeral": {"true"}}
	if bt.meta != "" {
		form.Set("metadata", bt.meta)
	}
	o, _, _, _ := doFormWith(beatHC, http.MethodPost, n.URL+"/nacos/v1/ns/instance", form)
	return o == acked
}

func (b *Beaters) run(bt *beater) {
	defer b.wg.Done()
	// Spread the clients over the nodes and over the beat interval.
	offset := time.Duration(bt.port%1000) * beatInterval / 1000
	select {
	case <-time.After(offset):
	case <-bt.stop:
		return
	}
	i := bt.port
	registered, retried := false, false
	tick := time.NewTicker(beatInterval)
	defer tick.Stop()
	for {
		n := b.pick(i)
		if n != nil {
			if !registered {
				registered = b.register(n, bt)
				if !registered {
					i++
				}
				if registered && bt.firstOK.Load() == 0 {
					bt.firstOK.Store(time.Now().UnixNano())
				}
			} else {
				beat := fmt.Sprintf(`{"ip":"127.0.0.1","port":%d,"serviceName":"%s","cluster":"DEFAULT"}`, bt.port, b.Service)
				o, _, body, _ := doFormWith(beatHC, http.MethodPut, n.URL+"/nacos/v1/ns/instance/beat", url.Values{"serviceName": {b.Service}, "beat": {beat}})
				switch {
				case o == acked && strings.Contains(body, "20404"):
					b.Reregs.Add(1)
					registered = b.register(n, bt)
				case o != acked:
					// A Nacos client moves to the next server after a failed request.
					b.Errors.Add(1)
					i++
					if !retried {
						retried = true
						continue
					}
				}
			}
		}
		retried = false
		select {
		case <-bt.stop:
			return
		case <-tick.C:
		}
	}
}

// StopOne stops the client of port (no deregister: the process "dies").
func (b *Beaters) StopOne(port int) time.Time {
	b.mu.Lock()
	bt := b.live[port]
	delete(b.live, port)
	b.mu.Unlock()
	now := time.Now()
	if bt != nil {
		bt.stoppedAt = now
		close(bt.stop)
	}
	return now
}

// ExitedAt waits until the stopped client of port has no request in flight and
// returns when that was (the zero time for a port never started).
func (b *Beaters) ExitedAt(port int) time.Time {
	b.mu.Lock()
	bt := b.all[port]
	b.mu.Unlock()
	if bt == nil {
		return time.Time{}
	}
	<-bt.exited
	return bt.exitedAt
}

// Live lists the ports of running clients whose first registration was answered more
// than settle ago (time enough to reach every member).
func (b *Beaters) Live(settle time.Duration) map[int]bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[int]bool{}
	cut := time.Now().Add(-settle).UnixNano()
	for p, bt := range b.live {
		if f := bt.firstOK.Load(); f != 0 && f < cut {
			out[p] = true
		}
	}
	return out
}

func (b *Beaters) StopAll() {
	b.mu.Lock()
	for p, bt := range b.live {
		close(bt.stop)
		delete(b.live, p)
	}
	b.mu.Unlock()
	b.wg.Wait()
}

// missing samples every node once: live clients (registered more than grace ago)
// missing from a node's list.
func (b *Beaters) missing(nodes []*Node) (int, string) {
	live := b.Live(3 * time.Second)
	missing := 0
	var examples []string
	for _, n := range nodes {
		got, err := portSet(n, b.Service, false)
		if err != nil {
			continue // a node that does not answer is not a removal
		}
		var ports []int
		for p := range live {
			if !got[p] {
				missing++
				ports = append(ports, p)
			}
		}
		if len(ports) > 0 {
			sortInts(ports)
			examples = append(examples, fmt.Sprintf("ports %v missing on %s at %s", ports, n.ID, time.Now().UTC().Format("15:04:05.000")))
		}
	}
	return missing, strings.Join(examples, "; ")
}
