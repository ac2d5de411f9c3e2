package api

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/roster-registry/roster/naming"
	"github.com/roster-registry/roster/registry"
)

// The Open API v2 client views (ClientInfoControllerV2): the clients this node knows,
// 2.x connections and 1.x ip:port clients, what each registered and subscribed, and who
// registered or subscribes to a service. The registry builds the view from the gRPC
// front's connections and both stores.

// clientRoutes are the client views of v2 (ClientInfoControllerV2) and of the v3 admin
// API (ClientControllerV3): the same parsing and registry calls, v3 answering in the
// maintainer model (ClientSummaryInfo, ClientServiceInfo, ClientPublisherInfo,
// ClientSubscriberInfo).
func (a *API) clientRoutes(r chi.Router, v *version) {
	r.Get("/client/list", a.serve(v, a.clientList(v)))
	r.Get("/client", a.serve(v, a.clientDetail(v)))
	r.Get("/client/publish/list", a.serve(v, a.clientPublished(v)))
	r.Get("/client/subscribe/list", a.serve(v, a.clientSubscribed(v)))
	r.Get("/client/service/publisher/list", a.serve(v, a.servicePublishers(v)))
	r.Get("/client/service/subscriber/list", a.serve(v, a.serviceSubscribersV2(v)))
}

func (a *API) clientList(v *version) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		ids, err := a.reg.Clients()
		if err != nil {
			return err
		}
		if ids == nil {
			ids = []string{}
		}
		return v.data(w, ids)
	}
}

// clientID reads the required clientId @RequestParam.
func clientID(r *http.Request) (string, error) {
	p, err := readParams(r)
	if err != nil {
		return "", err
	}
	id := p.get("clientId")
	if id == "" {
		return "", naming.MissingRequestParam("clientId", "String")
	}
	return id, nil
}

// connectionClientJSON is a 2.x client's detail, in Nacos' key order.
type connectionClientJSON struct {
	ClientID        string `json:"clientId"`
	Ephemeral       bool   `json:"ephemeral"`
	LastUpdatedTime int64  `json:"lastUpdatedTime"`
	ClientType      string `json:"clientType"`
	ConnectType     string `json:"connectType,omitempty"`
	AppName         string `json:"appName,omitempty"`
	Version         string `json:"version,omitempty"`
	ClientIP        string `json:"clientIp"`
	ClientPort      string `json:"clientPort"`
}

// ipPortClientJSON is a 1.x client's detail.
type ipPortClientJSON struct {
	ClientID        string `json:"clientId"`
	Ephemeral       bool   `json:"ephemeral"`
	LastUpdatedTime int64  `json:"lastUpdatedTime"`
	ClientType      string `json:"clientType"`
	ClientIP        string `json:"clientIp"`
	ClientPort      string `json:"clientPort"`
}

func (a *API) clientDetail(v *version) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		id, err := clientID(r)
		if err != nil {
			return err
		}
		c, err := a.reg.Client(id)
		if err != nil {
			return err
		}
		switch {
		case v.v3:
			return v.data(w, newClientSummaryInfo(c))
		case c.Type == registry.ClientTypeIPPort:
			return v.data(w, ipPortClientJSON{
				ClientID: c.ID, Ephemeral: c.Ephemeral, LastUpdatedTime: c.LastUpdated.UnixMilli(),
				ClientType: c.Type, ClientIP: c.ClientIP, ClientPort: c.ClientPort,
			})
		}
		return v.data(w, connectionClientJSON{
			ClientID: c.ID, Ephemeral: c.Ephemeral, LastUpdatedTime: c.LastUpdated.UnixMilli(), ClientType: c.Type,
			ConnectType: c.ConnectType, AppName: c.AppName, Version: c.Version, ClientIP: c.ClientIP, ClientPort: c.ClientPort,
		})
	}
}

// registeredInstance is an instance in the client views.
type registeredInstance struct {
	IP      string `json:"ip"`
	Port    int    `json:"port"`
	Cluster string `json:"cluster"`
}

type publishedJSON struct {
	Namespace          string             `json:"namespace"`
	Group              string             `json:"group"`
	ServiceName        string             `json:"serviceName"`
	RegisteredInstance registeredInstance `json:"registeredInstance"`
}

func (a *API) clientPublished(v *version) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		id, err := clientID(r)
		if err != nil {
			return err
		}
		list, err := a.reg.ClientPublished(id)
		if err != nil {
			return err
		}
		if v.v3 {
			out := make([]clientServiceInfo, 0, len(list))
			for _, p := range list {
				out = append(out, clientServiceInfo{
					NamespaceID: p.Service.Namespace, GroupName: p.Service.Group, ServiceName: p.Service.Name,
					PublisherInfo: &clientPublisherInfo{IP: p.IP, Port: p.Port, ClusterName: p.Cluster},
				})
			}
			return v.data(w, out)
		}
		out := make([]publishedJSON, 0, len(list))
		for _, p := range list {
			out = append(out, publishedJSON{
				Namespace: p.Service.Namespace, Group: p.Service.Group, ServiceName: p.Service.Name,
				RegisteredInstance: registeredInstance{IP: p.IP, Port: p.Port, Cluster: p.Cluster},
			})
		}
		return v.data(w, out)
	}
}

