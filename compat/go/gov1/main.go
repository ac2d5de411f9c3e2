// Command gov1 runs the compatibility scenario of compat/README.md with nacos-sdk-go
// v1.1.4: E kept alive by the SDK's beats, P persistent, subscribe over UDP push (or the
// SDK's poll), PUT for the update.
package main

import (
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nacos-group/nacos-sdk-go/clients/nacos_client"
	"github.com/nacos-group/nacos-sdk-go/clients/naming_client"
	"github.com/nacos-group/nacos-sdk-go/common/constant"
	"github.com/nacos-group/nacos-sdk-go/common/http_agent"
	"github.com/nacos-group/nacos-sdk-go/model"
	"github.com/nacos-group/nacos-sdk-go/vo"

	"github.com/roster-registry/roster/compat/go/internal/contract"
)

// listQuery is one GET /instance/list the SDK sent.
type listQuery struct{ start, end time.Time }

// recordingAgent is the SDK's HTTP agent, remembering when it read instance lists, so
// that a subscription callback can be told apart from the SDK's own poll.
type recordingAgent struct {
	http_agent.HttpAgent
	mu      sync.Mutex
	queries []listQuery
}

func (a *recordingAgent) Get(path string, header http.Header, timeoutMs uint64, params map[string]string) (*http.Response, error) {
	start := time.Now()
	resp, err := a.HttpAgent.Get(path, header, timeoutMs, params)
	if strings.HasSuffix(path, "/instance/list") {
		a.mu.Lock()
		a.queries = append(a.queries, listQuery{start, time.Now()})
		a.mu.Unlock()
	}
	return resp, err
}

func (a *recordingAgent) Request(method, path string, header http.Header, timeoutMs uint64, params map[string]string) (*http.Response, error) {
	if method == http.MethodGet {
		return a.Get(path, header, timeoutMs, params)
	}
	return a.HttpAgent.Request(method, path, header, timeoutMs, params)
}

func (a *recordingAgent) RequestOnlyResult(method, path string, header http.Header, timeoutMs uint64, params map[string]string) string {
	if method == http.MethodGet && strings.HasSuffix(path, "/instance/list") {
		start := time.Now()
		defer func() {
			a.mu.Lock()
			a.queries = append(a.queries, listQuery{start, time.Now()})
			a.mu.Unlock()
		}()
	}
	return a.HttpAgent.RequestOnlyResult(method, path, header, timeoutMs, params)
}

// polledBetween reports whether a list read the SDK sent could have brought a change
// made at from to a callback at to.
func (a *recordingAgent) polledBetween(from, to time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, q := range a.queries {
		if !q.end.Before(from) && !q.start.After(to) {
			return true
		}
	}
	return false
}

func main() {
	env := contract.FromEnv()
	env.Version("nacos-sdk-go", "github.com/nacos-group/nacos-sdk-go")

	agent := &recordingAgent{}
	nc := &nacos_client.NacosClient{}
	_ = nc.SetClientConfig(constant.ClientConfig{
		NamespaceId:          env.Namespace,
		TimeoutMs:            5000,
		BeatInterval:         env.HeartbeatIntervalMS,
		NotLoadCacheAtStart:  true,
		UpdateCacheWhenEmpty: true,
		CacheDir:             env.CacheDir,
		LogDir:               env.LogDir,
		LogLevel:             "debug",
		Username:             env.Username,
		Password:             env.Password,
	})
	if err := nc.SetServerConfig([]constant.ServerConfig{{IpAddr: env.Host, Port: env.Port, ContextPath: "/nacos"}}); err != nil {
		contract.Fatalf("server config: %v", err)
	}
	_ = nc.SetHttpAgent(agent)
	c, err := naming_client.NewNamingClient(nc)
	if err != nil {
		contract.Fatalf("new naming client: %v", err)
	}
	s := &scenario{env: env, c: &c, agent: agent}
	s.run()
}

