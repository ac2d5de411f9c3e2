package e2e

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	clients1 "github.com/nacos-group/nacos-sdk-go/clients"
	naming1 "github.com/nacos-group/nacos-sdk-go/clients/naming_client"
	constant1 "github.com/nacos-group/nacos-sdk-go/common/constant"
	clients2 "github.com/nacos-group/nacos-sdk-go/v2/clients"
	naming2 "github.com/nacos-group/nacos-sdk-go/v2/clients/naming_client"
	constant2 "github.com/nacos-group/nacos-sdk-go/v2/common/constant"
	vo2 "github.com/nacos-group/nacos-sdk-go/v2/vo"
	vo1 "github.com/nacos-group/nacos-sdk-go/vo"

	"github.com/roster-registry/roster/client"
)

// authClientV1 is a nacos-sdk-go v1.1.4 client with the credentials in its own config.
func authClientV1(t *testing.T, s *Server, namespace, user, password string) naming1.INamingClient {
	t.Helper()
	c, err := clients1.NewNamingClient(vo1.NacosClientParam{
		ClientConfig: &constant1.ClientConfig{
			NamespaceId: namespace, TimeoutMs: 5000, BeatInterval: 1000,
			NotLoadCacheAtStart: true, UpdateCacheWhenEmpty: true,
			CacheDir: filepath.Join(workDir, "sdk", "cache", strings.ReplaceAll(t.Name(), "/", "_")+user),
			LogDir:   filepath.Dir(sdkLogPath()), LogLevel: "info",
			Username: user, Password: password,
		},
		ServerConfigs: []constant1.ServerConfig{{IpAddr: "127.0.0.1", Port: uint64(s.Port), ContextPath: "/nacos"}},
	})
	if err != nil {
		t.Fatalf("nacos-sdk-go v1 NewNamingClient: %v", err)
	}
	return c
}

// authClientV2 is a nacos-sdk-go v2 client (gRPC) with the credentials in its config.
func authClientV2(t *testing.T, s *Server, namespace, user, password string) naming2.INamingClient {
	t.Helper()
	c, err := clients2.NewNamingClient(vo2.NacosClientParam{
		ClientConfig: &constant2.ClientConfig{
			NamespaceId: namespace, TimeoutMs: 5000,
			NotLoadCacheAtStart: true, UpdateCacheWhenEmpty: true,
			CacheDir: filepath.Join(workDir, "sdk2", "cache", strings.ReplaceAll(t.Name(), "/", "_")+user),
			LogDir:   filepath.Dir(sdk2LogPath()), LogLevel: "info",
			Username: user, Password: password,
		},
		ServerConfigs: []constant2.ServerConfig{{IpAddr: "127.0.0.1", Port: uint64(s.Port), ContextPath: "/nacos"}},
	})
	if err != nil {
		t.Fatalf("nacos-sdk-go v2 NewNamingClient: %v", err)
	}
	t.Cleanup(c.CloseClient)
	return c
}

