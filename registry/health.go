package registry

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"sync"

	"github.com/roster-registry/roster/fsm"
	"github.com/roster-registry/roster/healthcheck"
	"github.com/roster-registry/roster/naming"
	"github.com/roster-registry/roster/persistence"
)

// Health of persistent instances: the cluster configuration a user sets (PUT /cluster),
// manual health where the checker is NONE (SetHealth, writes.go), and the two calls of
// the prober, which probes what ProbeTargets lists and commits only flips (FlipHealth).

// UpdateCluster is Nacos' PUT /cluster: it sets one cluster's health checker, check port,
// useInstancePort4Check and metadata. The service must exist in either store.
func (r *Registry) UpdateCluster(ctx context.Context, key naming.ServiceKey, c naming.Cluster) error {
	if err := naming.CheckServiceKey(key); err != nil {
		return err
	}
	cmd := &fsm.PutCluster{Service: key, Cluster: c}
	if err := r.validate(cmd); err != nil {
		return err
	}
	v, err := r.load(key)
	if err != nil {
		return err
	}
	if !v.exists {
		return fsm.ErrServiceNotFoundForCluster(key)
	}
	cmd.Ephemeral = v.meta.Ephemeral
	_, err = r.propose(ctx, cmd)
	return err
}

// errHealthCheckWorking is Nacos' refusal of a manual health change where the servers
// check health themselves (HealthOperatorV2Impl).
func errHealthCheckWorking(svc naming.ServiceKey, cluster string) *naming.Error {
	return naming.BadRequest(fmt.Sprintf("health check is still working, service: %s, cluster: %s", svc.Grouped(), cluster))
}

// ProbeView is the membership a prober acts under (fsm.ProbeView).
type ProbeView = fsm.ProbeView

// ProbeTarget is one persistent instance to probe (fsm.ProbeTarget).
type ProbeTarget = fsm.ProbeTarget

// FlipHealth commits a prober's result: the instance ref of service svc should now be
// healthy, as the prober saw it at seenRevision (the ProbeTarget's Revision) under
// view. A refusal because the result is stale, the instance is gone or its cluster is
// no longer probed is a *fsm.FlipRejection carrying the instance's current revision (see
// fsm.FlipHealth for why a stale prober can never undo a newer result); a flip that
// finds the instance already so is a success. Any other error is a failure to commit
// (a *naming.Error, such as 503 when no leader takes it). An applied flip changes the
// service like any write: its lists, lastRefTime and pushes follow from the FSM's
// change notification.
func (r *Registry) FlipHealth(ctx context.Context, svc naming.ServiceKey, ref InstanceRef, healthy bool, seenRevision uint64, view ProbeView) error {
	res, err := r.apply(ctx, &fsm.FlipHealth{Service: svc, Instance: ref, Healthy: healthy, SeenRevision: seenRevision, View: view})
	if err != nil {
		return err
	}
	fr, ok := res.(fsm.FlipResult)
	if !ok {
		return fmt.Errorf("registry: health flip answered %T", res)
	}
	return fr.Err()
}

// ProbeTargets lists every persistent instance the cluster probes (all but those of
// clusters whose checker is NONE), with its cluster's effective checker, the port to
// dial and its revision, ordered by service and instance key, as this member's store
// holds them. It is meant to be called every check interval: the list is kept between
// calls and only the services that changed since are read again, so at steady state a
// call reads nothing and the same slice comes back, which callers must not modify. The
// prober itself walks the cache (probeSource), so a node keeps this assembled copy only
// while something else asks for it.
func (r *Registry) ProbeTargets() ([]ProbeTarget, error) {
	c := r.probes
	c.mu.Lock()
	if c.flat != nil {
		out := c.flat
		c.mu.Unlock()
		return out, nil
	}
	c.mu.Unlock()
	var out []ProbeTarget
	n, err := c.visit(r.store, func(n int, t *ProbeTarget, _ *healthcheck.Checker) {
		if out == nil {
			out = make([]ProbeTarget, 0, n)
		}
		out = append(out, *t)
	})
	if err != nil {
		return nil, err
	}
	if out == nil {
		out = make([]ProbeTarget, 0, n)
	}
	c.mu.Lock()
	if !c.all && len(c.dirty) == 0 {
		c.flat = out
	}
	c.mu.Unlock()
	return out, nil
}

// probeCache keeps ProbeTargets' answer, per service, between calls. The FSM's change
// notification marks services dirty (it runs on the Raft apply goroutine, so it only
// takes mu for a moment); a call re-reads the dirty ones outside mu.
type probeCache struct {
	loadMu sync.Mutex // one rebuild at a time

	mu        sync.Mutex
	all       bool // every service must be read again (start, restore)
	dirty     map[naming.ServiceKey]bool
	byService map[naming.ServiceKey]*probeGroup
	// flat is ProbeTargets' assembled answer; nil when a service changed since.
	flat []ProbeTarget
}

func newProbeCache() *probeCache {
	return &probeCache{all: true, dirty: map[naming.ServiceKey]bool{}, byService: map[naming.ServiceKey]*probeGroup{}}
}

// invalidate records a change of the persistent store.
func (c *probeCache) invalidate(changed []naming.ServiceKey, all bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if all {
		c.all = true
	}
	for _, k := range changed {
		c.dirty[k] = true
	}
	c.flat = nil
}