type scenario struct {
	env   *contract.Env
	c     *naming_client.NamingClient
	agent *recordingAgent
}

func (s *scenario) run() {
	env := s.env
	env.Step("register_ephemeral", func() (string, error) {
		md := env.Timings()
		md["role"] = "ephemeral"
		if err := s.register(env.Service, contract.EphemeralIP, 1, md, true); err != nil {
			return "", err
		}
		return fmt.Sprintf("beats every %d ms", env.HeartbeatIntervalMS), nil
	})
	env.Wait("keepalive")
	env.Step("register_persistent", func() (string, error) {
		return "", s.register(env.PersistentService, contract.PersistentIP, 1, nil, false)
	})
	env.Step("list_select", s.listSelect)
	env.Step("subscribe", s.subscribe)
	env.Step("update", s.update)
	env.Step("deregister", s.deregister)
	env.Wait("restart")
	env.WaitStop()
}

func (s *scenario) register(service, ip string, weight float64, md map[string]string, ephemeral bool) error {
	ok, err := s.c.RegisterInstance(vo.RegisterInstanceParam{
		Ip: ip, Port: contract.Port, Weight: weight, Enable: true, Healthy: true, Metadata: md,
		ClusterName: contract.Cluster, ServiceName: service, GroupName: s.env.Group, Ephemeral: ephemeral,
	})
	if err == nil && !ok {
		err = errors.New("RegisterInstance returned false")
	}
	return err
}

func (s *scenario) all(service string) ([]model.Instance, error) {
	return s.c.SelectAllInstances(vo.SelectAllInstancesParam{ServiceName: service, GroupName: s.env.Group})
}

// listed reads E's and P's services (one service when they are the same).
func (s *scenario) listed(healthyOnly bool) ([]model.Instance, error) {
	var out []model.Instance
	for i, service := range []string{s.env.Service, s.env.PersistentService} {
		if i == 1 && service == s.env.Service {
			break
		}
		var list []model.Instance
		var err error
		if healthyOnly {
			list, err = s.c.SelectInstances(vo.SelectInstancesParam{ServiceName: service, GroupName: s.env.Group, HealthyOnly: true})
		} else {
			list, err = s.all(service)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %v", service, err)
		}
		out = append(out, list...)
	}
	return out, nil
}

func ips(list []model.Instance) string {
	var out []string
	for _, h := range list {
		out = append(out, fmt.Sprintf("%s:%d", h.Ip, h.Port))
	}
	sort.Strings(out)
	return "[" + strings.Join(out, " ") + "]"
}

func has(list []model.Instance, ip string) bool {
	for _, h := range list {
		if h.Ip == ip && h.Port == contract.Port {
			return true
		}
	}
	return false
}

func (s *scenario) listSelect() (string, error) {
	var detail string
	err := contract.Eventually(10*time.Second, func() error {
		all, err := s.listed(false)
		if err != nil {
			return fmt.Errorf("SelectAllInstances: %v", err)
		}
		if !has(all, contract.EphemeralIP) || !has(all, contract.PersistentIP) {
			return fmt.Errorf("SelectAllInstances = %s, want E and P", ips(all))
		}
		healthy, err := s.listed(true)
		if err != nil {
			return fmt.Errorf("SelectInstances(healthy): %v", err)
		}
		if !has(healthy, contract.EphemeralIP) || !has(healthy, contract.PersistentIP) {
			return fmt.Errorf("SelectInstances(healthy) = %s, want E and P", ips(healthy))
		}
		one, err := s.c.SelectOneHealthyInstance(vo.SelectOneHealthInstanceParam{ServiceName: s.env.Service, GroupName: s.env.Group})
		if err != nil {
			return fmt.Errorf("SelectOneHealthyInstance: %v", err)
		}
		if one.Ip != contract.EphemeralIP && one.Ip != contract.PersistentIP {
			return fmt.Errorf("SelectOneHealthyInstance = %s, want E or P", one.Ip)
		}
		detail = fmt.Sprintf("list %d, healthy %d, selectOne %s", len(all), len(healthy), one.Ip)
		return nil
	})
	return detail, err
}

