package e2e

import (
	"errors"
	"slices"
	"testing"

	"github.com/roster-registry/roster/client"
)

// wantError checks a Nacos error answer: status and exact text.
func wantError(t *testing.T, what string, err error, status int, body string) {
	t.Helper()
	var e *client.Error
	if !errors.As(err, &e) {
		t.Errorf("%s: err = %v, want %d %q", what, err, status, body)
		return
	}
	if e.Status != status || e.Body != body {
		t.Errorf("%s: answer = %d %q, want %d %q", what, e.Status, e.Body, status, body)
	}
}

// TestRosterClient exercises Roster's own client package against the real server:
// every call of the package, the answers' shapes and Nacos' error texts.
func TestRosterClient(t *testing.T) {
	s := StartServer(t)
	c := rosterClient(t, s)
	ctx := ctxT(t)

	m, err := c.Metrics(ctx)
	if err != nil || m.Status != "UP" {
		t.Fatalf("Metrics = %+v, %v; want status UP", m, err)
	}

	// A service created over the service API is persistent (Nacos 2).
	svc := client.ServiceRef{Name: "svc-api"}
	if err := c.CreateService(ctx, svc, client.ServiceOptions{ProtectThreshold: 0.5, Metadata: map[string]string{"owner": "e2e"}}); err != nil {
		t.Fatalf("CreateService: %v", err)
	}
	wantError(t, "CreateService again", c.CreateService(ctx, svc, client.ServiceOptions{}),
		400, "specified service DEFAULT_GROUP@@svc-api already exists!")
	d, err := c.GetService(ctx, svc)
	if err != nil {
		t.Fatalf("GetService: %v", err)
	}
	if d.NamespaceID != "public" || d.GroupName != "DEFAULT_GROUP" || d.Name != "svc-api" ||
		d.ProtectThreshold != 0.5 || d.Metadata["owner"] != "e2e" || d.Selector.Type != "none" {
		t.Errorf("GetService = %+v", d)
	}
	list, err := c.ListServices(ctx, client.ServiceQuery{})
	if err != nil || list.Count != 1 || !slices.Equal(list.Names, []string{"svc-api"}) {
		t.Errorf("ListServices = %+v, %v; want count 1, [svc-api]", list, err)
	}

	eph := client.NewInstance("127.0.0.51", 7100)
	wantError(t, "ephemeral register into a persistent service", c.RegisterInstance(ctx, svc, eph),
		400, "errCode: 400, errMsg: Current service DEFAULT_GROUP@@svc-api is persistent service, can't register ephemeral instance. ")

	per := client.NewInstance("127.0.0.51", 7100)
	per.Ephemeral, per.Weight, per.Metadata = false, 3, map[string]string{"k": "v"}
	if err := c.RegisterInstance(ctx, svc, per); err != nil {
		t.Fatalf("RegisterInstance(persistent): %v", err)
	}
	got, err := c.GetInstance(ctx, svc, per.IP, per.Port, "")
	if err != nil {
		t.Fatalf("GetInstance: %v", err)
	}
	if got.IP != per.IP || got.Port != per.Port || got.ClusterName != "DEFAULT" || got.Weight != 3 ||
		got.Metadata["k"] != "v" || got.Service != "DEFAULT_GROUP@@svc-api" ||
		got.InstanceID != "127.0.0.51#7100#DEFAULT#DEFAULT_GROUP@@svc-api" {
		t.Errorf("GetInstance = %+v", got)
	}
	_, err = c.GetInstance(ctx, svc, per.IP, 7199, "")
	wantError(t, "GetInstance of a missing port", err, 404, "no matched ip found!")

	per.Weight, per.Metadata = 7, map[string]string{"k": "v2"}
	if err := c.UpdateInstance(ctx, svc, per); err != nil {
		t.Fatalf("UpdateInstance: %v", err)
	}
	if got, err := c.GetInstance(ctx, svc, per.IP, per.Port, "DEFAULT"); err != nil || got.Weight != 7 || got.Metadata["k"] != "v2" {
		t.Errorf("GetInstance after UpdateInstance = %+v, %v; want weight 7, k=v2", got, err)
	}

	wantError(t, "DeleteService non-empty", c.DeleteService(ctx, svc),
		400, "Service DEFAULT_GROUP@@svc-api is not empty, can't be delete. Please unregister instance first")
	if err := c.DeregisterInstance(ctx, svc, per); err != nil {
		t.Fatalf("DeregisterInstance: %v", err)
	}
	if err := c.DeregisterInstance(ctx, svc, per); err != nil {
		t.Errorf("DeregisterInstance of a missing instance: %v (Nacos answers ok)", err)
	}
	if err := c.DeleteService(ctx, svc); err != nil {
		t.Fatalf("DeleteService: %v", err)
	}
	_, err = c.GetService(ctx, svc)
	wantError(t, "GetService after delete", err, 400, "service not found, namespace: public, serviceName: DEFAULT_GROUP@@svc-api")

	// Beats: a light beat for an unknown instance answers 20404 in an HTTP 200; a full
	// beat registers the instance from its body.
	beatSvc := client.ServiceRef{Namespace: "e2e-beat", Group: "G", Name: "beats"}
	res, err := c.LightBeat(ctx, beatSvc, "127.0.0.52", 7200, "")
	if err != nil || res.Code != client.BeatNotFound {
		t.Errorf("LightBeat(unknown) = %+v, %v; want code 20404", res, err)
	}
	inst := client.Instance{IP: "127.0.0.52", Port: 7200, ClusterName: "cb", Weight: 2,
		Metadata: map[string]string{"from": "beat"}}
	res, err = c.Beat(ctx, beatSvc, inst)
	if err != nil || res.Code != client.BeatOK || res.ClientBeatInterval != heartbeatInterval.Milliseconds() {
		t.Errorf("Beat(unknown) = %+v, %v; want code 10200, clientBeatInterval %d", res, err, heartbeatInterval.Milliseconds())
	}
	info, err := c.ListInstances(ctx, beatSvc, client.ListOptions{})
	if err != nil || len(info.Hosts) != 1 {
		t.Fatalf("list after a full beat = %+v, %v; want the instance registered from the beat", info, err)
	}
	if err := checkHTTP(info.Hosts[0], expect{ip: "127.0.0.52", port: 7200, weight: 2, cluster: "cb",
		metadata: inst.Metadata, healthy: true, enabled: true, ephemeral: true, service: "G@@beats"}, true); err != nil {
		t.Error(err)
	}
	if info.Name != "G@@beats" || info.GroupName != "G" || info.Clusters != "" || !info.Valid {
		t.Errorf("ServiceInfo = name %q group %q clusters %q valid %v", info.Name, info.GroupName, info.Clusters, info.Valid)
	}
	if res, err := c.LightBeat(ctx, beatSvc, "127.0.0.52", 7200, "cb"); err != nil || res.Code != client.BeatOK {
		t.Errorf("LightBeat(known) = %+v, %v; want code 10200", res, err)
	}
	// An instance's preserved.heart.beat.interval is the interval its beats are told.
	tuned := client.Instance{IP: "127.0.0.53", Port: 7201, Weight: 1,
		Metadata: map[string]string{"preserved.heart.beat.interval": "2000"}}
	if res, err := c.Beat(ctx, beatSvc, tuned); err != nil || res.Code != client.BeatOK || res.ClientBeatInterval != 2000 {
		t.Errorf("Beat(preserved.heart.beat.interval=2000) = %+v, %v; want code 10200, clientBeatInterval 2000", res, err)
	}
	// The clusters filter echoes the request and keeps only that cluster.
	info, err = c.ListInstances(ctx, beatSvc, client.ListOptions{Clusters: []string{"other"}})
	if err != nil || info.Clusters != "other" || len(info.Hosts) != 0 {
		t.Errorf("list clusters=other = %+v, %v; want clusters echoed and no hosts", info, err)
	}

	// Parameter errors carry Nacos' texts.
	wantError(t, "register without ip", c.RegisterInstance(ctx, client.ServiceRef{Name: "x"}, client.NewInstance("", 1)),
		400, "Param 'ip' is required.")
	_, err = c.ListInstances(ctx, client.ServiceRef{Name: ""}, client.ListOptions{})
	wantError(t, "list without serviceName", err, 400, "Param 'serviceName' is required.")
}
