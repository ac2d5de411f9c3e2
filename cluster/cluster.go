package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/roster-registry/roster/nodeauth"
	"github.com/roster-registry/roster/raftnode"
)

// Defaults of the cluster's timing.
const (
	DefaultHoldTimeout  = 5 * time.Second
	DefaultSyncInterval = time.Second
	// DefaultForwardTimeout outwaits the leader's own default commit wait
	// (raftnode.DefaultApplyTimeout, 10 s) by a round trip's margin.
	DefaultForwardTimeout = 12 * time.Second
)

// Config holds a node's cluster settings.
type Config struct {
	NodeID   string
	HTTPAddr string // this node's advertised HTTP address, host:port
	RaftAddr string // this node's advertised Raft address
	DataDir  string // members.json is kept here
	// BootstrapExpect > 0 forms a new cluster once that many empty nodes know each other.
	BootstrapExpect int
	// Join lists HTTP addresses of members (this node may be among them).
	Join []string
	// HoldTimeout bounds how long a write waits for a leader before 503.
	HoldTimeout time.Duration
	// ForwardTimeout bounds how long this node waits for the leader to answer a request
	// it sent on (a forwarded write, a consistent read, a leader-only request) before it
	// answers 503 itself: a leader this node cannot reach any more (a partition that
	// holds bytes rather than refusing them) must not keep the client until it gives up.
	// For a proxied request it bounds the wait for the answer to begin, not a stream
	// (a snapshot download) after that. It should exceed the leader's apply timeout,
	// else a slow but healthy commit reaches the client as 503 with an unknown outcome.
	// Default DefaultForwardTimeout.
	ForwardTimeout time.Duration
	// SyncInterval is how often a follower announces itself to the leader and copies
	// the member table.
	SyncInterval time.Duration
	Logger       *slog.Logger
	// Credential is proved on every request to another node and required on the
	// internal routes. Nil gives the node a random key of its own (it runs alone).
	Credential *nodeauth.Credential
	// CallTimeout bounds one typed call to another member (Call). Default
	// DefaultCallTimeout.
	CallTimeout time.Duration
	// Applied reports the highest log index this node's FSM has applied. With it, a
	// write forwarded to the leader is answered only once this node has applied it too,
	// so a client reads its own writes (and its own grants) through the node it wrote
	// to. Nil skips that wait.
	Applied func() uint64
	// WaitApplied, when set, is how that wait is done: it returns once this node has
	// applied index (true), or when ctx ends or timeout passes (false), woken by each
	// apply (persistence.Store.WaitApplied). Nil polls Applied.
	WaitApplied func(ctx context.Context, index uint64, timeout time.Duration) bool
}

// Member is one node as the cluster knows it.
type Member struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raftAddr"`
	HTTPAddr string `json:"httpAddr"`
}

