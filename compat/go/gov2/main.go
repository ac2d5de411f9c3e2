// Command gov2 runs the compatibility scenario of compat/README.md with nacos-sdk-go v2:
// E registered over gRPC (alive as long as the connection), P persistent over HTTP,
// subscribe answered by gRPC pushes.
package main

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/clients"
	"github.com/nacos-group/nacos-sdk-go/v2/clients/naming_client"
	"github.com/nacos-group/nacos-sdk-go/v2/common/constant"
	"github.com/nacos-group/nacos-sdk-go/v2/model"
	"github.com/nacos-group/nacos-sdk-go/v2/vo"

	"github.com/roster-registry/roster/compat/go/internal/contract"
)

func main() {
	env := contract.FromEnv()
	env.Version("nacos-sdk-go", "github.com/nacos-group/nacos-sdk-go/v2")
	s := &scenario{env: env, c: newClient(env, env.CacheDir)}
	s.run()
}

// newClient makes a naming client with its own gRPC connection.
func newClient(env *contract.Env, cacheDir string) naming_client.INamingClient {
	c, err := clients.NewNamingClient(vo.NacosClientParam{
		ClientConfig: &constant.ClientConfig{
			NamespaceId:          env.Namespace,
			TimeoutMs:            5000,
			NotLoadCacheAtStart:  true,
			UpdateCacheWhenEmpty: true,
			// No polling: the only way a subscription learns of a change is a push.
			AsyncUpdateService: false,
			CacheDir:           cacheDir,
			LogDir:             env.LogDir,
			LogLevel:           "debug",
			Username:           env.Username,
			Password:           env.Password,
		},
		ServerConfigs: []constant.ServerConfig{{IpAddr: env.Host, Port: env.Port, ContextPath: "/nacos"}},
	})
	if err != nil {
		contract.Fatalf("new naming client: %v", err)
	}
	return c
}

type scenario struct {
	env *contract.Env
	c   naming_client.INamingClient
}

func (s *scenario) run() {
	env := s.env
	env.Step("register_ephemeral", func() (string, error) {
		md := env.Timings()
		md["role"] = "ephemeral"
		if err := s.register(env.Service, contract.EphemeralIP, 1, md, true); err != nil {
			return "", err
		}
		return "grpc", nil
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
		SubscribeCallback: func(list []model.Instance, err error) {
			contract.Logf("callback: %s %v", ips(list), err)
			if has(list, contract.ExtraIP) {
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
	// A Nacos 2.x connection holds one instance per service: X registered on the
	// connection holding E would replace E. X gets a client of its own.
	x := newClient(s.env, s.env.CacheDir+"-x")
	defer x.CloseClient()
	registered := time.Now()
	ok, err := x.RegisterInstance(vo.RegisterInstanceParam{
		Ip: contract.ExtraIP, Port: contract.Port, Weight: 1, Enable: true, Healthy: true,
		ClusterName: contract.Cluster, ServiceName: s.env.Service, GroupName: s.env.Group, Ephemeral: true,
	})
	if err != nil || !ok {
		return "", fmt.Errorf("register X: %v %v", ok, err)
	}
	select {
	case at := <-sawX:
		contract.Logf("X seen %v after its registration", at.Sub(registered).Round(time.Millisecond))
	case <-time.After(15 * time.Second):
		return "", errors.New("no callback showed X within 15s")
	}
	ok, err = x.DeregisterInstance(vo.DeregisterInstanceParam{
		Ip: contract.ExtraIP, Port: contract.Port, Cluster: contract.Cluster,
		ServiceName: s.env.Service, GroupName: s.env.Group, Ephemeral: true,
	})
	if err != nil || !ok {
		return "", fmt.Errorf("deregister X: %v %v", ok, err)
	}
	// Polling is off (AsyncUpdateService false): the callback can only come from a push.
	return "push (grpc)", nil
}

func (s *scenario) update() (string, error) {
	ok, err := s.c.UpdateInstance(vo.UpdateInstanceParam{
		Ip: contract.PersistentIP, Port: contract.Port, ClusterName: contract.Cluster,
		ServiceName: s.env.PersistentService, GroupName: s.env.Group, Weight: 2.5, Enable: true, Healthy: true,
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
