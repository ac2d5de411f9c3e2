// Command nacosv2client registers one ephemeral instance over gRPC with the real
// nacos-sdk-go v2 naming client (and optionally subscribes to a service, printing each
// callback) and holds its connection until it is killed. The e2e tests kill it with
// SIGKILL (the kernel closes the TCP connection) or freeze it with SIGSTOP (the
// connection stays open but nothing answers), the two ways a Nacos 2.x client goes away
// without deregistering, and restart the server under it to watch its redo.
//
// It runs as a separate process, built without -race, also because the SDK's reconnect
// path has a data race of its own (RpcClient.currentConnection is written by reconnect
// and read by notifyConnectionEvent without synchronisation) that would fail a -race
// test binary.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/clients"
	"github.com/nacos-group/nacos-sdk-go/v2/common/constant"
	"github.com/nacos-group/nacos-sdk-go/v2/model"
	"github.com/nacos-group/nacos-sdk-go/v2/vo"
)

func main() {
	var (
		serverPort = flag.Uint64("server-port", 8848, "Roster HTTP port on 127.0.0.1 (gRPC: +1000)")
		serverList = flag.String("server-ports", "", "comma-separated Roster HTTP ports on 127.0.0.1, a cluster's (overrides -server-port)")
		namespace  = flag.String("namespace", "", "namespace id (blank: public)")
		group      = flag.String("group", "", "group (blank: DEFAULT_GROUP)")
		service    = flag.String("service", "", "service name")
		ip         = flag.String("ip", "127.0.0.1", "instance ip")
		port       = flag.Uint64("port", 0, "instance port")
		metadata   = flag.String("metadata", "{}", "metadata as a JSON object")
		dir        = flag.String("dir", os.TempDir(), "directory for the SDK's cache and log")
		subscribe  = flag.String("subscribe", "", "also subscribe to this service (public, DEFAULT_GROUP) and print each callback")
	)
	flag.Parse()
	md := map[string]string{}
	if err := json.Unmarshal([]byte(*metadata), &md); err != nil {
		fmt.Fprintf(os.Stderr, "nacosv2client: -metadata: %v\n", err)
		os.Exit(2)
	}
	servers := []constant.ServerConfig{{IpAddr: "127.0.0.1", Port: *serverPort, ContextPath: "/nacos"}}
	if *serverList != "" {
		servers = nil
		for _, p := range strings.Split(*serverList, ",") {
			n, err := strconv.ParseUint(p, 10, 16)
			if err != nil {
				fmt.Fprintf(os.Stderr, "nacosv2client: -server-ports: %v\n", err)
				os.Exit(2)
			}
			servers = append(servers, constant.ServerConfig{IpAddr: "127.0.0.1", Port: n, ContextPath: "/nacos"})
		}
	}
	c, err := clients.NewNamingClient(vo.NacosClientParam{
		ClientConfig: &constant.ClientConfig{
			NamespaceId: *namespace, TimeoutMs: 5000, NotLoadCacheAtStart: true, UpdateCacheWhenEmpty: true,
			CacheDir: *dir + "/cache", LogDir: *dir + "/log", LogLevel: "info",
		},
		ServerConfigs: servers,
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
	if *subscribe != "" {
		err := c.Subscribe(&vo.SubscribeParam{ServiceName: *subscribe, SubscribeCallback: func(list []model.Instance, err error) {
			hosts := make([]string, 0, len(list))
			for _, h := range list {
				hosts = append(hosts, fmt.Sprintf("%s:%d", h.Ip, h.Port))
			}
			sort.Strings(hosts)
			// One line per callback: "callback <unix millis> <ip:port,...>".
			fmt.Printf("callback %d %s\n", time.Now().UnixMilli(), strings.Join(hosts, ","))
		}})
		if err != nil {
			fmt.Fprintf(os.Stderr, "nacosv2client: subscribe: %v\n", err)
			os.Exit(1)
		}
	}
	// The test waits for this line before it watches the instance.
	fmt.Println("registered")

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	<-sig
}