// Cluster is this node's view of and part in the cluster.
type Cluster struct {
	cfg    Config
	node   *raftnode.Node
	log    *slog.Logger
	client *http.Client

	mu          sync.Mutex
	members     map[string]Member
	lastRefusal time.Time  // when a refused credential was last logged
	saveMu      sync.Mutex // one save of members.json at a time (save)

	calls handlers // methods of typed calls this member serves (call.go)

	fwdMu      sync.Mutex
	forwarders map[string]*forwarder // by leader HTTP address (forward.go)

	// The leader's folding of writes into batch entries (fold.go).
	propOnce                      sync.Once
	prop                          *proposer
	foldInFlight                  int // proposals in flight; 0 means foldInFlight
	foldAllowed                   atomic.Bool
	batchers                      map[string]bool // member id → its announcement said it applies batches; under mu
	foldedEntries, foldedCommands atomic.Uint64

	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

// ErrRemoved refuses a node that has Raft state but is not in the configuration: it was
// removed, and re-adding it behind the operator's back would undo the removal.
var ErrRemoved = errors.New("cluster: this node has data but is not a member of the cluster (it was removed); wipe its data dir to join again")

// New loads the member table kept in the data dir and records this node in it.
func New(cfg Config, node *raftnode.Node) (*Cluster, error) {
	if cfg.HoldTimeout <= 0 {
		cfg.HoldTimeout = DefaultHoldTimeout
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = DefaultCallTimeout
	}
	if cfg.ForwardTimeout <= 0 {
		cfg.ForwardTimeout = DefaultForwardTimeout
	}
	if cfg.SyncInterval <= 0 {
		cfg.SyncInterval = DefaultSyncInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Credential == nil {
		cfg.Credential = nodeauth.Ephemeral()
	}
	c := &Cluster{
		cfg:     cfg,
		node:    node,
		log:     cfg.Logger.With("component", "cluster"),
		client:  cfg.Credential.Client(15 * time.Second),
		members: map[string]Member{},
		stop:    make(chan struct{}),
	}
	if err := c.load(); err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.members[cfg.NodeID] = c.self()
	c.mu.Unlock()
	return c, nil
}

// KnowsOthers reports whether the member table kept in dataDir names any node other
// than self: a node that was ever part of a cluster must not run as a lone node.
func KnowsOthers(dataDir, self string) bool {
	b, err := os.ReadFile(filepath.Join(dataDir, "members.json"))
	if err != nil {
		return false
	}
	var list []Member
	if json.Unmarshal(b, &list) != nil {
		return true // unreadable: assume the worst
	}
	for _, m := range list {
		if m.ID != self {
			return true
		}
	}
	return false
}

func (c *Cluster) self() Member {
	return Member{ID: c.cfg.NodeID, RaftAddr: c.cfg.RaftAddr, HTTPAddr: c.cfg.HTTPAddr}
}

func (c *Cluster) tablePath() string { return filepath.Join(c.cfg.DataDir, "members.json") }

func (c *Cluster) load() error {
	b, err := os.ReadFile(c.tablePath())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cluster: read %s: %w", c.tablePath(), err)
	}
	var list []Member
	if err := json.Unmarshal(b, &list); err != nil {
		return fmt.Errorf("cluster: %s is not a member table: %w", c.tablePath(), err)
	}
	for _, m := range list {
		c.members[m.ID] = m
	}
	return nil
}

// save writes the table through a temp file and a rename; a failure only costs a
// slower rediscovery after a restart, so it is logged, not returned. Saves run one at
// a time, each writing the table as it is when its turn comes: joins are served
// concurrently, and saves sharing the temp file would leave members.json holding an
// older table or a mix of two (which the next start refuses).
func (c *Cluster) save() {
	c.saveMu.Lock()
	defer c.saveMu.Unlock()
	c.mu.Lock()
	list := c.tableLocked()
	c.mu.Unlock()
	b, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return
	}
	tmp := c.tablePath() + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		c.log.Warn("save member table", "err", err)
		return
	}
	if err := os.Rename(tmp, c.tablePath()); err != nil {
		c.log.Warn("save member table", "err", err)
	}
}

// Members returns the members of the Raft configuration with their HTTP addresses,
// sorted by id. A member whose HTTP address is not known yet has it blank.
func (c *Cluster) Members() []Member {
	servers, err := c.node.Servers()
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil || len(servers) == 0 {
		return []Member{c.members[c.cfg.NodeID]}
	}
	out := make([]Member, 0, len(servers))
	for _, s := range servers {
		m := c.members[s.ID]
		m.ID, m.RaftAddr = s.ID, s.Address
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Member returns what the table knows of one node.
func (c *Cluster) Member(id string) (Member, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, ok := c.members[id]
	return m, ok
}

// LeaderHTTP is the leader's HTTP address, when a leader is known and its address is.
func (c *Cluster) LeaderHTTP() (string, bool) {
	id, _ := c.node.Leader()
	if id == "" {
		return "", false
	}
	m, ok := c.Member(id)
	if !ok || m.HTTPAddr == "" {
		return "", false
	}
	return m.HTTPAddr, true
}

// record adds or updates members; only the leader's table and joins feed it.
func (c *Cluster) record(ms ...Member) {
	c.mu.Lock()
	changed := false
	for _, m := range ms {
		if m.ID == "" || m.ID == c.cfg.NodeID {
			continue
		}
		if old, ok := c.members[m.ID]; !ok || old != m {
			c.members[m.ID] = m
			changed = true
		}
	}
	c.mu.Unlock()
	if changed {
		c.save()
	}
}

func (c *Cluster) forget(id string) {
	c.mu.Lock()
	delete(c.members, id)
	c.mu.Unlock()
	c.save()
}

func (c *Cluster) tableLocked() []Member {
	list := make([]Member, 0, len(c.members))
	for _, m := range c.members {
		list = append(list, m)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].ID < list[j].ID })
	return list
}

