package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/roster-registry/roster/client"
	"github.com/roster-registry/roster/migrate"
	"github.com/roster-registry/roster/server/servertest"
	"github.com/roster-registry/roster/testsupport/freeport"
)

// The import from r-nacos, an independent server of the Nacos protocol (Rust, from
// crates.io). It runs when ROSTER_RNACOS names its binary: `make test-rnacos` builds
// it with bench/rnacos.sh (once, into the bench's cache) and sets it.

// freeLoopbackPort is a port for r-nacos to bind, below the ephemeral range (freeport).
func freeLoopbackPort(t *testing.T) string {
	t.Helper()
	return strconv.Itoa(freeport.Pick(t))
}

// startRNacos runs r-nacos on loopback ports with its data in a temp dir and waits
// until it is ready and takes a namespace write. r-nacos 0.8.8 sometimes loses the
// actor behind namespaces at start (a panic in raftapply.rs: its store is injected
// after the first apply arrives), and then answers every namespace write "Mailbox has
// closed" (about one start in three here): such a start is discarded and r-nacos
// started afresh, up to eight times.
func startRNacos(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("ROSTER_RNACOS")
	if bin == "" {
		t.Skip("ROSTER_RNACOS is not set (make test-rnacos builds r-nacos and sets it)")
	}
	for attempt := 1; ; attempt++ {
		addr, stop := launchRNacos(t, bin)
		err := createRNacosNamespace(addr, "roster-probe", "probe", "")
		if err == nil {
			if err := deleteRNacosNamespace(addr, "roster-probe"); err != nil {
				t.Fatalf("r-nacos: delete the probe namespace: %v", err)
			}
			return addr
		}
		stop()
		if !strings.Contains(err.Error(), "Mailbox has closed") || attempt == 8 {
			t.Fatalf("r-nacos takes no namespace write (attempt %d): %v", attempt, err)
		}
		t.Logf("r-nacos start %d lost its namespace store (%v); starting it again", attempt, err)
	}
}

