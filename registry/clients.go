package registry

import (
	"context"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/roster-registry/roster/naming"
)

// The client view of Nacos 2.x (naming/core/v2/client): every party that registers or
// subscribes is a "client". A 2.x client is its gRPC connection (id <millis>_<ip>_<port>,
// ephemeral); a 1.x client is an address, ip:port#true for what it keeps alive by beats
// (ephemeral instances, and UDP subscriptions at the push address) and ip:port#false for
// its persistent instances. The Open API's /client endpoints read this view. The gRPC
// front owns the connections and reports them through a ConnDirectory; instances and UDP
// subscriptions are read from the stores here.

// ConnInfo is one registered gRPC connection as its front knows it.
type ConnInfo struct {
	ID string
	// ClientIP is the address the client reported in its set-up (Metadata.clientIp),
	// as Nacos' ConnectionMeta keeps it.
	ClientIP      string
	ClientVersion string // e.g. Nacos-Java-Client:v2.3.2
	AppName       string // the set-up's AppName label; "-" when it has none
	LastActive    time.Time
	Subscriptions []ConnSubscription
}

// ConnSubscription is one service a connection subscribes to.
type ConnSubscription struct {
	Service  naming.ServiceKey
	Clusters string
	App      string // the subscribe request's app header; "unknown" when it had none
}

// ConnDirectory lists the registered gRPC connections; the gRPC front is one. Its
// method must be cheap enough for an operator's call and safe for concurrent use.
type ConnDirectory interface {
	ClientConnections() []ConnInfo
}

// connDirectory holds the ConnDirectory the gRPC front set, if any.
type connDirectory struct{ d atomic.Pointer[ConnDirectory] }

// SetConnDirectory makes d the source of the registry's connection view.
func (r *Registry) SetConnDirectory(d ConnDirectory) { r.conns.d.Store(&d) }

func (r *Registry) connections() []ConnInfo {
	if d := r.conns.d.Load(); d != nil {
		return (*d).ClientConnections()
	}
	return nil
}

// Client types as Nacos' ClientInfoControllerV2 names them.
const (
	ClientTypeConnection = "connection"
	ClientTypeIPPort     = "ipPort"
)

// ClientInfo is one client. Connection fields (ConnectType, AppName, Version) are
// known only for connections registered on this node; a connection that another member
// holds is known by the instances it owns here.
type ClientInfo struct {
	ID          string
	Type        string // ClientTypeConnection or ClientTypeIPPort
	Ephemeral   bool
	LastUpdated time.Time
	ClientIP    string
	ClientPort  string
	// Local reports a connection registered on this node (its connection fields are set).
	Local       bool
	ConnectType string
	AppName     string
	Version     string
}

// Publication is an instance a client registered.
type Publication struct {
	ClientID string
	Service  naming.ServiceKey
	IP       string
	Port     int
	Cluster  string
}

// Subscription is a service a client subscribes to: a gRPC subscription (Addr and IP
// are the connection's client ip, Port 0) or a UDP subscriber (its push address).
type Subscription struct {
	ClientID string
	Service  naming.ServiceKey
	App      string
	Agent    string
	Addr     string
	IP       string
	Port     int
}

// clientTable is one walk over the connections and both stores.
type clientTable struct {
	clients    map[string]*ClientInfo
	published  map[string][]Publication
	subscribed map[string][]Subscription
}

func (t *clientTable) client(id, typ string, ephemeral bool, ip, port string) *ClientInfo {
	c := t.clients[id]
	if c == nil {
		c = &ClientInfo{ID: id, Type: typ, Ephemeral: ephemeral, ClientIP: ip, ClientPort: port}
		t.clients[id] = c
	}
	return c
}

func (c *ClientInfo) touched(at time.Time) {
	if at.After(c.LastUpdated) {
		c.LastUpdated = at
	}
}

