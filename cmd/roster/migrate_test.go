package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/roster-registry/roster/client"
	"github.com/roster-registry/roster/migrate"
	"github.com/roster-registry/roster/server"
	"github.com/roster-registry/roster/server/servertest"
)

// TestMain lets a test run the roster command line as a child process of its own (the
// test binary with ROSTER_TEST_CLI=1), so that it can be killed like the real one.
func TestMain(m *testing.M) {
	if os.Getenv("ROSTER_TEST_CLI") == "1" {
		os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func rosterURL(addr string) string { return "http://" + addr }

func newClient(t *testing.T, addr string) *client.Client {
	t.Helper()
	c, err := client.New(addr)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// createNamespace makes a namespace through Nacos' console API where the server has
// one; without it namespaces exist by use and false is answered.
func createNamespace(t *testing.T, c *client.Client, id, name, desc string) bool {
	t.Helper()
	err := c.CreateNamespace(context.Background(), client.NamespaceSpec{ID: id, Name: name, Desc: desc})
	if client.IsStatus(err, http.StatusNotFound) || client.IsStatus(err, http.StatusNotImplemented) || client.IsStatus(err, http.StatusMethodNotAllowed) {
		return false
	}
	if err != nil {
		t.Fatalf("create namespace %s: %v", id, err)
	}
	return true
}

// fillRoster writes a mix through the client: services with metadata, thresholds and a
// label selector, an HTTP-checked cluster, persistent instances (one disabled, with
// metadata and weight), and a service of ephemeral instances only. Addresses are
// loopback: Roster probes persistent instances.
func fillRoster(t *testing.T, c *client.Client, namespaces []string, servicesPerNS int) {
	t.Helper()
	ctx := context.Background()
	// /instance/list leaves disabled instances out; only a server with the catalog's
	// instance list shows them to an import.
	_, err := c.ListNamespaces(ctx)
	withDisabled := err == nil && servesCatalogInstances(t, c)
	for _, ns := range namespaces {
		for i := 0; i < servicesPerNS; i++ {
			ref := client.ServiceRef{Namespace: ns, Group: "G" + string(rune('a'+i%3)), Name: "svc" + string(rune('a'+i))}
			sel := &client.Selector{Type: "label", Expression: "CONSUMER.label.env = PROVIDER.label.env"}
			if i%2 == 1 {
				sel = nil
			}
			if err := c.CreateService(ctx, ref, client.ServiceOptions{ProtectThreshold: 0.25, Metadata: map[string]string{"team": ns, "i": string(rune('0' + i%10))}, Selector: sel}); err != nil {
				t.Fatalf("create %v: %v", ref, err)
			}
			if err := c.UpdateCluster(ctx, ref, client.ClusterConfig{Name: "web", HealthChecker: client.HealthChecker{Type: "HTTP", Path: "/health", ExpectedResponseCode: 200},
				CheckPort: 8080, Metadata: map[string]string{"zone": "z1"}}); err != nil {
				t.Fatalf("cluster %v: %v", ref, err)
			}
			for j := 0; j < 3; j++ {
				in := client.NewInstance("127.0.0."+string(rune('2'+j)), 20000+i)
				in.Ephemeral = false
				in.Weight = 1.5
				in.Metadata = map[string]string{"version": "v" + string(rune('1'+j))}
				if j == 1 {
					in.ClusterName = "web"
				}
				if j == 2 && withDisabled {
					in.Enabled = false
				}
				if err := c.RegisterInstance(ctx, ref, in); err != nil {
					t.Fatalf("register %v: %v", ref, err)
				}
			}
		}
		eph := client.ServiceRef{Namespace: ns, Name: "ephemeral-only"}
		in := client.NewInstance("127.0.0.9", 30000)
		if err := c.RegisterInstance(ctx, eph, in); err != nil {
			t.Fatal(err)
		}
	}
}

func servesCatalogInstances(t *testing.T, c *client.Client) bool {
	resp, err := http.Get(c.Addr() + "/nacos/v1/ns/catalog/instances?serviceName=probe&clusterName=DEFAULT")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusNotImplemented
}

// exportOf reads a Roster's persistent data through the export command.
// Arguments that begin with "--" are passed as they are; others name namespaces.
func exportOf(t *testing.T, addr string, namespaces ...string) *migrate.Dump {
	t.Helper()
	args := []string{"export", "-", "--addr", addr}
	for i := 0; i < len(namespaces); i++ {
		if strings.HasPrefix(namespaces[i], "--") {
			args = append(args, namespaces[i], namespaces[i+1])
			i++
			continue
		}
		args = append(args, "--namespace", namespaces[i])
	}
	code, out, errOut := cli(t, args...)
	if code != 0 {
		t.Fatalf("export: %d %s", code, errOut)
	}
	d, err := migrate.ReadDump(strings.NewReader(out))
	if err != nil {
		t.Fatalf("export answer: %v\n%s", err, out)
	}
	return d
}

// comparable drops what is not data: where the dump came from, and the health of
// instances, which each Roster's own probes decide.
func comparable(d *migrate.Dump) *migrate.Dump {
	c := *d
	c.Source = ""
	c.Services = append([]migrate.Service(nil), d.Services...)
	for i := range c.Services {
		ins := append([]migrate.Instance(nil), c.Services[i].Instances...)
		for j := range ins {
			ins[j].Healthy = false
		}
		c.Services[i].Instances = ins
	}
	return &c
}

func sameData(t *testing.T, what string, want, got *migrate.Dump) {
	t.Helper()
	if w, g := comparable(want), comparable(got); !reflect.DeepEqual(w, g) {
		wj, _ := json.MarshalIndent(w, "", " ")
		gj, _ := json.MarshalIndent(g, "", " ")
		t.Fatalf("%s: data differs\nwant %s\ngot  %s", what, wj, gj)
	}
}

func importReport(t *testing.T, args ...string) *migrate.Report {
	t.Helper()
	code, out, errOut := cli(t, append(args, "-o", "json")...)
	if code != 0 {
		t.Fatalf("%v: exit %d: %s", args, code, errOut)
	}
	var rep migrate.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v: %v\n%s", args, err, out)
	}
	return &rep
}

// testNamespaces creates "dev" on the source where it has a namespace API and answers
// the namespaces the test uses, and the flags that name them.
func testNamespaces(t *testing.T, src *client.Client) ([]string, []string) {
	if createNamespace(t, src, "dev", "Development", "for tests") {
		return []string{"public", "dev"}, nil
	}
	// Without a namespace list the import reads the namespaces it is told.
	return []string{"public", "dev"}, []string{"--namespace", "public", "--namespace", "dev"}
}

func TestImportFromRoster(t *testing.T) {
	src := servertest.StartNode(t)
	dst := servertest.StartNode(t)
	srcAddr, dstAddr := rosterURL(src.HTTPAddr()), rosterURL(dst.HTTPAddr())
	sc := newClient(t, srcAddr)
	nss, nsFlags := testNamespaces(t, sc)
	fillRoster(t, sc, nss, 4)

	args := append([]string{"import", "nacos", "--from", srcAddr, "--addr", dstAddr}, nsFlags...)

	// A dry run plans the writes and makes none.
	rep := importReport(t, append(args, "--dry-run")...)
	if !rep.DryRun || rep.Totals.Writes == 0 || rep.Totals.Created != 2*5 {
		t.Fatalf("dry run report: %+v", rep.Totals)
	}
	if d := exportOf(t, dstAddr); len(d.Services) != 0 || len(d.Namespaces) != 1 {
		t.Fatalf("the dry run wrote %d services", len(d.Services))
	}

	rep = importReport(t, args...)
	if rep.Totals.Created != 10 || rep.Totals.Failed != 0 || rep.Totals.PersistentCopied != 2*4*3 || rep.Totals.EphemeralNotCopied != 2 || !rep.Changed {
		t.Fatalf("first run: %+v", rep.Totals)
	}
	if !strings.Contains(strings.Join(rep.Notes, " "), "re-register") {
		t.Errorf("notes do not tell that ephemeral clients re-register: %q", rep.Notes)
	}
	sameData(t, "after import", exportOf(t, srcAddr, nss...), exportOf(t, dstAddr, nss...))
	if nsFlags == nil {
		list, err := newClient(t, dstAddr).ListNamespaces(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(list, func(n client.Namespace) bool {
			return n.ID == "dev" && n.Name == "Development" && n.Desc != nil && *n.Desc == "for tests"
		}) {
			t.Errorf("target namespaces: %+v", list)
		}
	}

	// Field for field through the open API too: a disabled persistent instance, weights
	// and metadata.
	ref := client.ServiceRef{Namespace: "dev", Group: "Gc", Name: "svcc"}
	info, err := newClient(t, dstAddr).ListInstances(context.Background(), ref, client.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, in := range info.Hosts {
		if in.Ephemeral || in.Weight != 1.5 || !strings.HasPrefix(in.Metadata["version"], "v") {
			t.Errorf("imported instance: %+v", in)
		}
		if in.IP == "127.0.0.3" && in.ClusterName == "web" {
			found++
		}
	}
	if want := 3; servesCatalogInstances(t, sc) {
		want = 2 // the disabled one is not listed
		if len(info.Hosts) != want || found != 1 {
			t.Errorf("imported instances: %+v", info.Hosts)
		}
	} else if len(info.Hosts) != want || found != 1 {
		t.Errorf("imported instances: %+v", info.Hosts)
	}

	// A second run changes nothing and says so.
	rep = importReport(t, args...)
	if rep.Changed || rep.Totals.Writes != 0 || rep.Totals.Unchanged != 10 {
		t.Fatalf("second run: changed=%v %+v", rep.Changed, rep.Totals)
	}
	code, out, errOut := cli(t, args...)
	if code != 0 || !strings.Contains(out, "Nothing changed") {
		t.Fatalf("second run table: %d\n%s", code, out)
	}
	if errOut != "" {
		t.Errorf("progress written off a terminal: %q", errOut)
	}

	// A changed source is carried over as an update of what differs.
	ctx := context.Background()
	if err := sc.UpdateService(ctx, ref, client.ServiceOptions{ProtectThreshold: 0.5, Metadata: map[string]string{"team": "moved"}}); err != nil {
		t.Fatal(err)
	}
	rep = importReport(t, args...)
	if rep.Totals.Updated != 1 || rep.Totals.Writes != 1 {
		t.Fatalf("after a change: %+v", rep.Totals)
	}
	sameData(t, "after the update", exportOf(t, srcAddr, nss...), exportOf(t, dstAddr, nss...))
}

func TestExportImportRoundTrip(t *testing.T) {
	src := servertest.StartNode(t)
	dst := servertest.StartNode(t)
	srcAddr, dstAddr := rosterURL(src.HTTPAddr()), rosterURL(dst.HTTPAddr())
	sc := newClient(t, srcAddr)
	nss, nsFlags := testNamespaces(t, sc)
	fillRoster(t, sc, nss, 3)

	file := filepath.Join(t.TempDir(), "roster.json")
	args := append([]string{"export", file, "--addr", srcAddr}, nsFlags...)
	if code, _, errOut := cli(t, args...); code != 0 {
		t.Fatalf("export: %s", errOut)
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(raw, []byte(`"format": "roster-export"`)) || !bytes.Contains(raw, []byte(`"version": 1`)) {
		t.Fatalf("export file has no format and version:\n%.300s", raw)
	}
	if bytes.Contains(raw, []byte("127.0.0.9")) {
		t.Errorf("the export holds an ephemeral instance")
	}
	rep := importReport(t, "import", file, "--addr", dstAddr)
	if rep.Totals.Failed != 0 || rep.Totals.Created == 0 {
		t.Fatalf("import: %+v", rep.Totals)
	}
	sameData(t, "round trip", exportOf(t, srcAddr, nss...), exportOf(t, dstAddr, nss...))
	if rep := importReport(t, "import", file, "--addr", dstAddr); rep.Changed {
		t.Fatalf("second import changed: %+v", rep.Totals)
	}

	// A file that is not an export, or of a later version, is refused whole.
	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, bytes.Replace(raw, []byte(`"version": 1`), []byte(`"version": 99`), 1), 0o600)
	code, _, errOut := cli(t, "import", bad, "--addr", dstAddr)
	if code != exitError || !strings.Contains(errOut, "version 99") {
		t.Fatalf("version 99: %d %q", code, errOut)
	}
}

// TestImportKilledHalfwayCompletes kills a real import process after a few services
// (SIGKILL: no cleanup runs) and runs it again.
func TestImportKilledHalfwayCompletes(t *testing.T) {
	src := servertest.StartNode(t)
	dst := servertest.StartNode(t)
	srcAddr, dstAddr := rosterURL(src.HTTPAddr()), rosterURL(dst.HTTPAddr())
	fillRoster(t, newClient(t, srcAddr), []string{"public"}, 12)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "import", "nacos", "--from", srcAddr, "--addr", dstAddr,
		"--progress", "lines", "--pace", "300ms")
	cmd.Env = append(os.Environ(), "ROSTER_TEST_CLI=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stderr)
	done := 0
	for done < 3 && lines.Scan() {
		if strings.HasPrefix(lines.Text(), "progress: ") {
			done++
		}
	}
	if done < 3 {
		t.Fatalf("the import ended after %d services: %v", done, lines.Err())
	}
	cmd.Process.Signal(syscall.SIGKILL)
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
		t.Fatalf("the import was not killed: %v", err)
	}
	partial := exportOf(t, dstAddr)
	if n := len(partial.Services); n < 3 || n >= 13 {
		t.Fatalf("after the kill the target has %d services, want at least 3 and fewer than 13", n)
	}
	rep := importReport(t, "import", "nacos", "--from", srcAddr, "--addr", dstAddr)
	if rep.Totals.Failed != 0 || rep.Totals.Unchanged < 3 || rep.Totals.Created == 0 {
		t.Fatalf("the rerun: %+v", rep.Totals)
	}
	sameData(t, "after the rerun", exportOf(t, srcAddr), exportOf(t, dstAddr))
}

// badSource is a fake Nacos with a namespace and two services, "good" and "bad"; break
// changes one of its answers.
func badSource(t *testing.T) *fakeNacos {
	f := newFakeNacos(t)
	f.answer("GET", "/nacos/v1/console/namespaces", 200, `{"code":200,"message":null,"data":[{"namespace":"","namespaceShowName":"public","namespaceDesc":"","quota":200,"configCount":0,"type":0}]}`)
	f.answer("GET", "/nacos/v1/ns/catalog/services", 200, `{"count":2,"serviceList":[{"name":"good","groupName":"DEFAULT_GROUP"},{"name":"bad","groupName":"DEFAULT_GROUP"}]}`)
	f.answerFunc("GET", "/nacos/v1/ns/service", 200, func(v url.Values) string {
		return `{"namespaceId":"public","groupName":"DEFAULT_GROUP","name":"x","protectThreshold":0.5,"metadata":{"k":"v"},"selector":{"type":"none"},"clusters":[{"name":"DEFAULT","healthChecker":{"type":"TCP"},"metadata":{}}]}`
	})
	f.answerFunc("GET", "/nacos/v1/ns/instance/list", 200, func(v url.Values) string {
		return `{"name":"x","hosts":[{"ip":"127.0.0.5","port":8080,"weight":1.0,"healthy":true,"enabled":true,"ephemeral":false,"clusterName":"DEFAULT","metadata":{}},{"ip":"127.0.0.6","port":8080,"weight":1.0,"healthy":true,"enabled":true,"ephemeral":false,"clusterName":"DEFAULT","metadata":{}}]}`
	})
	return f
}

func TestImportBadSources(t *testing.T) {
	dst := servertest.StartNode(t)
	dstAddr := rosterURL(dst.HTTPAddr())
	dc := newClient(t, dstAddr)
	exists := func(name string) bool {
		_, err := dc.CatalogService(context.Background(), client.ServiceRef{Name: name})
		return err == nil
	}

	t.Run("unreachable", func(t *testing.T) {
		code, _, errOut := cli(t, "import", "nacos", "--from", "http://127.0.0.1:1", "--addr", dstAddr)
		if code != exitError || !strings.Contains(errOut, "http://127.0.0.1:1/nacos/v1/console/namespaces") || !strings.Contains(errOut, "refused") {
			t.Fatalf("%d %q", code, errOut)
		}
	})
	t.Run("403", func(t *testing.T) {
		f := badSource(t)
		f.answer("GET", "/nacos/v1/console/namespaces", 403, "user not found!")
		code, _, errOut := cli(t, "import", "nacos", "--from", f.URL, "--addr", dstAddr)
		if code != exitError || !strings.Contains(errOut, f.URL+"/nacos/v1/console/namespaces: HTTP 403: user not found!") {
			t.Fatalf("%d %q", code, errOut)
		}
	})
	t.Run("truncated JSON", func(t *testing.T) {
		f := badSource(t)
		f.answer("GET", "/nacos/v1/ns/catalog/services", 200, `{"count":2,"serviceList":[{"name":"good","grou`)
		code, _, errOut := cli(t, "import", "nacos", "--from", f.URL, "--addr", dstAddr)
		if code != exitError || !strings.Contains(errOut, f.URL+"/nacos/v1/ns/catalog/services?") || !strings.Contains(errOut, "unexpected end of JSON input") {
			t.Fatalf("%d %q", code, errOut)
		}
		if exists("good") || exists("bad") {
			t.Fatal("a service was written from a source whose list was cut off")
		}
	})
	t.Run("wrong field type", func(t *testing.T) {
		f := badSource(t)
		f.answerFunc("GET", "/nacos/v1/ns/instance/list", 200, func(v url.Values) string {
			if strings.HasSuffix(v.Get("serviceName"), "@@bad") {
				return `{"hosts":[{"ip":"127.0.0.5","port":"eighty","ephemeral":false}]}`
			}
			return `{"hosts":[]}`
		})
		code, _, errOut := cli(t, "import", "nacos", "--from", f.URL, "--addr", dstAddr, "--dry-run")
		if code != exitError || !strings.Contains(errOut, `field "hosts.port"`) || !strings.Contains(errOut, "/nacos/v1/ns/instance/list?") {
			t.Fatalf("%d %q", code, errOut)
		}
	})
	t.Run("detail fails", func(t *testing.T) {
		f := badSource(t)
		f.answerFunc("GET", "/nacos/v1/ns/service", 200, func(v url.Values) string {
			if strings.HasSuffix(v.Get("serviceName"), "@@bad") {
				return `{"namespaceId":"public","groupName":"DEFAULT_GROUP","name":"bad","metadata":{},"clusters":[]}`
			}
			return `{"namespaceId":"public","groupName":"DEFAULT_GROUP","name":"good","protectThreshold":0.5,"metadata":{"k":"v"},"selector":{"type":"none"},"clusters":[{"name":"DEFAULT","healthChecker":{"type":"TCP"},"metadata":{}}]}`
		})
		code, out, errOut := cli(t, "import", "nacos", "--from", f.URL, "--addr", dstAddr)
		if code != exitError || !strings.Contains(errOut, "/nacos/v1/ns/service?") || !strings.Contains(errOut, `field "protectThreshold": missing`) {
			t.Fatalf("%d %q\n%s", code, errOut, out)
		}
		if !exists("good") {
			t.Error("the good service was not imported beside the failing one")
		}
		if exists("bad") {
			t.Error("the failing service was half written")
		}
		// The same with a detail that answers 500.
		f.answerFunc("GET", "/nacos/v1/ns/service", 200, func(v url.Values) string { return "" })
		f.answer("GET", "/nacos/v1/ns/service", 500, "caused: java.lang.NullPointerException")
		code, _, errOut = cli(t, "import", "nacos", "--from", f.URL, "--addr", dstAddr)
		if code != exitError || !strings.Contains(errOut, "/nacos/v1/ns/service?") || !strings.Contains(errOut, "HTTP 500") || exists("bad") {
			t.Fatalf("%d %q", code, errOut)
		}
	})
}

// TestImportFromNacos3 reads a source that has only Nacos 3's admin API (v1 gone).
func TestImportFromNacos3(t *testing.T) {
	dst := rosterURL(servertest.StartNode(t).HTTPAddr())
	f := newFakeNacos(t)
	f.answer("GET", "/nacos/v3/admin/core/namespace/list", 200, `{"code":0,"message":"success","data":[{"namespace":"public","namespaceShowName":"public","namespaceDesc":"Public Namespace","quota":200,"configCount":0,"type":0}]}`)
	f.answer("GET", "/nacos/v3/admin/ns/service/list", 200, `{"code":0,"message":"success","data":{"totalCount":1,"pageNumber":1,"pagesAvailable":1,"pageItems":[{"name":"orders","groupName":"G","clusterCount":1,"ipCount":2,"healthyInstanceCount":2,"triggerFlag":false}]}}`)
	f.answerFunc("GET", "/nacos/v3/admin/ns/service", 200, func(v url.Values) string {
		if v.Get("serviceName") != "orders" || v.Get("groupName") != "G" {
			return `{"code":20004,"message":"service not found","data":null}`
		}
		return `{"code":0,"message":"success","data":{"namespaceId":"public","serviceName":"orders","groupName":"G","protectThreshold":0.4,"metadata":{"a":"b"},"selector":{"type":"none","contextType":"NONE"},"ephemeral":false,
			"clusterMap":{"C1":{"clusterName":"C1","healthChecker":{"type":"HTTP","path":"/ping","headers":"","expectedResponseCode":200},"healthyCheckPort":8081,"useInstancePortForCheck":false,"metadata":{}}}}}`
	})
	f.answer("GET", "/nacos/v3/admin/ns/instance/list", 200, `{"code":0,"message":"success","data":[
		{"ip":"127.0.0.7","port":7001,"weight":2.0,"healthy":true,"enabled":false,"ephemeral":false,"clusterName":"C1","serviceName":"G@@orders","metadata":{"m":"1"}},
		{"ip":"127.0.0.8","port":7002,"weight":1.0,"healthy":true,"enabled":true,"ephemeral":true,"clusterName":"C1","serviceName":"G@@orders","metadata":{}}]}`)
	rep := importReport(t, "import", "nacos", "--from", f.URL, "--addr", dst)
	if rep.Totals.Created != 1 || rep.Totals.PersistentCopied != 1 || rep.Totals.EphemeralNotCopied != 1 {
		t.Fatalf("%+v %+v", rep.Totals, rep.Services)
	}
	got := exportOf(t, dst)
	want := &migrate.Dump{Format: migrate.FileFormat, Version: migrate.FileVersion, Namespaces: got.Namespaces, Services: []migrate.Service{{
		Namespace: "public", Group: "G", Name: "orders", ProtectThreshold: 0.4, Metadata: map[string]string{"a": "b"}, Selector: client.Selector{Type: "none"},
		Clusters:  []migrate.Cluster{{Name: "C1", HealthChecker: client.HealthChecker{Type: "HTTP", Path: "/ping", ExpectedResponseCode: 200}, CheckPort: 8081}},
		Instances: []migrate.Instance{{IP: "127.0.0.7", Port: 7001, Cluster: "C1", Weight: 2, Enabled: false, Metadata: map[string]string{"m": "1"}}},
	}}}
	sameData(t, "from a Nacos 3 source", want, got)
	if rep := importReport(t, "import", "nacos", "--from", f.URL, "--addr", dst); rep.Changed {
		t.Fatalf("second run: %+v", rep.Totals)
	}
}

// TestImportWithAuth: a source and a target with auth on, each logged in to with its
// own flags (--username/--password the source's, --roster-username/--roster-password
// Roster's).
func TestImportWithAuth(t *testing.T) {
	authOn := func(c *server.Config) { c.Auth.Mode = server.AuthOn }
	src, dst := servertest.StartNode(t, authOn), servertest.StartNode(t, authOn)
	srcAddr, dstAddr := rosterURL(src.HTTPAddr()), rosterURL(dst.HTTPAddr())
	ctx := context.Background()
	login := func(addr string) (*client.Client, *client.Credential) {
		c := newClient(t, addr)
		cred, err := c.ACLBootstrap(ctx, "admin", "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Login(ctx, cred.Username, cred.Password); err != nil {
			t.Fatal(err)
		}
		return c, cred
	}
	sc, srcCred := login(srcAddr)
	_, dstCred := login(dstAddr)
	fillRoster(t, sc, []string{"public"}, 2)

	code, _, errOut := cli(t, "import", "nacos", "--from", srcAddr, "--addr", dstAddr)
	if code != exitError || !strings.Contains(errOut, srcAddr+"/nacos/v1/console/namespaces") {
		t.Fatalf("without credentials: %d %q", code, errOut)
	}
	rep := importReport(t, "import", "nacos", "--from", srcAddr, "--addr", dstAddr,
		"--username", srcCred.Username, "--password", srcCred.Password,
		"--roster-username", dstCred.Username, "--roster-password", dstCred.Password)
	if rep.Totals.Created != 3 || rep.Totals.Failed != 0 {
		t.Fatalf("%+v %+v", rep.Totals, rep.Services)
	}
	sameData(t, "with auth",
		exportOf(t, srcAddr, "--username", srcCred.Username, "--password", srcCred.Password),
		exportOf(t, dstAddr, "--username", dstCred.Username, "--password", dstCred.Password))
}

// TestImportWriteFailsMidService: the target refuses one write in the middle of a
// service (a proxy in front of a real Roster answers 500 to the second instance
// registration). The service is reported failed with how far it got, the command exits
// 1, and a rerun completes it: the writes made are the source's values, so nothing needs
// undoing.
func TestImportWriteFailsMidService(t *testing.T) {
	src := servertest.StartNode(t)
	dst := servertest.StartNode(t)
	srcAddr, dstAddr := rosterURL(src.HTTPAddr()), rosterURL(dst.HTTPAddr())
	fillRoster(t, newClient(t, srcAddr), []string{"public"}, 1)

	target, _ := url.Parse(dstAddr)
	proxy := httputil.NewSingleHostReverseProxy(target)
	var mu sync.Mutex
	registrations := 0
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/nacos/v1/ns/instance" {
			mu.Lock()
			registrations++
			n := registrations
			mu.Unlock()
			if n == 2 {
				http.Error(w, "server is busy", http.StatusInternalServerError)
				return
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)

	code, out, errOut := cli(t, "import", "nacos", "--from", srcAddr, "--addr", front.URL, "--parallel", "1")
	if code != exitError || !strings.Contains(errOut, "server is busy") || !strings.Contains(errOut, "run again to complete") {
		t.Fatalf("%d %q\n%s", code, errOut, out)
	}
	partial := exportOf(t, dstAddr)
	full := exportOf(t, srcAddr)
	i := slices.IndexFunc(partial.Services, func(s migrate.Service) bool { return s.Name == "svca" })
	if i < 0 || len(partial.Services[i].Instances) >= 3 {
		t.Fatalf("the refused write did not leave the service part-written: %+v", partial.Services)
	}
	rep := importReport(t, "import", "nacos", "--from", srcAddr, "--addr", dstAddr)
	if rep.Totals.Failed != 0 || rep.Totals.Updated != 1 {
		t.Fatalf("rerun: %+v", rep.Totals)
	}
	sameData(t, "after the rerun", full, exportOf(t, dstAddr))
}

// A namespace whose description was cleared at the source loses it at the target, and
// the run after that is a no-op: a blank description is a value, not "not set".
func TestImportClearsNamespaceDescription(t *testing.T) {
	src := servertest.StartNode(t)
	dst := servertest.StartNode(t)
	srcAddr, dstAddr := rosterURL(src.HTTPAddr()), rosterURL(dst.HTTPAddr())
	createNamespace(t, newClient(t, srcAddr), "dev", "Development", "")
	dc := newClient(t, dstAddr)
	createNamespace(t, dc, "dev", "Development", "old text")

	devAction := func(rep *migrate.Report) string {
		t.Helper()
		for _, n := range rep.Namespaces {
			if n.ID == "dev" {
				if n.Error != "" {
					t.Fatalf("namespace dev: %s", n.Error)
				}
				return n.Action
			}
		}
		t.Fatalf("no namespace dev in the report: %+v", rep.Namespaces)
		return ""
	}
	args := []string{"import", "nacos", "--from", srcAddr, "--addr", dstAddr}
	if a := devAction(importReport(t, args...)); a != migrate.ActionUpdate {
		t.Fatalf("first run: namespace dev %s, want %s", a, migrate.ActionUpdate)
	}
	ns, err := dc.GetNamespace(context.Background(), "dev")
	if err != nil {
		t.Fatal(err)
	}
	if ns.Desc != nil && *ns.Desc != "" {
		t.Fatalf("target description after the import: %q", *ns.Desc)
	}
	if a := devAction(importReport(t, args...)); a != migrate.ActionUnchanged {
		t.Fatalf("second run: namespace dev %s, want %s", a, migrate.ActionUnchanged)
	}
}