type subscriberInfoJSON struct {
	App   string `json:"app"`
	Agent string `json:"agent"`
	Addr  string `json:"addr"`
}

type subscribedJSON struct {
	Namespace      string             `json:"namespace"`
	Group          string             `json:"group"`
	ServiceName    string             `json:"serviceName"`
	SubscriberInfo subscriberInfoJSON `json:"subscriberInfo"`
}

func (a *API) clientSubscribed(v *version) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		id, err := clientID(r)
		if err != nil {
			return err
		}
		list, err := a.reg.ClientSubscribed(id)
		if err != nil {
			return err
		}
		if v.v3 {
			out := make([]clientServiceInfo, 0, len(list))
			for _, s := range list {
				out = append(out, clientServiceInfo{
					NamespaceID: s.Service.Namespace, GroupName: s.Service.Group, ServiceName: s.Service.Name,
					SubscriberInfo: &clientSubscriberInfo{AppName: s.App, Agent: s.Agent, Address: s.Addr},
				})
			}
			return v.data(w, out)
		}
		out := make([]subscribedJSON, 0, len(list))
		for _, s := range list {
			out = append(out, subscribedJSON{
				Namespace: s.Service.Namespace, Group: s.Service.Group, ServiceName: s.Service.Name,
				SubscriberInfo: subscriberInfoJSON{App: s.App, Agent: s.Agent, Addr: s.Addr},
			})
		}
		return v.data(w, out)
	}
}

// serviceClientParams reads the service and the optional ip and port filters of the
// per-service client views; an absent filter matches every client (Nacos 2.x matched
// only an exact ip and port, so without them it listed nobody; its 3.x subscriber
// view treats them as optional, as here).
func serviceClientParams(r *http.Request, v *version) (params, naming.ServiceKey, string, *int, error) {
	p, err := readParams(r)
	if err != nil {
		return nil, naming.ServiceKey{}, "", nil, err
	}
	svc, err := p.service(v.requiredString(serviceParam))
	if err != nil {
		return nil, svc, "", nil, err
	}
	if err := naming.CheckIP(p.get("ip")); err != nil {
		return nil, svc, "", nil, err
	}
	var port *int
	if s := p.get("port"); s != "" {
		n, err := naming.ParsePort(s)
		if err != nil {
			return nil, svc, "", nil, err
		}
		port = &n
	}
	return p, svc, p.get("ip"), port, nil
}

type publisherJSON struct {
	IP       string `json:"ip"`
	Port     int    `json:"port"`
	Cluster  string `json:"cluster"`
	ClientID string `json:"clientId"`
}

// servicePublishers lists who registered a service's instances: v2 of the ephemeral or
// the persistent kind (its ephemeral parameter), v3 of both (ClientServiceForm has no
// ephemeral; Nacos 3 looks the service up by name alone).
func (a *API) servicePublishers(v *version) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		p, svc, ip, port, err := serviceClientParams(r, v)
		if err != nil {
			return err
		}
		kinds := []bool{p.boolean(true, "ephemeral")}
		if v.v3 {
			kinds = []bool{true, false}
		}
		var list []registry.Publication
		for _, ephemeral := range kinds {
			pubs, err := a.reg.ServicePublishers(svc, ephemeral)
			if err != nil {
				return err
			}
			list = append(list, pubs...)
		}
		out, outV3 := []publisherJSON{}, []clientPublisherInfo{}
		for _, pub := range list {
			if ip != "" && pub.IP != ip || port != nil && pub.Port != *port {
				continue
			}
			id := pub.ClientID
			outV3 = append(outV3, clientPublisherInfo{ClientID: &id, IP: pub.IP, Port: pub.Port, ClusterName: pub.Cluster})
			out = append(out, publisherJSON{IP: pub.IP, Port: pub.Port, Cluster: pub.Cluster, ClientID: pub.ClientID})
		}
		if v.v3 {
			return v.data(w, outV3)
		}
		return v.data(w, out)
	}
}

type serviceSubscriberJSON struct {
	ClientID string `json:"clientId"`
	IP       string `json:"ip"`
	Port     int    `json:"port"`
}

func (a *API) serviceSubscribersV2(v *version) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		_, svc, ip, port, err := serviceClientParams(r, v)
		if err != nil {
			return err
		}
		list, err := a.reg.ServiceSubscriptions(svc)
		if err != nil {
			return err
		}
		out, outV3 := []serviceSubscriberJSON{}, []clientSubscriberInfo{}
		for _, s := range list {
			if ip != "" && s.IP != ip || port != nil && s.Port != *port {
				continue
			}
			id := s.ClientID
			outV3 = append(outV3, clientSubscriberInfo{ClientID: &id, AppName: s.App, Agent: s.Agent, Address: s.Addr})
			out = append(out, serviceSubscriberJSON{ClientID: s.ClientID, IP: s.IP, Port: s.Port})
		}
		if v.v3 {
			return v.data(w, outV3)
		}
		return v.data(w, out)
	}
}