// IPPortClientID is the id of a 1.x client: ip:port#true (ephemeral) or #false.
func IPPortClientID(ip string, port int, ephemeral bool) string {
	return ip + ":" + strconv.Itoa(port) + "#" + strconv.FormatBool(ephemeral)
}

// connAddr reads the client ip and port out of a connection id <millis>_<ip>_<port>.
func connAddr(id string) (ip, port string) {
	i := strings.LastIndexByte(id, '_')
	if i < 0 {
		return "", ""
	}
	port = id[i+1:]
	if j := strings.IndexByte(id, '_'); j < i {
		ip = id[j+1 : i]
	}
	return ip, port
}

// clients walks the connections, every service's instances and the UDP subscribers.
func (r *Registry) clients() (*clientTable, error) {
	t := &clientTable{clients: map[string]*ClientInfo{}, published: map[string][]Publication{}, subscribed: map[string][]Subscription{}}
	for _, cn := range r.connections() {
		_, port := connAddr(cn.ID)
		c := t.client(cn.ID, ClientTypeConnection, true, cn.ClientIP, port)
		c.Local, c.ConnectType, c.AppName, c.Version = true, "GRPC", cn.AppName, cn.ClientVersion
		c.touched(cn.LastActive)
		seen := map[naming.ServiceKey]bool{}
		for _, s := range cn.Subscriptions {
			// Nacos keeps one subscriber per client and service, whatever its clusters.
			if seen[s.Service] {
				continue
			}
			seen[s.Service] = true
			t.subscribed[cn.ID] = append(t.subscribed[cn.ID], Subscription{
				ClientID: cn.ID, Service: s.Service, App: s.App, Agent: cn.ClientVersion, Addr: cn.ClientIP, IP: cn.ClientIP,
			})
		}
	}
	keys, err := r.Services("")
	if err != nil {
		return nil, err
	}
	for _, svc := range keys {
		v, err := r.load(svc)
		if err != nil {
			return nil, err
		}
		persistent := !v.meta.Ephemeral
		for _, inst := range v.instances {
			var c *ClientInfo
			owner := ""
			if !persistent {
				owner, _ = r.distro.Owner(svc, inst.Key())
			}
			switch {
			case owner != "":
				ip, port := connAddr(owner)
				c = t.client(owner, ClientTypeConnection, true, ip, port)
			default:
				c = t.client(IPPortClientID(inst.IP, inst.Port, !persistent), ClientTypeIPPort, !persistent, inst.IP, strconv.Itoa(inst.Port))
				if persistent {
					// Persistent instances carry no beat time: the service's last
					// change is the latest this node can tell.
					c.touched(time.UnixMilli(v.rev))
				} else if at, ok := r.distro.LastBeat(svc, inst.Key()); ok {
					c.touched(at)
				}
			}
			t.published[c.ID] = append(t.published[c.ID], Publication{ClientID: c.ID, Service: svc, IP: inst.IP, Port: inst.Port, Cluster: inst.ClusterName})
		}
	}
	for _, svc := range r.pusher.SubscribedServices() {
		for _, s := range r.pusher.Subscribers(svc) {
			ip := s.Addr.IP.String()
			id := IPPortClientID(ip, s.Addr.Port, true)
			t.client(id, ClientTypeIPPort, true, ip, strconv.Itoa(s.Addr.Port)).touched(s.Refreshed)
			t.subscribed[id] = append(t.subscribed[id], Subscription{
				ClientID: id, Service: svc, App: s.App, Agent: s.Agent, Addr: net.JoinHostPort(ip, strconv.Itoa(s.Addr.Port)), IP: ip, Port: s.Addr.Port,
			})
		}
	}
	return t, nil
}

// Clients lists the ids of every client this node knows, sorted.
func (r *Registry) Clients() ([]string, error) {
	t, err := r.clients()
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(t.clients))
	for id := range t.clients {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids, nil
}

func errNoClient(id string) error {
	return naming.NotFound("clientId [ " + id + " ] not exist")
}

