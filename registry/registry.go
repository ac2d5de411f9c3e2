package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/roster-registry/roster/auth"
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
	// Applier commits encoded commands; nil means the local Raft node, which must then
	// be the leader. A cluster passes its forwarder so that followers take writes too.
	Applier Applier
	Logger  *slog.Logger
}

// Applier commits an encoded command through Raft and returns the FSM's response.
type Applier interface {
	Apply(ctx context.Context, cmd []byte) (any, error)
}

// Registry routes writes to the CP or AP store and serves reads from both.
type Registry struct {
	cfg    Config
	log    *slog.Logger
	raft   Applier
	fsm    *fsm.FSM
	store  *persistence.Store
	distro *distro.Store
	pusher *udppush.Pusher

	mu    sync.Mutex
	views map[naming.ServiceKey]*view
	// revs holds each service's lastRefTime: bumped on every change, strictly increasing.
	revs map[naming.ServiceKey]int64

	now func() time.Time

	// watchers are called with every changed service (watch.go).
	watchers watchers
}

// view is an immutable snapshot of one service as both stores last reported it.
type view struct {
	exists    bool
	meta      *naming.Service
	instances []*naming.Instance
	rev       int64
	lists     listCache // encoded list answers of this view (listcache.go)
}

// New wires the router over a running Raft node, its FSM and the distro store, and
// opens the UDP pusher. Call Start to begin pushing and Close to stop.
func New(cfg Config, node *raftnode.Node, f *fsm.FSM, d *distro.Store) (*Registry, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxMetadata <= 0 {
		cfg.MaxMetadata = naming.DefaultMaxMetadata
	}
	if cfg.CacheMillis <= 0 {
		cfg.CacheMillis = 10000
	}
	if cfg.Applier == nil {
		cfg.Applier = node
	}
	r := &Registry{
		cfg:    cfg,
		log:    cfg.Logger.With("component", "registry"),
		raft:   cfg.Applier,
		fsm:    f,
		store:  f.Store(),
		distro: d,
		views:  map[naming.ServiceKey]*view{},
		revs:   map[naming.ServiceKey]int64{},
		now:    time.Now,
	}
	if cfg.Push.Logger == nil {
		cfg.Push.Logger = cfg.Logger
	}
	p, err := udppush.New(cfg.Push, r.pushData)
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	r.pusher = p
	f.OnChange(r.persistentChanged)
	d.OnChange(r.changed)
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

func (r *Registry) persistentChanged(changed []naming.ServiceKey, all bool) {
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

// load returns the current view of a service, from cache or built from both stores.
func (r *Registry) load(svc naming.ServiceKey) (*view, error) {
	r.mu.Lock()
	if v, ok := r.views[svc]; ok {
		r.mu.Unlock()
		return v, nil
	}
	rev, ok := r.revs[svc]
	if !ok {
		rev = r.bumpLocked(svc)
	}
	r.mu.Unlock()

	v := &view{rev: rev}
	err := r.store.View(func(tx *persistence.Tx) error {
		meta, err := tx.Service(svc)
		if err != nil {
			return err
		}
		if meta == nil {
			return nil
		}
		v.exists = true
		v.meta = meta
		if !meta.Ephemeral {
			v.instances, err = tx.Instances(svc)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if v.meta == nil || v.meta.Ephemeral {
		if r.distro.HasService(svc) {
			v.exists = true
			v.instances = r.distro.Instances(svc)
		}
		if v.meta == nil {
			v.meta = naming.NewService(svc, true)
		}
	}

	// Cache only if no change arrived while the stores were read: a change bumps the
	// revision, and a view built before it must not be kept.
	r.mu.Lock()
	if r.revs[svc] == rev {
		r.views[svc] = v
	}
	r.mu.Unlock()
	return v, nil
}

// Query selects what an instance list answers.
type Query struct {
	Service     naming.ServiceKey
	Clusters    string // comma list as the client sent it; blank = all
	HealthyOnly bool
}

// ServiceInfo is the answer to an instance list: the selected hosts and the flags
// Nacos' clients read.
type ServiceInfo struct {
	Service                  naming.ServiceKey
	Clusters                 string
	Hosts                    []*naming.Instance
	LastRefTime              int64
	CacheMillis              int64
	ReachProtectionThreshold bool
}

// List selects instances as Nacos' selectInstancesWithHealthyProtection does: enabled
// instances of the requested clusters, unhealthy ones dropped when healthyOnly, and the
// protect threshold applied last (healthy/total <= threshold returns all kept hosts,
// marked healthy). An unknown service answers no hosts.
func (r *Registry) List(ctx context.Context, q Query) (*ServiceInfo, error) {
	if err := naming.CheckServiceKey(q.Service); err != nil {
		return nil, err
	}
	if err := naming.CheckClusters(q.Clusters); err != nil {
		return nil, err
	}
	v, err := r.load(q.Service)
	if err != nil {
		return nil, err
	}
	return r.selectHosts(v, q), nil
}

// selectHosts is List's selection from one view of the service.
func (r *Registry) selectHosts(v *view, q Query) *ServiceInfo {
	info := &ServiceInfo{Service: q.Service, Clusters: q.Clusters, LastRefTime: v.rev, CacheMillis: r.cfg.CacheMillis, Hosts: []*naming.Instance{}}
	wanted := clusterSet(q.Clusters)
	healthy := 0
	for _, inst := range v.instances {
		if !inst.Enabled {
			continue
		}
		if wanted != nil && !wanted[inst.ClusterName] {
			continue
		}
		if q.HealthyOnly && !inst.Healthy {
			continue
		}
		if inst.Healthy {
			healthy++
		}
		info.Hosts = append(info.Hosts, inst)
	}
	total := len(info.Hosts)
	if total > 0 && float64(healthy)/float64(total) <= v.meta.ProtectThreshold {
		info.ReachProtectionThreshold = true
		for i, inst := range info.Hosts {
			if !inst.Healthy {
				c := inst.Clone()
				c.Healthy = true
				info.Hosts[i] = c
			}
		}
	}
	return info
}

func clusterSet(list string) map[string]bool {
	if strings.TrimSpace(list) == "" {
		return nil
	}
	set := map[string]bool{}
	for _, c := range strings.Split(list, ",") {
		if c = strings.TrimSpace(c); c != "" {
			set[c] = true
		}
	}
	if len(set) == 0 {
		return nil
	}
	return set
}

// serviceKind tells whether a service is known and whether it is persistent.
func (r *Registry) serviceKind(svc naming.ServiceKey) (exists, persistent bool, err error) {
	var meta *naming.Service
	err = r.store.View(func(tx *persistence.Tx) error {
		var err error
		meta, err = tx.Service(svc)
		return err
	})
	if err != nil {
		return false, false, err
	}
	if meta != nil && !meta.Ephemeral {
		return true, true, nil
	}
	return meta != nil || r.distro.HasService(svc), false, nil
}

func (r *Registry) checkInstance(svc naming.ServiceKey, inst *naming.Instance) error {
	if err := naming.CheckServiceKey(svc); err != nil {
		return err
	}
	return naming.CheckInstance(inst, r.cfg.MaxMetadata, r.cfg.Timing)
}

// Register adds or replaces an instance in the store its kind names.
func (r *Registry) Register(ctx context.Context, svc naming.ServiceKey, inst *naming.Instance) error {
	if err := r.checkInstance(svc, inst); err != nil {
		return err
	}
	if inst.Ephemeral {
		_, persistent, err := r.serviceKind(svc)
		if err != nil {
			return err
		}
		if persistent {
			return naming.ErrPersistentService(svc)
		}
		r.distro.Register(svc, inst.Clone())
		return nil
	}
	if r.distro.HasService(svc) {
		return naming.ErrEphemeralService(svc)
	}
	_, err := r.apply(ctx, &fsm.RegisterInstance{Service: svc, Instance: *inst})
	return err
}

// Deregister removes an instance. It answers success when nothing matched, as Nacos
// does. The service's stored kind decides the store; the request's ephemeral flag is
// used only for a service Roster does not know.
func (r *Registry) Deregister(ctx context.Context, svc naming.ServiceKey, ip string, port int, cluster string, ephemeral bool) error {
	if err := naming.CheckServiceKey(svc); err != nil {
		return err
	}
	exists, persistent, err := r.serviceKind(svc)
	if err != nil {
		return err
	}
	if exists {
		ephemeral = !persistent
	}
	if ephemeral {
		r.distro.Deregister(svc, ip, port, cluster)
		return nil
	}
	if !exists {
		return nil
	}
	_, err = r.apply(ctx, &fsm.DeregisterInstance{Service: svc, IP: ip, Port: port, Cluster: cluster})
	return err
}

// Update is Nacos' PUT /instance: the service must exist; weight, enabled and metadata
// are set; a missing instance is registered (as Nacos does for Go and Node.js agents).
func (r *Registry) Update(ctx context.Context, svc naming.ServiceKey, inst *naming.Instance) error {
	if err := r.checkInstance(svc, inst); err != nil {
		return err
	}
	exists, persistent, err := r.serviceKind(svc)
	if err != nil {
		return err
	}
	if !exists {
		return naming.BadRequest(fmt.Sprintf("service not found, namespace: %s, service: Service{namespace='%s', group='%s', name='%s', ephemeral=%t, revision=0}",
			svc.Namespace, svc.Namespace, svc.Group, svc.Name, inst.Ephemeral))
	}
	if !persistent {
		key := inst.Key()
		found := r.distro.Update(svc, key, func(cur *naming.Instance) {
			cur.Weight = inst.Weight
			cur.Enabled = inst.Enabled
			cur.Metadata = inst.Metadata
		})
		if !found {
			c := inst.Clone()
			c.Ephemeral = true
			r.distro.Register(svc, c)
		}
		return nil
	}
	up := inst.Clone()
	up.Ephemeral = false
	w, en := inst.Weight, inst.Enabled
	_, err = r.apply(ctx, &fsm.UpdateInstance{
		Service: svc, IP: inst.IP, Port: inst.Port, Cluster: inst.ClusterName,
		Weight: &w, Enabled: &en, Metadata: nonNil(inst.Metadata), Upsert: up,
	})
	return err
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// Patch is Nacos' PATCH /instance: only the given fields change; the instance must exist.
type Patch struct {
	Weight   *float64
	Enabled  *bool
	Metadata map[string]string // nil: unchanged
}

// PatchInstance applies a partial update to an existing instance.
func (r *Registry) PatchInstance(ctx context.Context, svc naming.ServiceKey, ip string, port int, cluster string, p Patch) error {
	if err := naming.CheckServiceKey(svc); err != nil {
		return err
	}
	probe := &naming.Instance{IP: ip, Port: port, ClusterName: cluster, Metadata: p.Metadata}
	if p.Weight != nil {
		probe.Weight = *p.Weight
	}
	if err := naming.CheckInstance(probe, r.cfg.MaxMetadata, r.cfg.Timing); err != nil {
		return err
	}
	_, persistent, err := r.serviceKind(svc)
	if err != nil {
		return err
	}
	notFound := naming.BadRequest("instance not exist: " + naming.InstanceKey(ip, port, cluster))
	if !persistent {
		ok := r.distro.Update(svc, naming.InstanceKey(ip, port, cluster), func(cur *naming.Instance) {
			if p.Weight != nil {
				cur.Weight = *p.Weight
			}
			if p.Enabled != nil {
				cur.Enabled = *p.Enabled
			}
			if p.Metadata != nil {
				cur.Metadata = p.Metadata
			}
		})
		if !ok {
			return notFound
		}
		return nil
	}
	_, err = r.apply(ctx, &fsm.UpdateInstance{Service: svc, IP: ip, Port: port, Cluster: cluster,
		Weight: p.Weight, Enabled: p.Enabled, Metadata: p.Metadata})
	return err
}

// Instance returns one instance, or Nacos' 404 texts.
func (r *Registry) Instance(ctx context.Context, svc naming.ServiceKey, ip string, port int, cluster string) (*naming.Instance, error) {
	if err := naming.CheckServiceKey(svc); err != nil {
		return nil, err
	}
	v, err := r.load(svc)
	if err != nil {
		return nil, err
	}
	inCluster := 0
	for _, inst := range v.instances {
		if inst.ClusterName != cluster {
			continue
		}
		inCluster++
		if inst.IP == ip && inst.Port == port {
			return inst.Clone(), nil
		}
	}
	if inCluster == 0 {
		return nil, naming.Errorf(http.StatusNotFound, "no ips found for cluster %s in service %s", cluster, svc.Grouped())
	}
	return nil, naming.Errorf(http.StatusNotFound, "no matched ip found!")
}

// Beat codes (Nacos ResponseCode / NamingResponseCode).
const (
	BeatOK       = 10200
	BeatNotFound = 20404
)

// BeatRequest is a client beat: a light one names ip, port and cluster; a full one
// carries the instance (Nacos' RsInfo) and registers it when it is unknown.
type BeatRequest struct {
	Service naming.ServiceKey
	IP      string
	Port    int
	Cluster string
	Full    *naming.Instance
}

// BeatResult is the answer's code and the interval the client should beat at.
type BeatResult struct {
	Code     int
	Interval time.Duration
}

// Beat records a client beat (PROTOCOL.md §4).
func (r *Registry) Beat(ctx context.Context, b BeatRequest) (BeatResult, error) {
	if err := naming.CheckServiceKey(b.Service); err != nil {
		return BeatResult{}, err
	}
	if interval, ok := r.distro.Touch(b.Service, b.IP, b.Port, b.Cluster); ok {
		return BeatResult{Code: BeatOK, Interval: interval}, nil
	}
	if b.Full == nil {
		return BeatResult{Code: BeatNotFound, Interval: r.cfg.Timing.HeartBeatInterval}, nil
	}
	inst := b.Full.Clone()
	inst.Healthy, inst.Enabled = true, true
	if err := r.Register(ctx, b.Service, inst); err != nil {
		return BeatResult{}, err
	}
	return BeatResult{Code: BeatOK, Interval: r.cfg.Timing.For(inst).HeartBeatInterval}, nil
}

// SetHealth is Nacos' PUT /health/instance, for persistent instances (ephemeral ones
// are owned by their beats).
func (r *Registry) SetHealth(ctx context.Context, svc naming.ServiceKey, ip string, port int, cluster string, healthy bool) error {
	if err := naming.CheckServiceKey(svc); err != nil {
		return err
	}
	_, persistent, err := r.serviceKind(svc)
	if err != nil {
		return err
	}
	if !persistent {
		return naming.BadRequest(fmt.Sprintf("health check is still working, service: %s, cluster: %s", svc.Grouped(), cluster))
	}
	_, err = r.apply(ctx, &fsm.UpdateInstance{Service: svc, IP: ip, Port: port, Cluster: cluster, Healthy: &healthy})
	return err
}

// InstanceRef names an instance of a service in a batch operation.
type InstanceRef = fsm.InstanceRef

// UpdateMetadataBatch merges (remove=false) or deletes (remove=true) metadata keys on
// the listed instances (all when empty) and returns Nacos' "updated" entries.
func (r *Registry) UpdateMetadataBatch(ctx context.Context, svc naming.ServiceKey, persistent bool, refs []InstanceRef, md map[string]string, remove bool) ([]string, error) {
	if err := naming.CheckServiceKey(svc); err != nil {
		return nil, err
	}
	if persistent {
		res, err := r.apply(ctx, &fsm.UpdateMetadataBatch{Service: svc, Instances: refs, Metadata: md, Remove: remove})
		if err != nil {
			return nil, err
		}
		updated, _ := res.([]string)
		if updated == nil {
			updated = []string{}
		}
		return updated, nil
	}
	want := map[string]bool{}
	for _, ref := range refs {
		c := ref.Cluster
		if c == "" {
			c = naming.DefaultCluster
		}
		want[naming.InstanceKey(ref.IP, ref.Port, c)] = true
	}
	updated := []string{}
	for _, inst := range r.distro.Instances(svc) {
		key := inst.Key()
		if len(want) > 0 && !want[key] {
			continue
		}
		merged := mergeMetadata(inst.Metadata, md, remove)
		probe := inst.Clone()
		probe.Metadata = merged
		if err := naming.CheckInstance(probe, r.cfg.MaxMetadata, r.cfg.Timing); err != nil {
			return nil, err
		}
		if r.distro.Update(svc, key, func(cur *naming.Instance) { cur.Metadata = mergeMetadata(cur.Metadata, md, remove) }) {
			updated = append(updated, fmt.Sprintf("%s:%d:unknown:%s:ephemeral", inst.IP, inst.Port, inst.ClusterName))
		}
	}
	return updated, nil
}

func mergeMetadata(cur, md map[string]string, remove bool) map[string]string {
	out := make(map[string]string, len(cur)+len(md))
	for k, v := range cur {
		out[k] = v
	}
	for k, v := range md {
		if remove {
			delete(out, k)
		} else {
			out[k] = v
		}
	}
	return out
}

// ApplyAuth commits an access-control change through Raft. A change the state refuses
// comes back as a *naming.Error.
func (r *Registry) ApplyAuth(ctx context.Context, c auth.Change) error {
	_, err := r.apply(ctx, fsm.AuthChange{Change: c})
	return err
}

// EnsureSigningKey proposes a first token signing key until the replicated state has
// one. Every node may call it at start: the FSM keeps the first key committed and
// ignores later proposals, so the key is generated once per cluster and never leaves
// it except through Raft.
func (r *Registry) EnsureSigningKey(ctx context.Context, a *auth.Authority) error {
	for !a.HasKey() {
		k, err := auth.NewKey(time.Now())
		if err != nil {
			return err
		}
		if err := r.ApplyAuth(ctx, auth.Change{Op: auth.OpInitKey, Key: k}); err != nil {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(200 * time.Millisecond): // no leader yet; try again
			}
			continue
		}
		// The change is committed and applied on the node that took it; this node's
		// copy arrives with replication.
		for !a.HasKey() {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	return nil
}

// apply encodes and proposes a command, and turns the FSM's business rejection into
// the caller's error.
func (r *Registry) apply(ctx context.Context, cmd fsm.Command) (any, error) {
	data, err := fsm.EncodeWith(cmd, fsm.Limits{MaxMetadata: r.cfg.MaxMetadata, Timing: r.cfg.Timing})
	if err != nil {
		return nil, err
	}
	res, err := r.raft.Apply(ctx, data)
	if err != nil {
		return nil, translateRaft(err)
	}
	if e, ok := res.(error); ok {
		return nil, e
	}
	return res, nil
}

// translateRaft maps raftnode's sentinels to what a client is told. Lost leadership
// or a timeout after the entry was enqueued is an unknown outcome: never a success.
func translateRaft(err error) error {
	switch {
	case errors.Is(err, raftnode.ErrUnknownOutcome):
		return naming.Unavailable("write outcome unknown: leadership was lost before it was confirmed; retry or read back")
	case errors.Is(err, raftnode.ErrNotLeader), errors.Is(err, raftnode.ErrNoLeader), errors.Is(err, raftnode.ErrShutdown):
		return naming.Unavailable("no leader is available to take the write; retry later")
	}
	return err
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
