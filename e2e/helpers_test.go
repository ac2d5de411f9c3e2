package e2e

import (
	"context"
	"fmt"
	"maps"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nacos-group/nacos-sdk-go/clients"
	"github.com/nacos-group/nacos-sdk-go/clients/naming_client"
	"github.com/nacos-group/nacos-sdk-go/common/constant"
	"github.com/nacos-group/nacos-sdk-go/model"
	"github.com/nacos-group/nacos-sdk-go/vo"

	"github.com/roster-registry/roster/client"
)

// sdkLogged records the tests that already print the SDK log on failure.
var sdkLogged sync.Map

// sdkLogPath is the one log of every in-process SDK client: the SDK's logger is a
// process-wide global. It holds the body of every answer the SDK rejected.
func sdkLogPath() string { return filepath.Join(workDir, "sdk", "log", "nacos-sdk.log") }

// newNacosClient returns a real nacos-sdk-go v1.1.4 naming client of s.
func newNacosClient(t *testing.T, s *Server, namespace string) naming_client.INamingClient {
	t.Helper()
	cacheDir := filepath.Join(workDir, "sdk", "cache", strings.ReplaceAll(t.Name(), "/", "_"))
	c, err := clients.NewNamingClient(vo.NacosClientParam{
		ClientConfig: &constant.ClientConfig{
			NamespaceId:          namespace,
			TimeoutMs:            5000,
			BeatInterval:         1000,
			NotLoadCacheAtStart:  true,
			UpdateCacheWhenEmpty: true,
			CacheDir:             cacheDir,
			LogDir:               filepath.Dir(sdkLogPath()),
			LogLevel:             "info",
		},
		ServerConfigs: []constant.ServerConfig{{IpAddr: "127.0.0.1", Port: uint64(s.Port), ContextPath: "/nacos"}},
	})
	if err != nil {
		t.Fatalf("nacos-sdk-go NewNamingClient: %v", err)
	}
	if _, loaded := sdkLogged.LoadOrStore(t.Name(), true); !loaded {
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("nacos-sdk-go log, last lines (failed calls carry the server's answer):\n%s", tail(sdkLogPath(), 40))
			}
		})
	}
	return c
}

// register registers an instance with the SDK and, when the test ends, deregisters it
// so the SDK's beat goroutine stops.
func register(t *testing.T, c naming_client.INamingClient, p vo.RegisterInstanceParam) {
	t.Helper()
	ok, err := c.RegisterInstance(p)
	if err != nil || !ok {
		t.Fatalf("nacos-sdk-go RegisterInstance(%s %s:%d ephemeral=%v) = %v, %v", p.ServiceName, p.Ip, p.Port, p.Ephemeral, ok, err)
	}
	t.Cleanup(func() {
		_, _ = c.DeregisterInstance(vo.DeregisterInstanceParam{
			Ip: p.Ip, Port: p.Port, Cluster: p.ClusterName, ServiceName: p.ServiceName,
			GroupName: p.GroupName, Ephemeral: p.Ephemeral,
		})
	})
}

// rosterClient is Roster's own HTTP client of s: the plain-HTTP view of the server.
func rosterClient(t *testing.T, s *Server) *client.Client {
	t.Helper()
	c, err := client.New(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// expect is an instance as a test registered it.
type expect struct {
	ip        string
	port      int
	weight    float64
	cluster   string
	metadata  map[string]string
	healthy   bool
	enabled   bool
	ephemeral bool
	service   string // grouped: G@@S
}

// checkSDK compares what the SDK decoded with what was registered, field for field.
func checkSDK(got model.Instance, w expect) error {
	var diffs []string
	add := func(field string, g, want any) {
		if fmt.Sprint(g) != fmt.Sprint(want) {
			diffs = append(diffs, fmt.Sprintf("%s=%v want %v", field, g, want))
		}
	}
	add("ip", got.Ip, w.ip)
	add("port", got.Port, w.port)
	add("weight", got.Weight, w.weight)
	add("clusterName", got.ClusterName, w.cluster)
	add("healthy", got.Healthy, w.healthy)
	add("enabled", got.Enable, w.enabled)
	add("ephemeral", got.Ephemeral, w.ephemeral)
	add("serviceName", got.ServiceName, w.service)
	add("instanceId", got.InstanceId, fmt.Sprintf("%s#%d#%s#%s", w.ip, w.port, w.cluster, w.service))
	if !sameMetadata(got.Metadata, w.metadata) {
		diffs = append(diffs, fmt.Sprintf("metadata=%v want %v", got.Metadata, w.metadata))
	}
	if len(diffs) > 0 {
		return fmt.Errorf("instance %s:%d differs: %s", w.ip, w.port, strings.Join(diffs, "; "))
	}
	return nil
}

// checkHTTP compares an instance of a plain-HTTP list answer with what was registered.
// Healthy is compared only when checkHealthy is set.
func checkHTTP(got client.Instance, w expect, checkHealthy bool) error {
	var diffs []string
	add := func(field string, g, want any) {
		if fmt.Sprint(g) != fmt.Sprint(want) {
			diffs = append(diffs, fmt.Sprintf("%s=%v want %v", field, g, want))
		}
	}
	add("ip", got.IP, w.ip)
	add("port", got.Port, w.port)
	add("weight", got.Weight, w.weight)
	add("clusterName", got.ClusterName, w.cluster)
	if checkHealthy {
		add("healthy", got.Healthy, w.healthy)
	}
	add("enabled", got.Enabled, w.enabled)
	add("ephemeral", got.Ephemeral, w.ephemeral)
	add("serviceName", got.ServiceName, w.service)
	add("instanceId", got.InstanceID, fmt.Sprintf("%s#%d#%s#%s", w.ip, w.port, w.cluster, w.service))
	if !sameMetadata(got.Metadata, w.metadata) {
		diffs = append(diffs, fmt.Sprintf("metadata=%v want %v", got.Metadata, w.metadata))
	}
	if len(diffs) > 0 {
		return fmt.Errorf("instance %s:%d differs: %s", w.ip, w.port, strings.Join(diffs, "; "))
	}
	return nil
}

func sameMetadata(a, b map[string]string) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return maps.Equal(a, b)
}

// findSDK returns the instance at ip:port, or nil.
func findSDK(list []model.Instance, ip string, port int) *model.Instance {
	for i := range list {
		if list[i].Ip == ip && int(list[i].Port) == port {
			return &list[i]
		}
	}
	return nil
}

// findHTTP returns the instance at ip:port, or nil.
func findHTTP(list []client.Instance, ip string, port int) *client.Instance {
	for i := range list {
		if list[i].IP == ip && list[i].Port == port {
			return &list[i]
		}
	}
	return nil
}

// listHTTP lists a service over plain HTTP with a short timeout.
func listHTTP(c *client.Client, svc client.ServiceRef) (*client.ServiceInfo, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.ListInstances(ctx, svc, client.ListOptions{})
}

// listener opens a TCP listener on 127.0.0.1 so that a persistent instance registered
// at its port passes an active TCP health check.
func listener(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return l.Addr().(*net.TCPAddr).Port
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