// Start runs cluster formation and the sync loop until Stop.
func (c *Cluster) Start() {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.run()
	}()
}

// Stop ends the background work and waits for it.
func (c *Cluster) Stop() {
	c.once.Do(func() { close(c.stop) })
	c.wg.Wait()
}

// standalone reports whether this node was started without cluster flags.
func (c *Cluster) standalone() bool { return c.cfg.BootstrapExpect == 0 && len(c.cfg.Join) == 0 }

func (c *Cluster) run() {
	if !c.node.HasState() && c.cfg.BootstrapExpect > 0 {
		c.form()
	}
	t := time.NewTicker(c.cfg.SyncInterval)
	defer t.Stop()
	if c.standalone() {
		// Alone it applies its own batches; only the configuration may not be there yet.
		for c.refreshFold(); !c.foldAllowed.Load(); c.refreshFold() {
			select {
			case <-c.stop:
				return
			case <-t.C:
			}
		}
		return
	}
	for {
		c.prune()
		c.sync()
		c.refreshFold()
		select {
		case <-c.stop:
			return
		case <-t.C:
		case <-c.node.LeaderCh():
		}
	}
}

// form waits until BootstrapExpect empty nodes know each other and bootstraps them all
// with one configuration (each of them computes the same sorted list). A peer that
// already has state or a leader means a cluster exists: this node joins it instead, so
// an empty node never starts a second cluster beside a live one.
func (c *Cluster) form() {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		if c.node.HasState() {
			return
		}
		found := map[string]Member{c.cfg.NodeID: c.self()}
		existing := false
		for _, addr := range c.cfg.Join {
			info, err := c.info(addr)
			if err != nil {
				continue
			}
			if info.HasState || info.Leader != "" {
				existing = true
			}
			found[info.ID] = Member{ID: info.ID, RaftAddr: info.RaftAddr, HTTPAddr: info.HTTPAddr}
		}
		list := make([]Member, 0, len(found))
		for _, m := range found {
			list = append(list, m)
		}
		c.record(list...)
		if existing {
			c.log.Info("a cluster already exists; joining it instead of bootstrapping")
			return
		}
		if len(found) >= c.cfg.BootstrapExpect {
			servers := make([]raftnode.Server, 0, len(list))
			for _, m := range list {
				servers = append(servers, raftnode.Server{ID: m.ID, Address: m.RaftAddr, Voter: true})
			}
			sort.Slice(servers, func(i, j int) bool { return servers[i].ID < servers[j].ID })
			err := c.node.BootstrapServers(servers)
			switch {
			case err == nil:
				c.log.Info("bootstrapped the cluster", "members", len(servers))
			case errors.Is(err, raftnode.ErrAlreadyBootstrapped):
			default:
				c.log.Warn("bootstrap failed", "err", err)
				continue
			}
			return
		}
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
	}
}

// prune drops from the table the nodes that are not in the Raft configuration: members
// removed from it. RemovePeer forgets a member only on the leader it ran on; else every
// other member would keep it in its table and members.json for good, and hand it back
// to everyone once it became leader. Before this node knows a configuration the table
// is what formation and joins found, and is kept.
func (c *Cluster) prune() {
	servers, err := c.node.Servers()
	if err != nil || len(servers) == 0 {
		return
	}
	in := make(map[string]bool, len(servers))
	for _, s := range servers {
		in[s.ID] = true
	}
	c.mu.Lock()
	changed := false
	for id := range c.members {
		if id != c.cfg.NodeID && !in[id] {
			delete(c.members, id)
			changed = true
		}
	}
	c.mu.Unlock()
	if changed {
		c.save()
	}
}

