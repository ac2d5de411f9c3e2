package registry

import (
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/roster-registry/roster/cluster"
	"github.com/roster-registry/roster/distro"
	"github.com/roster-registry/roster/fsm"
	"github.com/roster-registry/roster/naming"
	"github.com/roster-registry/roster/persistence"
	"github.com/roster-registry/roster/raftnode"
	"github.com/roster-registry/roster/registry/udppush"
)

// Config holds the router's settings.
type Config struct {
	// Timing is the server's default beat interval and expiry timeouts.
	Timing naming.Timing
	// MaxMetadata bounds the summed length of an instance's metadata keys and values.
	MaxMetadata int
	// CacheMillis is the client poll period advertised in ServiceInfo (Nacos 2.x: 10 s).
	CacheMillis int64
	// Push configures UDP push to 1.x subscribers.
	Push udppush.Config
	// NodeID and HTTPAddr are this node as members see it.
	NodeID   string
	HTTPAddr string
	Logger   *slog.Logger
	// NamespaceMaxServices and NamespaceMaxInstances are every namespace's quotas unless
	// its record overrides them (public's are always these); 0 is unlimited.
	NamespaceMaxServices  int
	NamespaceMaxInstances int
}

// Parts are the stores and the cluster the router decides between. Every part is
// required: a node alone is a cluster of one, not a registry without a cluster.
type Parts struct {
	// Node is the local Raft node; FSM is the state machine it applies to.
	Node *raftnode.Node
	FSM  *fsm.FSM
	// Ephemeral is the AP store; Replicator names the member responsible for each
	// 1.x client and replicates the store between members.
	Ephemeral  *distro.Store
	Replicator *distro.Replicator
	// Cluster sends CP commands to the leader and typed calls to other members.
	Cluster *cluster.Cluster
}

// Registry routes writes to the CP or AP store and serves reads from both.
type Registry struct {
	cfg        Config
	log        *slog.Logger
	node       *raftnode.Node
	cluster    *cluster.Cluster
	fsm        *fsm.FSM
	store      *persistence.Store
	distro     *distro.Store
	replicator *distro.Replicator
	pusher     *udppush.Pusher

	mu    sync.Mutex
	views map[naming.ServiceKey]*view
	// revs holds each service's lastRefTime: bumped on every change, strictly increasing.
	revs map[naming.ServiceKey]int64

	now func() time.Time

	// watchers are called with every changed service (watch.go).
	watchers watchers

	// probes keeps what ProbeTargets answers between calls (health.go).
	probes *probeCache
	// conns is the gRPC front's connection directory (clients.go).
	conns connDirectory
	// nsCache holds the namespace records (namespaces.go).
	nsCache atomic.Pointer[namespaceCache]
}

// view is an immutable snapshot of one service as both stores last reported it.
type view struct {
	exists    bool
	meta      *naming.Service
	instances []*naming.Instance
	rev       int64
	lists     listCache // encoded list answers of this view (listcache.go)
}

// New wires the router over a running Raft node, its FSM, the distro store and the
// cluster, registers the typed calls other members send it, and opens the UDP pusher.
// Call Start to begin pushing and Close to stop.
func New(cfg Config, p Parts) (*Registry, error) {
	if p.Node == nil || p.FSM == nil || p.Ephemeral == nil || p.Replicator == nil || p.Cluster == nil {
		return nil, errors.New("registry: every part (node, FSM, ephemeral store, replicator, cluster) is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxMetadata <= 0 {
		cfg.MaxMetadata = naming.DefaultMaxMetadata
	}
	if cfg.CacheMillis <= 0 {
		cfg.CacheMillis = 10000
	}
	r := &Registry{
		cfg:        cfg,
		log:        cfg.Logger.With("component", "registry"),
		node:       p.Node,
		cluster:    p.Cluster,
		fsm:        p.FSM,
		store:      p.FSM.Store(),
		distro:     p.Ephemeral,
		replicator: p.Replicator,
		views:      map[naming.ServiceKey]*view{},
		revs:       map[naming.ServiceKey]int64{},
		now:        time.Now,
		probes:     newProbeCache(),
	}
	if cfg.Push.Logger == nil {
		cfg.Push.Logger = cfg.Logger
	}
	pusher, err := udppush.New(cfg.Push, r.PushData)
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	r.pusher = pusher
	p.FSM.OnChange(r.persistentChanged)
	p.Ephemeral.OnChange(r.changed)
	r.handleCalls()
	return r, nil
}

// Start begins UDP push.
func (r *Registry) Start() { r.pusher.Start() }

// Close stops UDP push.
func (r *Registry) Close() { r.pusher.Stop() }

// Pusher exposes push counters for metrics.
func (r *Registry) Pusher() *udppush.Pusher { return r.pusher }

// Timing is the server's default timing.
func (r *Registry) Timing() naming.Timing { return r.cfg.Timing }

// CacheMillis is the client poll period advertised in ServiceInfo.
func (r *Registry) CacheMillis() int64 { return r.cfg.CacheMillis }

func (r *Registry) persistentChanged(changed []naming.ServiceKey, all bool) {
	r.probes.invalidate(changed, all)
	if all {
		r.mu.Lock()
		keys := make([]naming.ServiceKey, 0, len(r.revs))
		for k := range r.revs {
			keys = append(keys, k)
		}
		r.mu.Unlock()
		for _, k := range keys {
			r.changed(k)
		}
		return
	}
	for _, k := range changed {
		r.changed(k)
	}
}

// changed drops the cached view, bumps lastRefTime and schedules pushes. It runs on
// the stores' goroutines and must stay cheap.
func (r *Registry) changed(svc naming.ServiceKey) {
	r.mu.Lock()
	delete(r.views, svc)
	r.bumpLocked(svc)
	r.mu.Unlock()
	r.pusher.ServiceChanged(svc)
	r.watchers.notify(svc)
}

func (r *Registry) bumpLocked(svc naming.ServiceKey) int64 {
	rev := r.now().UnixMilli()
	if prev := r.revs[svc]; rev <= prev {
		rev = prev + 1
	}
	r.revs[svc] = rev
	return rev
}

// sortedKeys returns service keys in a stable order.
func sortedKeys(set map[naming.ServiceKey]bool) []naming.ServiceKey {
	out := make([]naming.ServiceKey, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}