// launchRNacos starts one r-nacos process and waits for its readiness endpoint.
func launchRNacos(t *testing.T, bin string) (addr string, stop func()) {
	t.Helper()
	hp, gp, cp := freeLoopbackPort(t), freeLoopbackPort(t), freeLoopbackPort(t)
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "RNACOS_HTTP_PORT="+hp, "RNACOS_GRPC_PORT="+gp, "RNACOS_HTTP_CONSOLE_PORT="+cp,
		"RNACOS_SDK_HOST=127.0.0.1", "RNACOS_CONSOLE_HOST=127.0.0.1", "RNACOS_DATA_DIR="+t.TempDir(),
		"RNACOS_RAFT_NODE_ADDR=127.0.0.1:"+gp, "RUST_LOG=warn",
		// The test's ephemeral instances send no beats; they must outlive it.
		"RNACOS_NAMING_HEALTH_TIMEOUT_SECOND=3600", "RNACOS_NAMING_INSTANCE_TIMEOUT_SECOND=7200")
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cmd.Process.Kill()
			cmd.Wait()
		}
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("r-nacos log:\n%s", logs.String())
		}
	})
	addr = "http://127.0.0.1:" + hp
	probe := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := probe.Get(addr + "/nacos/v1/console/health/readiness")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return addr, stop
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("r-nacos was not ready within 60s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// fillRNacos writes namespaces, services and instances into r-nacos through its own
// API and answers the persistent data an import must bring over, and the number of
// ephemeral instances it must only count.
func fillRNacos(t *testing.T, addr string, servicesPerNS int) (*migrate.Dump, int) {
	t.Helper()
	ctx := context.Background()
	c := newClient(t, addr)
	want := &migrate.Dump{Format: migrate.FileFormat, Version: migrate.FileVersion,
		Namespaces: []migrate.Namespace{{ID: "public", Name: "public"}}}
	for _, ns := range []migrate.Namespace{{ID: "dev", Name: "Development"}, {ID: "prod", Name: "Production"}} {
		// r-nacos keeps no description: what it answers is the data.
		if err := createRNacosNamespace(addr, ns.ID, ns.Name, "kept by Nacos, not by r-nacos"); err != nil {
			t.Fatalf("r-nacos namespace %s: %v", ns.ID, err)
		}
		want.Namespaces = append(want.Namespaces, ns)
	}
	ephemeral := 0
	for _, ns := range want.Namespaces {
		for i := 0; i < servicesPerNS; i++ {
			svc := migrate.Service{Namespace: ns.ID, Group: []string{"DEFAULT_GROUP", "orders"}[i%2], Name: "svc-" + strconv.Itoa(i),
				ProtectThreshold: []float64{0.3, 0.75, 0}[i%3], Metadata: map[string]string{"team": ns.ID, "idx": strconv.Itoa(i)},
				Selector: client.Selector{Type: "none"}}
			ref := client.ServiceRef{Namespace: svc.Namespace, Group: svc.Group, Name: svc.Name}
			if err := c.CreateService(ctx, ref, client.ServiceOptions{ProtectThreshold: svc.ProtectThreshold, Metadata: svc.Metadata}); err != nil {
				t.Fatalf("r-nacos service %v: %v", ref, err)
			}
			for j := 0; j < 2; j++ {
				in := migrate.Instance{IP: "127.0.0." + strconv.Itoa(2+j), Port: 21000 + i, Cluster: []string{"DEFAULT", "web"}[j],
					Weight: []float64{1, 2.5}[j], Healthy: true, Enabled: true, Metadata: map[string]string{"version": "v" + strconv.Itoa(j)}}
				ci := client.Instance{IP: in.IP, Port: in.Port, ClusterName: in.Cluster, Weight: in.Weight, Healthy: true, Enabled: true, Metadata: in.Metadata}
				if err := c.RegisterInstance(ctx, ref, ci); err != nil {
					t.Fatalf("r-nacos instance: %v", err)
				}
				svc.Instances = append(svc.Instances, in)
			}
			want.Services = append(want.Services, svc)
		}
		// A service of ephemeral instances only: counted and created with its kind, so
		// that its clients re-register into it.
		eph := migrate.Service{Namespace: ns.ID, Group: "DEFAULT_GROUP", Name: "ephemeral-only", Ephemeral: true,
			Metadata: map[string]string{"kind": "ephemeral"}, ProtectThreshold: 0.5, Selector: client.Selector{Type: "none"}}
		ref := client.ServiceRef{Namespace: eph.Namespace, Name: eph.Name}
		if err := c.CreateService(ctx, ref, client.ServiceOptions{ProtectThreshold: eph.ProtectThreshold, Metadata: eph.Metadata}); err != nil {
			t.Fatal(err)
		}
		for j := 0; j < 2; j++ {
			if err := c.RegisterInstance(ctx, ref, client.NewInstance("127.0.0.9", 31000+j)); err != nil {
				t.Fatal(err)
			}
			ephemeral++
		}
		want.Services = append(want.Services, eph)
	}
	want.Normalize()
	return want, ephemeral
}

func TestImportFromRNacos(t *testing.T) {
	src := startRNacos(t)
	want, ephemeral := fillRNacos(t, src, 4)
	dst := rosterURL(servertest.StartNode(t).HTTPAddr())
	args := []string{"import", "nacos", "--from", src, "--addr", dst}

	rep := importReport(t, append(args, "--dry-run")...)
	if rep.Totals.Services != len(want.Services) || rep.Totals.Writes == 0 || rep.Totals.EphemeralNotCopied != ephemeral {
		t.Fatalf("dry run: %+v", rep.Totals)
	}
	if d := exportOf(t, dst); len(d.Services) != 0 || len(d.Namespaces) != 1 {
		t.Fatalf("the dry run wrote: %d namespaces, %d services", len(d.Namespaces), len(d.Services))
	}

	rep = importReport(t, args...)
	if rep.Totals.Failed != 0 || rep.Totals.Created != len(want.Services) || rep.Totals.EphemeralNotCopied != ephemeral {
		t.Fatalf("import: %+v\n%+v", rep.Totals, rep.Services)
	}
	sameData(t, "r-nacos into Roster", want, exportOf(t, dst))

	rep = importReport(t, args...)
	if rep.Changed || rep.Totals.Writes != 0 || rep.Totals.Unchanged != len(want.Services) {
		t.Fatalf("second run: %+v", rep.Totals)
	}
}

func TestImportFromRNacosKilledHalfway(t *testing.T) {
	src := startRNacos(t)
	want, _ := fillRNacos(t, src, 6)
	dst := rosterURL(servertest.StartNode(t).HTTPAddr())

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "import", "nacos", "--from", src, "--addr", dst, "--progress", "lines", "--pace", "300ms")
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
	for done < 4 && lines.Scan() {
		if strings.HasPrefix(lines.Text(), "progress: ") {
			done++
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || done < 4 {
		t.Fatalf("the import was not killed after 4 services (saw %d)", done)
	}
	if n := len(exportOf(t, dst).Services); n < 4 || n >= len(want.Services) {
		t.Fatalf("after the kill Roster has %d of %d services", n, len(want.Services))
	}
	rep := importReport(t, "import", "nacos", "--from", src, "--addr", dst)
	if rep.Totals.Failed != 0 || rep.Totals.Unchanged < 4 {
		t.Fatalf("rerun: %+v", rep.Totals)
	}
	sameData(t, "after the rerun", want, exportOf(t, dst))
}

// createRNacosNamespace creates a namespace through Nacos' v1 console API, which r-nacos
// serves.
func createRNacosNamespace(addr, id, name, desc string) error {
	return rnacosConsole(http.MethodPost, addr, url.Values{"customNamespaceId": {id}, "namespaceName": {name}, "namespaceDesc": {desc}})
}

func deleteRNacosNamespace(addr, id string) error {
	return rnacosConsole(http.MethodDelete, addr, url.Values{"namespaceId": {id}})
}

func rnacosConsole(method, addr string, v url.Values) error {
	req, err := http.NewRequest(method, addr+"/nacos/v1/console/namespaces", strings.NewReader(v.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(b)) == "false" {
		return fmt.Errorf("%s namespaces: HTTP %d: %s", method, resp.StatusCode, b)
	}
	return nil
}