// visit brings the cache up to date and calls fn with every target, in service order,
// holding the cache's lock: the targets are not assembled into one slice of their own,
// a copy of every persistent instance that would be kept beside the per-service lists.
// It returns the number of targets. fn must not call the cache.
func (c *probeCache) visit(store *persistence.Store, fn func(n int, t *ProbeTarget, probe *healthcheck.Checker)) (int, error) {
	c.loadMu.Lock()
	defer c.loadMu.Unlock()

	c.mu.Lock()
	all, dirty := c.all, c.dirty
	c.all, c.dirty = false, map[naming.ServiceKey]bool{}
	c.mu.Unlock()

	// A change that lands while the store is read marks its service dirty again, so the
	// next call reads it; this call's answer is at worst as old as the read.
	fresh := map[naming.ServiceKey]*probeGroup{}
	err := store.View(func(tx *persistence.Tx) error {
		if all {
			list, err := tx.Services("")
			if err != nil {
				return err
			}
			for _, svc := range list {
				if err := readTargets(tx, svc, fresh); err != nil {
					return err
				}
			}
			return nil
		}
		for k := range dirty {
			svc, err := tx.Service(k)
			if err != nil {
				return err
			}
			fresh[k] = nil // gone unless read below
			if err := readTargets(tx, svc, fresh); err != nil {
				return err
			}
		}
		return nil
	})

	if all && err == nil {
		// That read went over every record of the file.
		store.ReleaseMapped()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		// Read again next time.
		c.all = c.all || all
		for k := range dirty {
			c.dirty[k] = true
		}
		return 0, err
	}
	if all {
		c.byService = map[naming.ServiceKey]*probeGroup{}
	}
	for k, g := range fresh {
		if g == nil || len(g.targets) == 0 {
			delete(c.byService, k)
		} else {
			c.byService[k] = g
		}
	}
	keys := make([]naming.ServiceKey, 0, len(c.byService))
	n := 0
	for k, g := range c.byService {
		keys = append(keys, k)
		n += len(g.targets)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
	var t ProbeTarget
	for _, k := range keys {
		g := c.byService[k]
		for i := range g.targets {
			ct := &g.targets[i]
			cl := &g.clusters[ct.cluster]
			t = ProbeTarget{Service: g.service, IP: ct.ip, Port: ct.port, Cluster: cl.name, Checker: cl.checker,
				CheckPort: ct.checkPort, Healthy: ct.healthy, Revision: ct.revision}
			fn(n, &t, cl.probe)
		}
	}
	return n, nil
}

// probeGroup is the probe targets of one service as the cache keeps them: what the
// service's targets share (the service key, each cluster's name and checker) once, and
// per instance only what is its own. A ProbeTarget per instance cost ≈ 190 bytes, most
// of it the service key and checker repeated; a probeTarget costs 48.
type probeGroup struct {
	service  naming.ServiceKey
	clusters []probeCluster
	targets  []probeTarget
}

type probeCluster struct {
	name    string
	checker naming.HealthChecker
	// ownPort: the targets' CheckPort is their own Port; else it is checkPort, the
	// cluster's, for all of them.
	ownPort   bool
	checkPort int
	// probe is the checker as the prober takes it, built once and shared by every
	// target of the cluster in every round.
	probe *healthcheck.Checker
}

type probeTarget struct {
	ip        string
	port      int
	checkPort int
	revision  uint64
	cluster   int // index into probeGroup.clusters
	healthy   bool
}

// newProbeGroup compacts one service's list (all of one service, in key order).
func newProbeGroup(svc naming.ServiceKey, list []ProbeTarget) *probeGroup {
	if len(list) == 0 {
		return nil
	}
	g := &probeGroup{service: svc, targets: make([]probeTarget, len(list))}
	for i := range list {
		t := &list[i]
		own := t.CheckPort == t.Port
		ci := -1
		for j := range g.clusters {
			c := &g.clusters[j]
			if c.name == t.Cluster && c.checker == t.Checker && c.ownPort == own && (own || c.checkPort == t.CheckPort) {
				ci = j
				break
			}
		}
		if ci < 0 {
			ci = len(g.clusters)
			c := probeCluster{name: t.Cluster, checker: t.Checker, ownPort: own, probe: proberChecker(t.Checker)}
			if !own {
				c.checkPort = t.CheckPort
			}
			c.probe.UseInstancePort, c.probe.CheckPort = own, c.checkPort
			g.clusters = append(g.clusters, c)
		}
		g.targets[i] = probeTarget{ip: t.IP, port: t.Port, checkPort: t.CheckPort, revision: t.Revision, cluster: ci, healthy: t.Healthy}
	}
	return g
}

// proberChecker is a cluster's effective checker in the prober's terms, without the
// port to dial (newProbeGroup sets it).
func proberChecker(c naming.HealthChecker) *healthcheck.Checker {
	hc := &healthcheck.Checker{
		Type: healthcheck.Type(c.Type), Path: c.Path, Headers: c.Headers,
		GRPCService: c.Service,
	}
	if c.ExpectedResponseCode != 0 {
		hc.ExpectedCodes = []int{c.ExpectedResponseCode}
	}
	return hc
}

func readTargets(tx *persistence.Tx, svc *naming.Service, into map[naming.ServiceKey]*probeGroup) error {
	if svc == nil {
		return nil
	}
	list, err := fsm.ProbeTargetsOf(tx, svc)
	if err != nil {
		return err
	}
	into[svc.Key] = newProbeGroup(svc.Key, list)
	return nil
}

// CatalogService is Nacos' console view of one service (GET /catalog/service): the
// service and its clusters, or Nacos' 404.
func (r *Registry) CatalogService(ctx context.Context, key naming.ServiceKey) (*ServiceDetail, error) {
	d, err := r.serviceDetail(key)
	if err != nil {
		return nil, err
	}
	if d == nil {
		return nil, naming.Errorf(http.StatusNotFound, "service %s is not found!", key.Grouped())
	}
	return d, nil
}