// sync announces this node to the leader (which adds it as a voter when it is new, or
// updates its address) and copies the leader's member table.
func (c *Cluster) sync() {
	if c.node.IsLeader() {
		return
	}
	targets := []string{}
	if addr, ok := c.LeaderHTTP(); ok {
		targets = append(targets, addr)
	}
	c.mu.Lock()
	for _, m := range c.members {
		if m.ID != c.cfg.NodeID && m.HTTPAddr != "" {
			targets = append(targets, m.HTTPAddr)
		}
	}
	c.mu.Unlock()
	targets = append(targets, c.cfg.Join...)
	seen := map[string]bool{c.cfg.HTTPAddr: true}
	for _, addr := range targets {
		if seen[addr] {
			continue
		}
		seen[addr] = true
		table, err := c.announce(addr)
		if err != nil {
			if errors.Is(err, ErrRemoved) {
				c.log.Error("not joining", "err", err)
				return
			}
			c.log.Debug("announce", "to", addr, "err", err)
			continue
		}
		c.record(table...)
		return
	}
}

// Join handles a node's announcement on the leader: a new node (no state) is added as a
// voter, a member whose Raft address changed is re-added at the new address, and a
// node with state that is not a member is refused (it was removed).
func (c *Cluster) Join(req JoinRequest) ([]Member, error) {
	if !c.node.IsLeader() {
		return nil, raftnode.ErrNotLeader
	}
	c.noteAppliesBatches(req.ID, req.AppliesBatches)
	servers, err := c.node.Servers()
	if err != nil {
		return nil, err
	}
	var current *raftnode.Server
	for i := range servers {
		if servers[i].ID == req.ID {
			current = &servers[i]
		}
	}
	switch {
	case current == nil && req.HasState:
		return nil, ErrRemoved
	case current == nil && !req.AppliesBatches:
		return nil, ErrBatchesUnsupported
	case current == nil || current.Address != req.RaftAddr:
		c.log.Info("adding voter", "id", req.ID, "raft", req.RaftAddr, "http", req.HTTPAddr)
		if err := c.node.AddVoter(req.ID, req.RaftAddr, 0); err != nil {
			return nil, err
		}
	}
	c.record(Member{ID: req.ID, RaftAddr: req.RaftAddr, HTTPAddr: req.HTTPAddr})
	c.mu.Lock()
	table := c.tableLocked()
	c.mu.Unlock()
	return table, nil
}

// RemovePeer removes a member from the Raft configuration (on the leader).
func (c *Cluster) RemovePeer(id string) error {
	if err := c.node.RemoveServer(id); err != nil {
		return err
	}
	c.forget(id)
	return nil
}

// jitter waits a random 50–150 ms, or less if ctx ends.
func jitter(ctx context.Context) error {
	t := time.NewTimer(time.Duration(50+rand.IntN(100)) * time.Millisecond)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func normalize(addr string) string {
	if strings.HasPrefix(addr, "http://") || strings.HasPrefix(addr, "https://") {
		return strings.TrimRight(addr, "/")
	}
	return "http://" + addr
}

// CheckNode verifies that a request carries the cluster's node credential (a member's
// MAC or certificate).
func (c *Cluster) CheckNode(r *http.Request) error { return c.cfg.Credential.Check(r) }

// LeaderApplied asks the leader how far its FSM has applied. A follower's own commit
// index only reaches what its log already holds, so after a restart it can trail the
// leader by the entries it has yet to receive; the leader's applied index does not.
func (c *Cluster) LeaderApplied() (uint64, error) {
	id, _ := c.node.Leader()
	addr, ok := c.LeaderHTTP()
	if !ok {
		return 0, raftnode.ErrNoLeader
	}
	info, err := c.info(addr)
	if err != nil {
		return 0, err
	}
	if info.ID != id || info.AppliedIndex == 0 {
		return 0, fmt.Errorf("cluster: %s did not answer as the leader %s", addr, id)
	}
	return info.AppliedIndex, nil
}