// TestAuthWithRealClients runs both Go SDKs against a server with --auth: with their
// configured username and password they register, keep alive and list in the namespace
// they were granted; without credentials, or in another namespace, they are refused.
func TestAuthWithRealClients(t *testing.T) {
	s := NewServer(t, "n1")
	s.Extra = []string{"--auth"}
	s.Start()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	anon := rosterClient(t, s)
	admin, err := anon.ACLBootstrap(ctx, "", "")
	if err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	if _, err := anon.ACLBootstrap(ctx, "", ""); !client.IsStatus(err, 409) {
		t.Fatalf("second bootstrap = %v, want 409", err)
	}
	adm := rosterClient(t, s)
	if _, err := adm.Login(ctx, admin.Username, admin.Password); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CreateUser(ctx, "app", "app-password-1"); err != nil {
		t.Fatal(err)
	}
	if err := adm.BindRole(ctx, "apps", "app"); err != nil {
		t.Fatal(err)
	}
	if err := adm.AddGrant(ctx, client.Grant{Role: "apps", Resource: "ns-a", Action: "rw"}); err != nil {
		t.Fatal(err)
	}
	svcA := client.ServiceRef{Namespace: "ns-a", Group: "DEFAULT_GROUP", Name: "orders"}

	// v1 with credentials: beats keep the ephemeral instance; the persistent one stays.
	v1 := authClientV1(t, s, "ns-a", "app", "app-password-1")
	register(t, v1, vo1.RegisterInstanceParam{Ip: "10.1.0.1", Port: 80, ServiceName: "orders", Weight: 1, Enable: true, Healthy: true, Ephemeral: true})
	register(t, v1, vo1.RegisterInstanceParam{Ip: "10.1.0.2", Port: 80, ServiceName: "orders-db", Weight: 1, Enable: true, Healthy: true, Ephemeral: false})
	deadline := time.Now().Add(2 * heartbeatTimeout)
	for time.Now().Before(deadline) {
		info, err := adm.ListInstances(ctx, svcA, client.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if e := findHTTP(info.Hosts, "10.1.0.1", 80); e == nil || !e.Healthy {
			t.Fatalf("v1 ephemeral instance not kept alive by authenticated beats: %+v", info.Hosts)
		}
		time.Sleep(200 * time.Millisecond)
	}
	got, err := v1.SelectAllInstances(vo1.SelectAllInstancesParam{ServiceName: "orders"})
	if err != nil || len(got) != 1 {
		t.Fatalf("v1 SelectAllInstances = %v, %v", got, err)
	}

	// v2 with credentials: gRPC register and query in ns-a.
	v2 := authClientV2(t, s, "ns-a", "app", "app-password-1")
	if ok, err := v2.RegisterInstance(vo2.RegisterInstanceParam{Ip: "10.1.0.3", Port: 80, ServiceName: "orders", Weight: 1, Enable: true, Healthy: true, Ephemeral: true}); err != nil || !ok {
		t.Fatalf("v2 RegisterInstance with credentials = %v, %v", ok, err)
	}
	eventually(t, 10*time.Second, func() error {
		info, err := adm.ListInstances(ctx, svcA, client.ListOptions{})
		if err == nil && findHTTP(info.Hosts, "10.1.0.3", 80) == nil {
			err = errors.New("v2 instance 10.1.0.3 not listed yet")
		}
		return err
	})

	// v2 in a namespace it has no grant on: refused.
	v2b := authClientV2(t, s, "ns-b", "app", "app-password-1")
	if ok, err := v2b.RegisterInstance(vo2.RegisterInstanceParam{Ip: "10.1.0.4", Port: 80, ServiceName: "orders", Weight: 1, Enable: true, Healthy: true, Ephemeral: true}); err == nil && ok {
		t.Fatal("v2 registered in ns-b without a grant")
	}
	// Without credentials: both SDKs are refused.
	v1anon := authClientV1(t, s, "ns-a", "", "")
	if ok, err := v1anon.RegisterInstance(vo1.RegisterInstanceParam{Ip: "10.1.0.5", Port: 80, ServiceName: "orders", Weight: 1, Enable: true, Healthy: true, Ephemeral: true}); err == nil && ok {
		t.Fatal("v1 registered without credentials")
	}
	v2anon := authClientV2(t, s, "ns-a", "", "")
	if ok, err := v2anon.RegisterInstance(vo2.RegisterInstanceParam{Ip: "10.1.0.6", Port: 80, ServiceName: "orders", Weight: 1, Enable: true, Healthy: true, Ephemeral: true}); err == nil && ok {
		t.Fatal("v2 registered without credentials")
	}
	info, err := adm.ListInstances(ctx, svcA, client.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ip := range []string{"10.1.0.5", "10.1.0.6"} {
		if findHTTP(info.Hosts, ip, 80) != nil {
			t.Errorf("refused client's instance %s is listed", ip)
		}
	}
	if _, err := anon.ListInstances(ctx, svcA, client.ListOptions{}); !client.IsStatus(err, 403) {
		t.Errorf("anonymous list = %v, want 403", err)
	}
}

// TestOpenBindWithoutAuthRefusesToStart: a client port on every interface with auth
// explicitly off and no --insecure is refused before anything listens.
func TestOpenBindWithoutAuthRefusesToStart(t *testing.T) {
	bin, _ := binaries(t)
	port := freeHTTPPort(t)
	cmd := exec.Command(bin, "server", "--health-check-cidrs", "127.0.0.0/8", "--http-addr", "0.0.0.0:"+strconv.Itoa(port), "--raft-addr", "127.0.0.1:"+strconv.Itoa(freePort(t)),
		"--data-dir", t.TempDir(), "--auth=false")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 1 {
		t.Fatalf("exit = %v (%v), want 1; stderr:\n%s", cmd.ProcessState, err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	last := lines[len(lines)-1]
	if !strings.Contains(last, "0.0.0.0:"+strconv.Itoa(port)) || !strings.Contains(last, "--insecure") {
		t.Fatalf("refusal line = %q", last)
	}
}
