package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"github.com/roster-registry/roster/client"
)

// The web console in a real browser: Debian's chromium, headless, driven over the
// DevTools protocol (chromedp) against a real `roster server` process. e2e/chromium.sh
// installs chromium; without it these tests skip and say so.

const chromiumPath = "/usr/bin/chromium"

// browserTimeout bounds one test's whole browser session; every wait inside it is a
// wait on a condition under this deadline.
const browserTimeout = 90 * time.Second

// newBrowser starts a fresh headless chromium (its own profile directory) and returns
// a tab's context. The browser reaches nothing but the loopback server: no sync, no
// component updates, no background requests.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Skipf("%s is not installed (make e2e installs it through e2e/chromium.sh): %v", chromiumPath, err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1180, 760),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	tab, cancelTab := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
	})
	// The first call starts the browser and must not carry the deadline (it would stop
	// the browser); the steps after it do.
	if err := chromedp.Do(tab); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.WithValue(tab, tabKey{}, tab), browserTimeout)
	t.Cleanup(cancel)
	return ctx
}

type step = chromedp.Action[chromedp.Void]

// tabKey holds, in a browser context, the tab's context without the deadline, so a
// failed step can still look at the page.
type tabKey struct{}

// run runs browser steps, failing the test with what it was doing, what the page
// showed then, and a screenshot of it.
func run(t *testing.T, ctx context.Context, what string, steps ...step) {
	t.Helper()
	err := chromedp.Do(ctx, steps...)
	if err == nil {
		return
	}
	tab, _ := ctx.Value(tabKey{}).(context.Context)
	shown := "(page not readable)"
	if tab != nil {
		look, cancel := context.WithTimeout(tab, 10*time.Second)
		defer cancel()
		if text, err := chromedp.Run(look, chromedp.Evaluate[string](`document.body.innerText.slice(0, 2000)`)); err == nil {
			shown = text
		}
		if png, err := chromedp.Run(look, chromedp.CaptureScreenshot()); err == nil {
			path := filepath.Join(t.ArtifactDir(), "failed.png")
			_ = os.WriteFile(path, png, 0o644)
			t.Logf("screenshot of the failure: %s", path)
		}
	}
	t.Fatalf("%s: %v\npage shows:\n%s", what, err, shown)
}

// into is a step that keeps an action's value in dst.
func into[T any](dst *T, a chromedp.Action[T]) step {
	return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		v, err := a(ctx, tg)
		*dst = v
		return chromedp.Void{}, err
	}
}

// until waits for a JavaScript condition to hold in the page (within the browser
// context's deadline).
func until(expr string) step {
	// A page between two renders may lack an element the condition reads: not yet.
	expr = fmt.Sprintf("(() => { try { return !!(%s); } catch (e) { return false; } })()", expr)
	return chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(0))
}

// pageReady waits for the console to have rendered a page (its data loaded).
func pageReady(name string) step {
	return until(fmt.Sprintf(`document.querySelector('#page')?.dataset.page === %q && document.querySelector('#page').dataset.ready === 'true'`, name))
}

// screenshot saves the viewport as dir/name.png.
func screenshot(t *testing.T, dir, name string) step {
	return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		png, err := chromedp.CaptureScreenshot()(ctx, tg)
		if err != nil {
			return chromedp.Void{}, err
		}
		path := filepath.Join(dir, name+".png")
		t.Logf("screenshot %s", path)
		return chromedp.Void{}, os.WriteFile(path, png, 0o644)
	}
}