func (s *scenario) subscribe() (string, error) {
	sawX := make(chan time.Time, 1)
	err := s.c.Subscribe(&vo.SubscribeParam{
		ServiceName: s.env.Service, GroupName: s.env.Group,
		SubscribeCallback: func(list []model.SubscribeService, err error) {
			var hosts []string
			x := false
			for _, h := range list {
				hosts = append(hosts, fmt.Sprintf("%s:%d", h.Ip, h.Port))
				if h.Ip == contract.ExtraIP && h.Port == contract.Port {
					x = true
				}
			}
			contract.Logf("callback: %v %v", hosts, err)
			if x {
				select {
				case sawX <- time.Now():
				default:
				}
			}
		},
	})
	if err != nil {
		return "", fmt.Errorf("subscribe: %v", err)
	}
	registered := time.Now()
	if err := s.register(s.env.Service, contract.ExtraIP, 1, s.env.Timings(), true); err != nil {
		return "", fmt.Errorf("register X: %v", err)
	}
	var how string
	select {
	case at := <-sawX:
		how = "push (udp)"
		if s.agent.polledBetween(registered, at) {
			how = "poll"
		}
		contract.Logf("X seen %v after its registration, %s", at.Sub(registered).Round(time.Millisecond), how)
	case <-time.After(15 * time.Second):
		return "", errors.New("no callback showed X within 15s")
	}
	ok, err := s.c.DeregisterInstance(vo.DeregisterInstanceParam{
		Ip: contract.ExtraIP, Port: contract.Port, Cluster: contract.Cluster,
		ServiceName: s.env.Service, GroupName: s.env.Group, Ephemeral: true,
	})
	if err != nil || !ok {
		return "", fmt.Errorf("deregister X: %v %v", ok, err)
	}
	return how, nil
}

func (s *scenario) update() (string, error) {
	ok, err := s.c.UpdateInstance(vo.UpdateInstanceParam{
		Ip: contract.PersistentIP, Port: contract.Port, ClusterName: contract.Cluster,
		ServiceName: s.env.PersistentService, GroupName: s.env.Group, Weight: 2.5, Enable: true,
		Ephemeral: false, Metadata: map[string]string{"v": "2"},
	})
	if err != nil || !ok {
		return "", fmt.Errorf("update instance: %v %v", ok, err)
	}
	err = contract.Eventually(15*time.Second, func() error {
		all, err := s.all(s.env.PersistentService)
		if err != nil {
			return err
		}
		for _, h := range all {
			if h.Ip == contract.PersistentIP && h.Port == contract.Port {
				if h.Weight != 2.5 || h.Metadata["v"] != "2" {
					return fmt.Errorf("read back: P has weight %v, metadata %v", h.Weight, h.Metadata)
				}
				return nil
			}
		}
		return fmt.Errorf("read back: P not listed: %s", ips(all))
	})
	if err != nil {
		return "", err
	}
	return "weight 2.5, metadata v=2", nil
}

func (s *scenario) deregister() (string, error) {
	ok, err := s.c.DeregisterInstance(vo.DeregisterInstanceParam{
		Ip: contract.PersistentIP, Port: contract.Port, Cluster: contract.Cluster,
		ServiceName: s.env.PersistentService, GroupName: s.env.Group, Ephemeral: false,
	})
	if err != nil || !ok {
		return "", fmt.Errorf("deregister instance: %v %v", ok, err)
	}
	err = contract.Eventually(15*time.Second, func() error {
		all, err := s.all(s.env.PersistentService)
		if err != nil {
			return err
		}
		if has(all, contract.PersistentIP) {
			return fmt.Errorf("read back: P still listed: %s", ips(all))
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return "", nil
}
