// Command nacosv2client registers one ephemeral instance over gRPC with the real
// nacos-sdk-go v2 naming client and holds its connection until it is killed. The e2e
// tests kill it with SIGKILL (the kernel closes the TCP connection) or freeze it with
// SIGSTOP (the connection stays open but nothing answers), the two ways a Nacos 2.x
// client goes away without deregistering.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/nacos-group/nacos-sdk-go/v2/clients"
	"github.com/nacos-group/nacos-sdk-go/v2/common/constant"
	"github.com/nacos-group/nacos-sdk-go/v2/vo"
)

func main() {
	var (
		serverPort = flag.Uint64("server-port", 8848, "Roster HTTP port on 127.0.0.1 (gRPC: +1000)")
		namespace  = flag.String("namespace", "", "namespace id (blank: public)")
		group      = flag.String("group", "", "group (blank: DEFAULT_GROUP)")
		service    = flag.String("service", "", "service name")
		ip         = flag.String("ip", "127.0.0.1", "instance ip")
		port       = flag.Uint64("port", 0, "instance port")
		metadata   = flag.String("metadata", "{}", "metadata as a JSON object")
		dir        = flag.String("dir", os.TempDir(), "directory for the SDK's cache and log")
	)
	flag.Parse()
	md := map[string]string{}
	if err := json.Unmarshal([]byte(*metadata), &md); err != nil {
		fmt.Fprintf(os.Stderr, "nacosv2client: -metadata: %v\n", err)
		os.Exit(2)
	}
	c, err := clients.NewNamingClient(vo.NacosClientParam{
		ClientConfig: &constant.ClientConfig{
			NamespaceId: *namespace, TimeoutMs: 5000, NotLoadCacheAtStart: true, UpdateCacheWhenEmpty: true,
			CacheDir: *dir + "/cache", LogDir: *dir + "/log", LogLevel: "info",
		},
		ServerConfigs: []constant.ServerConfig{{IpAddr: "127.0.0.1", Port: *serverPort, ContextPath: "/nacos"}},
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "nacosv2client: new client: %v\n", err)
		os.Exit(1)
	}
	ok, err := c.RegisterInstance(vo.RegisterInstanceParam{
		Ip: *ip, Port: *port, Weight: 1, Enable: true, Healthy: true, Metadata: md,
		ServiceName: *service, GroupName: *group, Ephemeral: true,
	})
	if err != nil || !ok {
		fmt.Fprintf(os.Stderr, "nacosv2client: register: %v %v\n", ok, err)
		os.Exit(1)
	}
	// The test waits for this line before it watches the instance.
	fmt.Println("registered")

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	<-sig
}
