// Package migrate moves naming data into Roster: from a running Nacos-protocol server
// (Nacos 1.x/2.x/3.x, r-nacos, another Roster) read through its HTTP API, or from an
// export file of Roster's own. What it carries is the persistent part of a registry:
// namespaces, services (protect threshold, metadata, selector, kind), clusters with their
// health checks, and persistent instances. Ephemeral instances are counted, not copied:
// their clients re-register them once pointed at Roster.
//
// Every write goes through Roster's HTTP API (package client) and is compared with what
// Roster holds first, so a second run writes nothing and an interrupted one is completed
// by running it again.
package migrate

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/roster-registry/roster/client"
	"github.com/roster-registry/roster/naming"
)

// FileFormat and FileVersion head an export file; Read refuses any other.
const (
	FileFormat  = "roster-export"
	FileVersion = 1
)

// Dump is everything one run carries, and the export file's content.
type Dump struct {
	Format     string      `json:"format"`
	Version    int         `json:"version"`
	Source     string      `json:"source,omitempty"`
	Namespaces []Namespace `json:"namespaces"`
	Services   []Service   `json:"services"`
}

// Namespace is a namespace's id, display name and description.
type Namespace struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Desc string `json:"description,omitempty"`
}

// Service is one service with its clusters and persistent instances.
type Service struct {
	Namespace string `json:"namespace"`
	Group     string `json:"group"`
	Name      string `json:"name"`
	// Ephemeral is the service's kind: an ephemeral service takes ephemeral instances
	// only (and a persistent one persistent only), so it is kept as the source has it.
	Ephemeral        bool              `json:"ephemeral"`
	ProtectThreshold float64           `json:"protectThreshold"`
	Metadata         map[string]string `json:"metadata,omitempty"`
	Selector         client.Selector   `json:"selector"`
	Clusters         []Cluster         `json:"clusters,omitempty"`
	Instances        []Instance        `json:"instances,omitempty"`
	// EphemeralInstances counts the source's ephemeral instances, which are not copied.
	EphemeralInstances int `json:"ephemeralInstances,omitempty"`
}

// Cluster is one cluster's health check configuration.
type Cluster struct {
	Name          string               `json:"name"`
	HealthChecker client.HealthChecker `json:"healthChecker"`
	// CheckPort is probed instead of each instance's port when UseInstancePort is off.
	CheckPort       int               `json:"checkPort"`
	UseInstancePort bool              `json:"useInstancePort"`
	Metadata        map[string]string `json:"metadata,omitempty"`
}

// Instance is one persistent instance.
type Instance struct {
	IP       string            `json:"ip"`
	Port     int               `json:"port"`
	Cluster  string            `json:"cluster"`
	Weight   float64           `json:"weight"`
	Healthy  bool              `json:"healthy"`
	Enabled  bool              `json:"enabled"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

// ID is "namespace/group@@name", how reports name a service.
func (s *Service) ID() string { return s.Namespace + "/" + s.Group + naming.GroupSeparator + s.Name }

func (s *Service) ref() client.ServiceRef {
	return client.ServiceRef{Namespace: s.Namespace, Group: s.Group, Name: s.Name}
}

// key is an instance's identity inside a service.
func (i Instance) key() string { return fmt.Sprintf("%s#%s:%d", i.Cluster, i.IP, i.Port) }

// sameInstance compares the fields an import writes. Health is not among them: Roster's
// own checks decide it for persistent instances.
func sameInstance(a, b Instance) bool {
	return a.IP == b.IP && a.Port == b.Port && a.Cluster == b.Cluster && a.Weight == b.Weight &&
		a.Enabled == b.Enabled && sameMap(a.Metadata, b.Metadata)
}

func sameCluster(a, b Cluster) bool {
	return a.Name == b.Name && a.HealthChecker == b.HealthChecker && a.CheckPort == b.CheckPort &&
		a.UseInstancePort == b.UseInstancePort && sameMap(a.Metadata, b.Metadata)
}

func isDefaultCluster(c Cluster) bool {
	return sameCluster(c, Cluster{Name: c.Name, HealthChecker: client.HealthChecker{Type: naming.CheckerTCP},
		CheckPort: defaultCheckPort, UseInstancePort: defaultUseInstancePort})
}

// sameServiceFields compares what PUT /service sets.
func sameServiceFields(a, b *Service) bool {
	return a.ProtectThreshold == b.ProtectThreshold && sameMap(a.Metadata, b.Metadata) && sameSelector(a.Selector, b.Selector)
}

func sameSelector(a, b client.Selector) bool {
	norm := func(s client.Selector) client.Selector {
		s.Type = strings.ToLower(s.Type)
		if s.Type == "" {
			s.Type = "none"
		}
		if s.Type == "none" {
			s.Expression = ""
		}
		return s
	}
	return norm(a) == norm(b)
}

func sameMap(a, b map[string]string) bool {
	return len(a) == len(b) && maps.Equal(a, b)
}

// normalize sorts a service's clusters and instances so that two dumps of the same data
// are equal, and fills the defaults a source may leave out.
func (s *Service) normalize() {
	if s.Selector.Type == "" {
		s.Selector.Type = "none"
	}
	for i := range s.Instances {
		if s.Instances[i].Cluster == "" {
			s.Instances[i].Cluster = naming.DefaultCluster
		}
	}
	// A cluster with Nacos' default configuration carries nothing: servers list it for
	// its instances alone, and a target that never saw it answers the same default.
	s.Clusters = slices.DeleteFunc(s.Clusters, isDefaultCluster)
	slices.SortFunc(s.Clusters, func(a, b Cluster) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(s.Instances, func(a, b Instance) int { return strings.Compare(a.key(), b.key()) })
}

// validate checks what the source answered before anything of the service is written.
func (s *Service) validate() error {
	if err := naming.CheckServiceKey(naming.ServiceKey{Namespace: s.Namespace, Group: s.Group, Name: s.Name}); err != nil {
		msg := err.Error()
		var ne *naming.Error
		if errors.As(err, &ne) {
			msg = ne.Message
		}
		return fmt.Errorf("service %s: %s", s.ID(), msg)
	}
	if s.ProtectThreshold < 0 || s.ProtectThreshold > 1 {
		return fmt.Errorf("service %s: protectThreshold %v is outside [0, 1]", s.ID(), s.ProtectThreshold)
	}
	seen := map[string]bool{}
	for _, in := range s.Instances {
		if in.IP == "" || in.Port <= 0 || in.Port > 65535 {
			return fmt.Errorf("service %s: instance %q:%d has no usable ip or port", s.ID(), in.IP, in.Port)
		}
		if in.Weight < 0 {
			return fmt.Errorf("service %s: instance %s has weight %v", s.ID(), in.key(), in.Weight)
		}
		if seen[in.key()] {
			return fmt.Errorf("service %s: instance %s is listed twice", s.ID(), in.key())
		}
		seen[in.key()] = true
	}
	return nil
}
