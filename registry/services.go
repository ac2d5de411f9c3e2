package registry

import (
	"context"
	"net"
	"sort"
	"strings"

	"github.com/roster-registry/roster/fsm"
	"github.com/roster-registry/roster/naming"
	"github.com/roster-registry/roster/persistence"
	"github.com/roster-registry/roster/registry/udppush"
)

// CreateService is Nacos' POST /service: it stores the service with the kind it has
// (v1 always asks for a persistent one, as Nacos 2.x makes; v2 may ask for either), so a
// later registration of the other kind is refused.
func (r *Registry) CreateService(ctx context.Context, svc *naming.Service) error {
	if err := naming.CheckServiceKey(svc.Key); err != nil {
		return err
	}
	if r.distro.HasService(svc.Key) {
		return naming.ErrServiceExists(svc.Key)
	}
	if err := r.checkServiceQuota(svc.Key); err != nil {
		return err
	}
	_, err := r.apply(ctx, &fsm.PutService{Service: *svc.Clone(), Mode: fsm.PutCreate, Quota: r.defaultQuota()})
	return err
}

// ServiceUpdate lists what PUT /service changes; nil fields stay as they are.
type ServiceUpdate struct {
	ProtectThreshold *float64
	Metadata         map[string]string
	Selector         *naming.Selector
}

// UpdateService is Nacos' PUT /service. The service must exist in either store.
func (r *Registry) UpdateService(ctx context.Context, key naming.ServiceKey, u ServiceUpdate) error {
	v, err := r.existing(key)
	if err != nil {
		return err
	}
	s := v.meta.Clone()
	if u.ProtectThreshold != nil {
		s.ProtectThreshold = *u.ProtectThreshold
	}
	if u.Metadata != nil {
		s.Metadata = u.Metadata
	}
	if u.Selector != nil {
		s.Selector = *u.Selector
	}
	// The clusters are not this update's: sent as read, they would overwrite a
	// PutCluster committed since. Without them the FSM keeps the stored ones.
	s.Clusters = nil
	// A service known only to distro gets its first stored record here, marked ephemeral.
	_, err = r.apply(ctx, &fsm.PutService{Service: *s, Mode: fsm.PutUpsert})
	return err
}

// DeleteService is Nacos' DELETE /service: refused while instances remain.
func (r *Registry) DeleteService(ctx context.Context, key naming.ServiceKey) error {
	v, err := r.existing(key)
	if err != nil {
		return err
	}
	if !v.meta.Ephemeral {
		// A persistent service's instances are CP: the FSM refuses the delete while it
		// has any, against the committed state, where this member's view may lag a
		// deregistration committed through another member.
		_, err = r.apply(ctx, &fsm.DeleteService{Service: key})
		return err
	}
	// An ephemeral service's instances are AP: this member's view is the one there is.
	if len(v.instances) > 0 {
		return naming.ErrServiceNotEmpty(key)
	}
	var stored *naming.Service
	if err := r.store.View(func(tx *persistence.Tx) error {
		var err error
		stored, err = tx.Service(key)
		return err
	}); err != nil {
		return err
	}
	if stored == nil {
		// Known only to distro and empty: it vanishes with the empty-service TTL.
		return nil
	}
	_, err = r.apply(ctx, &fsm.DeleteService{Service: key})
	return err
}

// ServiceDetail is a service with its clusters, for GET /service.
type ServiceDetail struct {
	Service  *naming.Service
	Clusters []*naming.Cluster
}

// GetService returns a service's metadata and clusters, or Nacos' 400.
func (r *Registry) GetService(ctx context.Context, key naming.ServiceKey) (*ServiceDetail, error) {
	d, err := r.serviceDetail(key)
	if err != nil {
		return nil, err
	}
	if d == nil {
		return nil, naming.ErrNoSuchService(key)
	}
	return d, nil
}

// serviceDetail is a service with its clusters: those with a stored configuration and
// those its instances are in, each with its effective configuration (a cluster without a
// record has Nacos' default, a TCP check), sorted by name. It is nil for a service
// neither store knows.
func (r *Registry) serviceDetail(key naming.ServiceKey) (*ServiceDetail, error) {
	v, err := r.loadChecked(key)
	if err != nil {
		return nil, err
	}
	if !v.exists {
		return nil, nil
	}
	names := map[string]bool{}
	for name := range v.meta.Clusters {
		names[name] = true
	}
	for _, inst := range v.instances {
		names[inst.ClusterName] = true
	}
	d := &ServiceDetail{Service: v.meta.Clone()}
	for name := range names {
		d.Clusters = append(d.Clusters, v.meta.ClusterOf(name))
	}
	sort.Slice(d.Clusters, func(i, j int) bool { return d.Clusters[i].Name < d.Clusters[j].Name })
	return d, nil
}

