package registry

import (
	"context"
	"strings"

	"github.com/roster-registry/roster/naming"
	"github.com/roster-registry/roster/persistence"
)

// The read side: a cached view per service built from both stores, and the instance
// selection of Nacos' list answers.

// loadChecked checks a service key and loads its view.
func (r *Registry) loadChecked(key naming.ServiceKey) (*view, error) {
	if err := naming.CheckServiceKey(key); err != nil {
		return nil, err
	}
	return r.load(key)
}

// existing is loadChecked for a service that must exist in either store.
func (r *Registry) existing(key naming.ServiceKey) (*view, error) {
	v, err := r.loadChecked(key)
	if err == nil && !v.exists {
		return nil, naming.ErrServiceNotFound(key)
	}
	return v, err
}

// loadQuery checks a list query's service key and clusters and loads the service's view.
func (r *Registry) loadQuery(q Query) (*view, error) {
	if err := naming.CheckServiceKey(q.Service); err != nil {
		return nil, err
	}
	if err := naming.CheckClusters(q.Clusters); err != nil {
		return nil, err
	}
	return r.load(q.Service)
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
	v, err := r.loadQuery(q)
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

// Instance returns one instance, or Nacos' 404 texts.
func (r *Registry) Instance(ctx context.Context, svc naming.ServiceKey, ip string, port int, cluster string) (*naming.Instance, error) {
	v, err := r.loadChecked(svc)
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
		return nil, naming.NotFound("no ips found for cluster " + cluster + " in service " + svc.Grouped())
	}
	return nil, naming.NotFound("no matched ip found!")
}
