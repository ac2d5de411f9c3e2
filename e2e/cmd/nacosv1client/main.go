// Command nacosv1client registers one ephemeral instance with the real nacos-sdk-go
// v1.1.4 naming client and then keeps it alive with the client's own beats until it is
// killed.
//
// The e2e tests run it as a child process because v1.1.4 has no way to stop beating
// without deregistering: its NamingClient has no Close, and the only path to the beat
// reactor's RemoveBeatInfo is DeregisterInstance, which also sends the DELETE. Killing
// this process is a client crash: beats stop, the instance stays registered.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/nacos-group/nacos-sdk-go/clients"
	"github.com/nacos-group/nacos-sdk-go/common/constant"
	"github.com/nacos-group/nacos-sdk-go/vo"
)

func main() {
	var (
		serverPort = flag.Uint64("server-port", 8848, "Roster HTTP port on 127.0.0.1")
		namespace  = flag.String("namespace", "", "namespace id (blank: public)")
		group      = flag.String("group", "", "group (blank: DEFAULT_GROUP)")
		service    = flag.String("service", "", "service name")
		ip         = flag.String("ip", "127.0.0.1", "instance ip")
		port       = flag.Uint64("port", 0, "instance port")
		cluster    = flag.String("cluster", "", "cluster name")
		weight     = flag.Float64("weight", 1, "weight")
		metadata   = flag.String("metadata", "{}", "metadata as a JSON object")
		dir        = flag.String("dir", os.TempDir(), "directory for the SDK's cache and log")
	)
	flag.Parse()
	md := map[string]string{}
	if err := json.Unmarshal([]byte(*metadata), &md); err != nil {
		fmt.Fprintf(os.Stderr, "nacosv1client: -metadata: %v\n", err)
		os.Exit(2)
	}
	c, err := clients.NewNamingClient(vo.NacosClientParam{
		ClientConfig: &constant.ClientConfig{
			NamespaceId: *namespace, TimeoutMs: 5000, BeatInterval: 1000, NotLoadCacheAtStart: true,
			UpdateCacheWhenEmpty: true, CacheDir: *dir + "/cache", LogDir: *dir + "/log", LogLevel: "info",
		},
		ServerConfigs: []constant.ServerConfig{{IpAddr: "127.0.0.1", Port: *serverPort, ContextPath: "/nacos"}},
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "nacosv1client: new client: %v\n", err)
		os.Exit(1)
	}
	ok, err := c.RegisterInstance(vo.RegisterInstanceParam{
		Ip: *ip, Port: *port, Weight: *weight, Enable: true, Healthy: true, Metadata: md,
		ClusterName: *cluster, ServiceName: *service, GroupName: *group, Ephemeral: true,
	})
	if err != nil || !ok {
		fmt.Fprintf(os.Stderr, "nacosv1client: register: %v\n", err)
		os.Exit(1)
	}
	// The test waits for this line before it watches the instance.
	fmt.Println("registered")

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	<-sig
}