// Services lists the services of a namespace ("" = every namespace) known to either
// store, sorted.
func (r *Registry) Services(namespace string) ([]naming.ServiceKey, error) {
	set := map[naming.ServiceKey]bool{}
	err := r.store.View(func(tx *persistence.Tx) error {
		list, err := tx.Services(namespace)
		for _, s := range list {
			set[s.Key] = true
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	for _, k := range r.distro.Services(namespace) {
		set[k] = true
	}
	return sortedKeys(set), nil
}

// ServicePage lists a group's service names a page at a time (GET /service/list);
// count is the whole group's size. group "*" (Nacos 1.x) lists every group with the
// names kept grouped.
func (r *Registry) ServicePage(namespace, group string, pageNo, pageSize int) (int, []string, error) {
	keys, err := r.Services(namespace)
	if err != nil {
		return 0, nil, err
	}
	var names []string
	for _, k := range keys {
		switch {
		case group == "*":
			names = append(names, k.Grouped())
		case k.Group == group:
			names = append(names, k.Name)
		}
	}
	sort.Strings(names)
	count := len(names)
	if pageNo < 1 {
		pageNo = 1
	}
	if pageSize < 0 {
		pageSize = 0
	}
	start := (pageNo - 1) * pageSize
	if start > count {
		start = count
	}
	end := start + pageSize
	if end > count {
		end = count
	}
	return count, names[start:end], nil
}

// Counts reports the services and instances of each kind.
type Counts struct {
	Services            int
	PersistentInstances int
	EphemeralInstances  int
	PersistentServices  int
	EphemeralServices   int
}

// Counts returns the registry's sizes for metrics.
func (r *Registry) Counts() (Counts, error) {
	var c Counts
	err := r.store.View(func(tx *persistence.Tx) error {
		var err error
		c.PersistentServices, c.PersistentInstances, err = tx.Counts()
		return err
	})
	if err != nil {
		return c, err
	}
	c.EphemeralServices, c.EphemeralInstances = r.distro.Counts()
	c.Services = c.PersistentServices + c.EphemeralServices
	return c, nil
}

// Subscriber is a 1.x client that asked for UDP pushes of a service.
type Subscriber = udppush.Subscriber

// Subscribe registers or refreshes a UDP push subscriber.
func (r *Registry) Subscribe(svc naming.ServiceKey, clusters string, addr *net.UDPAddr, agent, app string) {
	r.pusher.Subscribe(udppush.Subscriber{Service: svc, Clusters: clusters, Addr: addr, Agent: agent, App: app})
}

// Subscribers lists a service's UDP subscribers.
func (r *Registry) Subscribers(svc naming.ServiceKey) []Subscriber {
	return r.pusher.Subscribers(svc)
}

// PushAgent reports whether a client agent string gets UDP pushes: Nacos pushes to
// its own Java, Go, C, C# and DNS clients.
func PushAgent(agent string) bool {
	for _, p := range []string{"Nacos-Java-Client:v", "Nacos-Go-Client:v", "Nacos-C-Client:v", "Nacos-CSharp-Client:v", "Nacos-DNS:v"} {
		if strings.HasPrefix(agent, p) {
			return true
		}
	}
	return false
}

// PushData renders the ServiceInfo a UDP subscriber of svc with the given clusters
// filter receives (the pusher wraps it in its packet, udppush.EncodePacket): grouped
// name, no groupName, the subscriber's clusters.
func (r *Registry) PushData(svc naming.ServiceKey, clusters string) ([]byte, error) {
	info, err := r.List(context.Background(), Query{Service: svc, Clusters: clusters})
	if err != nil {
		return nil, err
	}
	j := r.ServiceInfoJSON(info)
	j.GroupName = ""
	return naming.Marshal(j)
}

// ServiceInfoJSON renders an answer in the v1 shape: name G@@S with its groupName.
func (r *Registry) ServiceInfoJSON(info *ServiceInfo) naming.ServiceInfoJSON {
	hosts := make([]naming.InstanceJSON, 0, len(info.Hosts))
	for _, inst := range info.Hosts {
		hosts = append(hosts, naming.NewInstanceJSON(info.Service, inst, r.cfg.Timing))
	}
	return naming.ServiceInfoJSON{
		Name:                     info.Service.Grouped(),
		GroupName:                info.Service.Group,
		Clusters:                 info.Clusters,
		CacheMillis:              info.CacheMillis,
		Hosts:                    hosts,
		LastRefTime:              info.LastRefTime,
		Checksum:                 "",
		AllIPs:                   false,
		ReachProtectionThreshold: info.ReachProtectionThreshold,
		Valid:                    true,
	}
}
