package registry

import (
	"sort"
	"strings"

	"github.com/roster-registry/roster/naming"
)

// ServiceSummary is one row of the console's service list (Nacos' ServiceView): the
// counts of a service's instances and whether its protect threshold is reached.
type ServiceSummary struct {
	Key          naming.ServiceKey
	ClusterCount int // clusters that hold an instance
	IPCount      int // instances, disabled and unhealthy ones included
	HealthyCount int
	// Triggered: healthy/all is at or below the protect threshold (never for a service
	// without instances, as Nacos' NaN comparison says).
	Triggered bool
}

// CatalogFilter selects the console's service list. The name and group filters are
// substring matches (Nacos builds ".*x.*" regular expressions of them; Roster matches
// the text literally, so a '.' in a filter is a dot). SkipEmpty drops services without
// instances ("hide empty services", hasIpCount).
type CatalogFilter struct {
	Namespace string
	Name      string
	Group     string
	SkipEmpty bool
}

// CatalogServices lists the services of a namespace that pass the filter, sorted by
// group and name, with their counts.
func (r *Registry) CatalogServices(f CatalogFilter) ([]ServiceSummary, error) {
	if f.Namespace == "" {
		f.Namespace = naming.DefaultNamespace
	}
	if err := naming.CheckNamespace(f.Namespace); err != nil {
		return nil, err
	}
	keys, err := r.Services(f.Namespace)
	if err != nil {
		return nil, err
	}
	out := []ServiceSummary{}
	for _, k := range keys {
		if !strings.Contains(k.Name, f.Name) || !strings.Contains(k.Group, f.Group) {
			continue
		}
		v, err := r.load(k)
		if err != nil {
			return nil, err
		}
		if f.SkipEmpty && len(v.instances) == 0 {
			continue
		}
		s := ServiceSummary{Key: k, IPCount: len(v.instances)}
		clusters := map[string]bool{}
		for _, in := range v.instances {
			clusters[in.ClusterName] = true
			if in.Healthy {
				s.HealthyCount++
			}
		}
		s.ClusterCount = len(clusters)
		if s.IPCount > 0 {
			s.Triggered = float64(s.HealthyCount)/float64(s.IPCount) <= v.meta.ProtectThreshold
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Key.Group != out[j].Key.Group {
			return out[i].Key.Group < out[j].Key.Group
		}
		return out[i].Key.Name < out[j].Key.Name
	})
	return out, nil
}

// ClusterInstances lists every instance of one cluster of a service (the console's
// instance table; disabled and unhealthy ones included), sorted by ip and port. An
// unknown service or cluster has none.
func (r *Registry) ClusterInstances(svc naming.ServiceKey, cluster string) ([]*naming.Instance, error) {
	v, err := r.loadChecked(svc)
	if err != nil {
		return nil, err
	}
	out := []*naming.Instance{}
	for _, in := range v.instances {
		if cluster == "" || in.ClusterName == cluster {
			out = append(out, in.Clone())
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].IP != out[j].IP {
			return out[i].IP < out[j].IP
		}
		return out[i].Port < out[j].Port
	})
	return out, nil
}