// Client describes one client, or Nacos' 404 when there is none.
func (r *Registry) Client(id string) (*ClientInfo, error) {
	t, err := r.clients()
	if err != nil {
		return nil, err
	}
	c := t.clients[id]
	if c == nil {
		return nil, errNoClient(id)
	}
	return c, nil
}

// ClientPublished lists the instances a client registered, by service then address.
func (r *Registry) ClientPublished(id string) ([]Publication, error) {
	t, err := r.clients()
	if err != nil {
		return nil, err
	}
	if t.clients[id] == nil {
		return nil, errNoClient(id)
	}
	return t.published[id], nil
}

// ClientSubscribed lists the services a client subscribes to.
func (r *Registry) ClientSubscribed(id string) ([]Subscription, error) {
	t, err := r.clients()
	if err != nil {
		return nil, err
	}
	if t.clients[id] == nil {
		return nil, errNoClient(id)
	}
	out := t.subscribed[id]
	sort.SliceStable(out, func(i, j int) bool { return out[i].Service.String() < out[j].Service.String() })
	return out, nil
}

// ServicePublishers lists the clients that registered instances in svc: ephemeral ones
// (connections and ip:port#true) or persistent ones, as asked.
func (r *Registry) ServicePublishers(svc naming.ServiceKey, ephemeral bool) ([]Publication, error) {
	if err := naming.CheckServiceKey(svc); err != nil {
		return nil, err
	}
	t, err := r.clients()
	if err != nil {
		return nil, err
	}
	var out []Publication
	for id, list := range t.published {
		if t.clients[id].Ephemeral != ephemeral {
			continue
		}
		for _, p := range list {
			if p.Service == svc {
				out = append(out, p)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].ClientID != out[j].ClientID {
			return out[i].ClientID < out[j].ClientID
		}
		return naming.InstanceKey(out[i].IP, out[i].Port, out[i].Cluster) < naming.InstanceKey(out[j].IP, out[j].Port, out[j].Cluster)
	})
	return out, nil
}

// ServiceSubscriptions lists the clients subscribed to svc (all of them ephemeral, as
// Nacos has only ephemeral subscribers).
func (r *Registry) ServiceSubscriptions(svc naming.ServiceKey) ([]Subscription, error) {
	if err := naming.CheckServiceKey(svc); err != nil {
		return nil, err
	}
	t, err := r.clients()
	if err != nil {
		return nil, err
	}
	var out []Subscription
	for _, list := range t.subscribed {
		for _, s := range list {
			if s.Service == svc {
				out = append(out, s)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ClientID < out[j].ClientID })
	return out, nil
}

// ClientCounts are the sizes of the client view, for the v2 metrics.
type ClientCounts struct {
	Connections      int
	EphemeralIPPort  int
	PersistentIPPort int
	Subscriptions    int
}

// ClientCounts counts the clients by kind and their subscriptions.
func (r *Registry) ClientCounts() (ClientCounts, error) {
	t, err := r.clients()
	if err != nil {
		return ClientCounts{}, err
	}
	var c ClientCounts
	for _, cl := range t.clients {
		switch {
		case cl.Type == ClientTypeConnection:
			c.Connections++
		case cl.Ephemeral:
			c.EphemeralIPPort++
		default:
			c.PersistentIPPort++
		}
	}
	for _, list := range t.subscribed {
		c.Subscriptions += len(list)
	}
	return c, nil
}

// AllInstances returns every instance of a service as stored, disabled and unhealthy
// ones included, without the list answers' selection (the console catalog's view). An
// unknown service has none.
func (r *Registry) AllInstances(ctx context.Context, svc naming.ServiceKey) ([]*naming.Instance, error) {
	v, err := r.loadChecked(svc)
	if err != nil {
		return nil, err
	}
	out := make([]*naming.Instance, 0, len(v.instances))
	for _, inst := range v.instances {
		out = append(out, inst.Clone())
	}
	return out, nil
}