// chooseNamespace picks a namespace in the console's selector, as a user does.
func chooseNamespace(id string) step {
	return chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => { const s = document.getElementById('namespace-select');
		s.value = %q; s.dispatchEvent(new Event('change')); return s.value; })()`, id))
}

func signIn(user, password string) step {
	return chromedp.Steps(
		chromedp.WaitVisible(chromedp.CSS("#signin-form")),
		chromedp.SendKeys(chromedp.CSS("#signin-username"), user),
		chromedp.SendKeys(chromedp.CSS("#signin-password"), password),
		chromedp.Click(chromedp.CSS("#signin-submit")))
}

// authServer is a server with --auth, its bootstrapped administrator and a Roster
// client signed in as that administrator.
func authServer(t *testing.T) (s *Server, admin *client.Credential, c *client.Client, token string) {
	t.Helper()
	s = StartServerWith(t, "--auth")
	ctx := ctxT(t)
	admin, err := rosterClient(t, s).ACLBootstrap(ctx, "admin", "admin-password-1")
	if err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	c = rosterClient(t, s)
	login, err := c.Login(ctx, admin.Username, admin.Password)
	if err != nil {
		t.Fatal(err)
	}
	return s, admin, c, login.AccessToken
}

// subscribe lists a service as a Nacos 1.x Java client does, with a UDP port for its
// pushes: the node then lists it as a subscriber.
func subscribe(t *testing.T, s *Server, token, namespace, service string, port int) {
	t.Helper()
	v := url.Values{"namespaceId": {namespace}, "serviceName": {service}, "udpPort": {fmt.Sprint(port)},
		"clientIP": {"127.0.0.1"}, "app": {"shop-web"}}
	req, err := http.NewRequest(http.MethodGet, s.URL+"/nacos/v1/ns/instance/list?"+v.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("User-Agent", "Nacos-Java-Client:v1.4.6")
	req.Header.Set("accessToken", token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("subscribing list = %s", resp.Status)
	}
}

// udpPort opens a UDP socket on 127.0.0.1 for a subscriber's pushes to land on.
func udpPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.LocalAddr().(*net.UDPAddr).Port
}

// apiGet reads a JSON answer of the node with the administrator's token.
func apiGet(t *testing.T, s *Server, token, path string, v url.Values, out any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.URL+path+"?"+v.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("accessToken", token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s = %d %s", path, resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, out); err != nil {
		t.Fatalf("GET %s: %v in %s", path, err, body)
	}
}

// TestConsoleInBrowser walks the console as an operator does: sign in, create a
// namespace, see instances registered through the HTTP API, edit one's weight and take
// it offline (and see both through /nacos/v1/ns/instance/list), see the subscriber, the
// cluster's member, users, the snapshot download, and sign out. Each page's screenshot
// is saved in the test's artifact directory (go test -artifacts keeps them).
func TestConsoleInBrowser(t *testing.T) {
	start := time.Now()
	s, admin, adm, token := authServer(t)
	shots := t.ArtifactDir()
	ctx := newBrowser(t)
	api := ctxT(t)

	run(t, ctx, "sign in",
		chromedp.Navigate(s.URL+"/"),
		screenshot(t, shots, "signin"),
		signIn(admin.Username, admin.Password),
		pageReady("services"),
		chromedp.WaitVisible(chromedp.CSS("#services")))

	run(t, ctx, "create a namespace",
		chromedp.Click(chromedp.CSS(`header nav a[href="#/namespaces"]`)),
		pageReady("namespaces"),
		chromedp.Click(chromedp.CSS("#create-namespace")),
		chromedp.WaitVisible(chromedp.CSS("#f-id")),
		chromedp.SendKeys(chromedp.CSS("#f-id"), "shop"),
		chromedp.SendKeys(chromedp.CSS("#f-name"), "Shop"),
		chromedp.SendKeys(chromedp.CSS("#f-desc"), "the shop's services"),
		chromedp.Click(chromedp.CSS("#dialog-submit")),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-namespace="shop"]`)),
		until(`[...document.querySelectorAll('#namespace-select option')].some(o => o.value === 'shop')`),
		screenshot(t, shots, "namespaces"))
	run(t, ctx, "edit and delete a namespace",
		chromedp.Click(chromedp.CSS("#create-namespace")),
		chromedp.WaitVisible(chromedp.CSS("#f-id")),
		chromedp.SendKeys(chromedp.CSS("#f-id"), "scratch"),
		chromedp.SendKeys(chromedp.CSS("#f-name"), "Scratch"),
		chromedp.Click(chromedp.CSS("#dialog-submit")),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-namespace="scratch"]`)),
		chromedp.Click(chromedp.CSS(`tr[data-namespace="scratch"] button.edit-namespace`)),
		chromedp.WaitVisible(chromedp.CSS("#f-desc")),
		chromedp.SetValue(chromedp.CSS("#f-desc"), "to be deleted"),
		chromedp.Click(chromedp.CSS("#dialog-submit")),
		until(`document.querySelector('tr[data-namespace="scratch"]').textContent.includes('to be deleted')`),
		chromedp.Click(chromedp.CSS(`tr[data-namespace="scratch"] button.delete-namespace`)),
		chromedp.WaitVisible(chromedp.CSS("#dialog-submit")),
		chromedp.Click(chromedp.CSS("#dialog-submit")),
		until(`document.querySelector('#namespaces') && !document.querySelector('tr[data-namespace="scratch"]')`))
	var nsList struct {
		Data []struct {
			Namespace, NamespaceShowName string
		}
	}
	apiGet(t, s, token, "/nacos/v1/console/namespaces", nil, &nsList)
	if !strings.Contains(fmt.Sprint(nsList.Data), "shop Shop") {
		t.Fatalf("namespace made in the console is not listed by the API: %+v", nsList.Data)
	}

	// Instances registered through the HTTP API, as a client does.
	orders := client.ServiceRef{Namespace: "shop", Group: "DEFAULT_GROUP", Name: "orders"}
	for i, ip := range []string{"10.9.0.1", "10.9.0.2"} {
		inst := client.Instance{IP: ip, Port: 8080, Weight: 1, Healthy: true, Enabled: true, Ephemeral: false,
			ClusterName: "DEFAULT", Metadata: map[string]string{"zone": fmt.Sprintf("z%d", i+1)}}
		if err := adm.RegisterInstance(api, orders, inst); err != nil {
			t.Fatal(err)
		}
	}

	// More services, so that the list has something to compare with: one whose only
	// instance is down, one in another group.
	for _, x := range []struct {
		svc     client.ServiceRef
		healthy bool
	}{
		{client.ServiceRef{Namespace: "shop", Group: "DEFAULT_GROUP", Name: "payments"}, false},
		{client.ServiceRef{Namespace: "shop", Group: "batch", Name: "invoices"}, true},
	} {
		if err := adm.RegisterInstance(api, x.svc, client.Instance{IP: "10.9.0.7", Port: 9000, Weight: 1, Healthy: x.healthy, Enabled: true, ClusterName: "DEFAULT"}); err != nil {
			t.Fatal(err)
		}
	}

	row := `tr[data-service="DEFAULT_GROUP@@orders"]`
	inst := `tr[data-instance="10.9.0.1:8080"]`
	run(t, ctx, "see the instances on the service pages",
		chooseNamespace("shop"),
		chromedp.Click(chromedp.CSS(`header nav a[href="#/services"]`)),
		pageReady("services"),
		chromedp.WaitVisible(chromedp.CSS(row)),
		until(fmt.Sprintf(`document.querySelector('%s').children[3].textContent === '2' && document.querySelector('%s').children[4].textContent === '2'`, row, row)),
		until(`document.querySelector('tr[data-service="DEFAULT_GROUP@@payments"]')?.classList.contains('unhealthy')`),
		screenshot(t, shots, "services"),
		chromedp.Click(chromedp.CSS(row+" td a")),
		pageReady("service"),
		chromedp.WaitVisible(chromedp.CSS(inst)),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-instance="10.9.0.2:8080"]`)),
		screenshot(t, shots, "service"))

	run(t, ctx, "create and delete a service",
		chromedp.Click(chromedp.CSS(`header nav a[href="#/services"]`)),
		pageReady("services"),
		chromedp.Click(chromedp.CSS("#create-service")),
		chromedp.WaitVisible(chromedp.CSS("#f-serviceName")),
		chromedp.SendKeys(chromedp.CSS("#f-serviceName"), "catalog"),
		chromedp.SetValue(chromedp.CSS("#f-protectThreshold"), "0.5"),
		chromedp.SendKeys(chromedp.CSS("#f-metadata"), "owner=web"),
		chromedp.Click(chromedp.CSS("#dialog-submit")),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-service="DEFAULT_GROUP@@catalog"]`)))
	detail, err := adm.GetService(api, client.ServiceRef{Namespace: "shop", Group: "DEFAULT_GROUP", Name: "catalog"})
	if err != nil || detail.ProtectThreshold != 0.5 || detail.Metadata["owner"] != "web" {
		t.Fatalf("service made in the console = %+v, %v; want protect threshold 0.5 and owner=web", detail, err)
	}
	run(t, ctx, "delete the service",
		chromedp.Click(chromedp.CSS(`tr[data-service="DEFAULT_GROUP@@catalog"] button.delete-service`)),
		chromedp.WaitVisible(chromedp.CSS("#dialog-submit")),
		chromedp.Click(chromedp.CSS("#dialog-submit")),
		until(`document.querySelector('#services') && !document.querySelector('tr[data-service="DEFAULT_GROUP@@catalog"]')`),
		chromedp.Click(chromedp.CSS(`tr[data-service="DEFAULT_GROUP@@orders"] td a`)),
		pageReady("service"),
		chromedp.WaitVisible(chromedp.CSS(inst)))

	run(t, ctx, "edit the instance's weight",
		chromedp.Click(chromedp.CSS(inst+" .edit-instance")),
		chromedp.WaitVisible(chromedp.CSS("#f-weight")),
		chromedp.SetValue(chromedp.CSS("#f-weight"), "3.5"),
		screenshot(t, shots, "instance-edit"),
		chromedp.Click(chromedp.CSS("#dialog-submit")),
		pageReady("service"),
		until(fmt.Sprintf(`document.querySelector('%s td.weight')?.textContent === '3.5'`, inst)))
	listed := func() *client.Instance {
		t.Helper()
		info, err := adm.ListInstances(api, orders, client.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return findHTTP(info.Hosts, "10.9.0.1", 8080)
	}
	if got := listed(); got == nil || got.Weight != 3.5 || got.Metadata["zone"] != "z1" {
		t.Fatalf("after the edit in the console, instance/list has %+v, want weight 3.5 and its metadata kept", got)
	}

	run(t, ctx, "take the instance offline",
		chromedp.Click(chromedp.CSS(inst+" .toggle-instance")),
		until(fmt.Sprintf(`document.querySelector('%s td.state')?.textContent === 'offline'`, inst)))
	// Nacos' instance/list leaves out a disabled instance.
	if got := listed(); got != nil {
		t.Fatalf("after offline in the console, instance/list still has %+v", got)
	}
	info, err := adm.GetInstance(api, orders, "10.9.0.1", 8080, "DEFAULT")
	if err != nil || info.Enabled || info.Weight != 3.5 {
		t.Fatalf("instance after offline = %+v, %v; want enabled=false, weight 3.5", info, err)
	}

	run(t, ctx, "edit the cluster's health checker",
		chromedp.Click(chromedp.CSS(`section[data-cluster="DEFAULT"] .edit-cluster`)),
		chromedp.WaitVisible(chromedp.CSS("#f-type")),
		chromedp.SetValue(chromedp.CSS("#f-type"), "HTTP"),
		chromedp.SetValue(chromedp.CSS("#f-path"), "/health"),
		chromedp.SetValue(chromedp.CSS("#f-metadata"), "tier=gold"),
		chromedp.Click(chromedp.CSS("#dialog-submit")),
		until(`document.querySelector('section[data-cluster="DEFAULT"]').textContent.includes('HTTP /health')`))
	svc, err := adm.GetService(api, orders)
	if err != nil || len(svc.Clusters) != 1 || svc.Clusters[0].HealthChecker.Type != "HTTP" || svc.Clusters[0].HealthChecker.Path != "/health" ||
		svc.Clusters[0].Metadata["tier"] != "gold" {
		t.Fatalf("cluster after the edit in the console = %+v, %v; want an HTTP checker on /health and tier=gold", svc, err)
	}

	// A 1.x-style subscriber (udpPort on a list) for the subscribers page. It subscribes
	// only now: a subscriber that does not ack the pushes of the edits above is dropped.
	subscribe(t, s, token, "shop", "DEFAULT_GROUP@@orders", udpPort(t))
	run(t, ctx, "subscribers",
		chromedp.Navigate(s.URL+"/console/#/subscribers?group=DEFAULT_GROUP&name=orders"),
		pageReady("subscribers"),
		until(`document.querySelectorAll('#subscribers tbody tr td').length >= 5`),
		screenshot(t, shots, "subscribers"))

	var term string
	run(t, ctx, "cluster",
		chromedp.Click(chromedp.CSS(`header nav a[href="#/cluster"]`)),
		pageReady("cluster"),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-member="n1"]`)),
		until(`document.querySelector('tr[data-member="n1"]').textContent.includes('leader')`),
		into(&term, chromedp.Text(chromedp.CSS("#raft-term"))),
		screenshot(t, shots, "cluster"))
	if term == "" || term == "0" {
		t.Errorf("cluster page shows Raft term %q", term)
	}

	run(t, ctx, "users, roles and grants",
		chromedp.Click(chromedp.CSS(`header nav a[href="#/acl"]`)),
		pageReady("acl"),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-user="admin"]`)),
		chromedp.Click(chromedp.CSS("#add-grant")),
		chromedp.WaitVisible(chromedp.CSS("#f-role")),
		chromedp.SendKeys(chromedp.CSS("#f-role"), "shop-readers"),
		chromedp.SendKeys(chromedp.CSS("#f-resource"), "shop"),
		chromedp.Click(chromedp.CSS("#dialog-submit")),
		until(`document.querySelector('#grants').textContent.includes('shop-readers')`),
		screenshot(t, shots, "acl"))
	grants, err := adm.ListGrants(api)
	if err != nil || !strings.Contains(fmt.Sprint(grants), "shop-readers shop r") {
		t.Fatalf("grant made in the console: %+v, %v", grants, err)
	}

	downloads := t.TempDir()
	if _, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: downloads,
	}); err != nil {
		t.Fatal(err)
	}
	run(t, ctx, "snapshot download",
		chromedp.Click(chromedp.CSS(`header nav a[href="#/snapshot"]`)),
		pageReady("snapshot"),
		chromedp.Click(chromedp.CSS("#download-snapshot")),
		chromedp.WaitVisible(chromedp.CSS("#notice")),
		screenshot(t, shots, "snapshot"))
	eventually(t, 30*time.Second, func() error {
		files, _ := filepath.Glob(filepath.Join(downloads, "roster-*.snap"))
		if len(files) != 1 {
			return fmt.Errorf("no snapshot file in the download directory yet: %v", files)
		}
		return nil
	})

	run(t, ctx, "sign out",
		chromedp.Click(chromedp.CSS("#sign-out")),
		chromedp.WaitVisible(chromedp.CSS("#signin-form")),
		until(`document.getElementById('app').hidden && !document.cookie.includes('roster_console_token')`))
	t.Logf("console walk-through took %v", time.Since(start).Round(time.Millisecond))
}

// consoleFetches is what an anonymous page gets for the console's module and for an
// API read.
type consoleFetches struct {
	App      int `json:"app"`
	Services int `json:"services"`
}

// TestConsoleAuth: an anonymous browser gets the sign-in page and nothing else; a user
// with read on one namespace sees that namespace only and cannot save an edit (the
// page shows the node's 403 text).
func TestConsoleAuth(t *testing.T) {
	s, _, adm, _ := authServer(t)
	api := ctxT(t)
	for _, ns := range []string{"shop", "billing"} {
		svc := client.ServiceRef{Namespace: ns, Group: "DEFAULT_GROUP", Name: "orders"}
		if err := adm.RegisterInstance(api, svc, client.Instance{IP: "10.9.1.1", Port: 80, Weight: 1, Healthy: true, Enabled: true, ClusterName: "DEFAULT"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := adm.CreateUser(api, "reader", "reader-password-1"); err != nil {
		t.Fatal(err)
	}
	if err := adm.BindRole(api, "shop-readers", "reader"); err != nil {
		t.Fatal(err)
	}
	if err := adm.AddGrant(api, client.Grant{Role: "shop-readers", Resource: "shop", Action: "r"}); err != nil {
		t.Fatal(err)
	}
	shots := t.ArtifactDir()
	ctx := newBrowser(t)

	// Anonymous: the sign-in form, no console; the console's modules and every API
	// route refuse it.
	var status consoleFetches
	run(t, ctx, "anonymous",
		chromedp.Navigate(s.URL+"/console/#/services"),
		chromedp.WaitVisible(chromedp.CSS("#signin-form")),
		until(`document.getElementById('app').hidden && document.querySelector('header') === null`),
		into(&status, chromedp.Evaluate[consoleFetches](`(async () => ({
			app: (await fetch('/console/app/app.js')).status,
			services: (await fetch('/nacos/v1/ns/catalog/services?namespaceId=shop&pageNo=1&pageSize=10')).status,
		}))()`, chromedp.EvalAwaitPromise)))
	if status.App != 403 || status.Services != 403 {
		t.Fatalf("anonymous fetches: console app %d, catalog %d; want 403 and 403", status.App, status.Services)
	}
	var signinError string
	run(t, ctx, "a wrong password",
		signIn("reader", "wrong-password"),
		chromedp.WaitVisible(chromedp.CSS("#signin-error")),
		into(&signinError, chromedp.Text(chromedp.CSS("#signin-error"))))
	if !strings.Contains(signinError, "403") {
		t.Errorf("wrong password shows %q", signinError)
	}

	var options []string
	inst := `tr[data-instance="10.9.1.1:80"]`
	var dialogError string
	run(t, ctx, "a reader of one namespace",
		chromedp.Reload(),
		signIn("reader", "reader-password-1"),
		pageReady("services"),
		into(&options, chromedp.Evaluate[[]string](`[...document.querySelectorAll('#namespace-select option')].map(o => o.value)`)),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-service="DEFAULT_GROUP@@orders"]`)),
		until(`![...document.querySelectorAll('header nav a')].some(a => a.getAttribute('href') === '#/acl')`),
		chromedp.Click(chromedp.CSS(`tr[data-service="DEFAULT_GROUP@@orders"] td a`)),
		pageReady("service"),
		chromedp.Click(chromedp.CSS(inst+" .edit-instance")),
		chromedp.WaitVisible(chromedp.CSS("#f-weight")),
		chromedp.SetValue(chromedp.CSS("#f-weight"), "9"),
		chromedp.Click(chromedp.CSS("#dialog-submit")),
		chromedp.WaitVisible(chromedp.CSS("#dialog-form .error")),
		into(&dialogError, chromedp.Text(chromedp.CSS("#dialog-form .error"))),
		screenshot(t, shots, "forbidden-edit"))
	if fmt.Sprint(options) != "[shop]" {
		t.Errorf("namespace selector of a reader of shop offers %v, want [shop]", options)
	}
	if !strings.Contains(dialogError, "authorization failed!") || !strings.Contains(dialogError, "403") {
		t.Errorf("refused edit shows %q, want the 403 text", dialogError)
	}
	got, err := adm.GetInstance(api, client.ServiceRef{Namespace: "shop", Group: "DEFAULT_GROUP", Name: "orders"}, "10.9.1.1", 80, "DEFAULT")
	if err != nil || got.Weight != 1 {
		t.Fatalf("instance after the refused edit = %+v, %v; want weight 1", got, err)
	}
}

// TestConsoleAuthOff: on a node without auth the console opens at / with no sign-in,
// shows the services of the chosen namespace and offers no sign-out.
func TestConsoleAuthOff(t *testing.T) {
	s := StartServer(t)
	api := ctxT(t)
	svc := client.ServiceRef{Namespace: "public", Group: "DEFAULT_GROUP", Name: "web"}
	if err := rosterClient(t, s).RegisterInstance(api, svc, client.Instance{IP: "10.9.2.1", Port: 80, Weight: 1, Healthy: true, Enabled: true, ClusterName: "DEFAULT"}); err != nil {
		t.Fatal(err)
	}
	ctx := newBrowser(t)
	run(t, ctx, "open the console",
		chromedp.Navigate(s.URL+"/"),
		pageReady("services"),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-service="DEFAULT_GROUP@@web"]`)),
		until(`document.getElementById('signin').hidden && document.getElementById('sign-out') === null`),
		until(`[...document.querySelectorAll('header nav a')].some(a => a.getAttribute('href') === '#/acl')`))
}
