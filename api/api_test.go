package api

import (
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/roster-registry/roster/naming"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/api")

// lastRefTimes masks the time-dependent lastRefTime so that answers compare exactly.
var lastRefTimes = regexp.MustCompile(`"lastRefTime":\d+`)

func golden(t *testing.T, name string, a answer) {
	t.Helper()
	got := fmt.Sprintf("%d\n%s\n", a.status, lastRefTimes.ReplaceAllString(a.body, `"lastRefTime":0`))
	path := filepath.Join("..", "testdata", "api", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./api -run %s -update to create it)", err, t.Name())
	}
	if got != string(want) {
		t.Errorf("%s:\n got: %s\nwant: %s", name, got, want)
	}
}

func TestGoldenAnswers(t *testing.T) {
	s := newStack(t, stackOptions{})
	s.must("POST", "/nacos/v1/ns/instance", vals("serviceName", "orders", "ip", "10.0.0.5", "port", "8080",
		"metadata", `{"zone":"a"}`))
	s.must("POST", "/nacos/v1/ns/instance", vals("serviceName", "DEFAULT_GROUP@@billing", "ip", "10.0.0.6", "port", "9090",
		"ephemeral", "false", "weight", "2", "clusterName", "c1", "metadata", "k=v"))

	golden(t, "list_ephemeral", s.do("GET", "/nacos/v1/ns/instance/list", vals("serviceName", "orders")))
	golden(t, "list_persistent_clusters", s.do("GET", "/nacos/v1/ns/instance/list", vals("serviceName", "billing", "clusters", "c1")))
	golden(t, "list_unknown_service", s.do("GET", "/nacos/v1/ns/instance/list", vals("serviceName", "nope")))
	golden(t, "get_instance", s.do("GET", "/nacos/v1/ns/instance", vals("serviceName", "billing", "ip", "10.0.0.6", "port", "9090", "clusterName", "c1")))
	golden(t, "get_service", s.do("GET", "/nacos/v1/ns/service", vals("serviceName", "billing")))
	golden(t, "service_list", s.do("GET", "/nacos/v1/ns/service/list", vals("pageNo", "1", "pageSize", "10")))
	golden(t, "service_names", s.do("GET", "/nacos/v1/ns/service/names", nil))
	golden(t, "statuses", s.do("GET", "/nacos/v1/ns/instance/statuses", vals("key", "public##DEFAULT_GROUP@@orders")))
	golden(t, "beat_known", s.do("PUT", "/nacos/v1/ns/instance/beat", vals("serviceName", "DEFAULT_GROUP@@orders", "ip", "10.0.0.5", "port", "8080")))
	golden(t, "beat_light_unknown", s.do("PUT", "/nacos/v1/ns/instance/beat", vals("serviceName", "orders", "ip", "10.9.9.9", "port", "1")))
	golden(t, "metrics_status", s.do("GET", "/nacos/v1/ns/operator/metrics", nil))
	golden(t, "metadata_batch", s.do("PUT", "/nacos/v1/ns/instance/metadata/batch", vals("serviceName", "billing",
		"consistencyType", "persist", "metadata", `{"team":"x"}`, "instances", `[{"ip":"10.0.0.6","port":9090,"clusterName":"c1"}]`)))
	golden(t, "unknown_route", s.do("GET", "/nacos/v1/ns/nothing", nil))
	golden(t, "liveness", s.do("GET", "/nacos/v1/console/health/liveness", nil))
}

// TestBadInput sends each malformed request and checks Nacos' status and text, then
// that nothing was stored.
func TestBadInput(t *testing.T) {
	s := newStack(t, stackOptions{maxBody: 4096})
	s.must("POST", "/nacos/v1/ns/service", vals("serviceName", "persist-svc"))
	tests := []struct {
		name   string
		method string
		params []string
		status int
		text   string
	}{
		{"no service", "POST", []string{"ip", "1.1.1.1", "port", "1"}, 400, "Param 'serviceName' is required."},
		{"no ip", "POST", []string{"serviceName", "s", "port", "1"}, 400, "Param 'ip' is required."},
		{"no port", "POST", []string{"serviceName", "s", "ip", "1.1.1.1"}, 400, "Param 'port' is required."},
		{"bad port", "POST", []string{"serviceName", "s", "ip", "1.1.1.1", "port", "x"}, 400, "Param 'port' is illegal, the value should be between 0 and 65535."},
		{"port range", "POST", []string{"serviceName", "s", "ip", "1.1.1.1", "port", "70000"}, 400, "Param 'port' is illegal, the value should be between 0 and 65535."},
		{"bad weight", "POST", []string{"serviceName", "s", "ip", "1.1.1.1", "port", "1", "weight", "abc"}, 400, `For input string: "abc"`},
		{"weight range", "POST", []string{"serviceName", "s", "ip", "1.1.1.1", "port", "1", "weight", "10001"}, 400, "instance format invalid: The weights range from 0.0 to 10000.0"},
		{"bad metadata", "POST", []string{"serviceName", "s", "ip", "1.1.1.1", "port", "1", "metadata", "zone"}, 400, "metadata format incorrect:zone"},
		{"metadata too long", "POST", []string{"serviceName", "s", "ip", "1.1.1.1", "port", "1", "metadata", `{"k":"` + strings.Repeat("v", 1100) + `"}`}, 400, "Param 'Metadata' is illegal, the param length should not exceed 1024."},
		{"bad cluster", "POST", []string{"serviceName", "s", "ip", "1.1.1.1", "port", "1", "clusterName", "c_1"}, 400, "Instance 'clusterName' should be characters with only 0-9a-zA-Z-. (current: c_1)"},
		{"illegal cluster chars", "POST", []string{"serviceName", "s", "ip", "1.1.1.1", "port", "1", "clusterName", "c 1"}, 400, "Param 'cluster' is illegal, illegal characters should not appear in the param."},
		{"bad service name", "POST", []string{"serviceName", "a b", "ip", "1.1.1.1", "port", "1"}, 400, "Param 'serviceName' is illegal, illegal characters should not appear in the param."},
		{"empty group", "POST", []string{"serviceName", "@@s", "ip", "1.1.1.1", "port", "1"}, 400, "Param 'serviceName' is illegal, groupName can't be empty"},
		{"bad namespace", "POST", []string{"serviceName", "s", "ip", "1.1.1.1", "port", "1", "namespaceId", "a/b"}, 400, "Param 'namespaceId/tenant' is illegal, illegal characters should not appear in the param."},
		{"bad group", "POST", []string{"serviceName", "s", "groupName", "g/1", "ip", "1.1.1.1", "port", "1"}, 400, "Param 'group' is illegal, illegal characters should not appear in the param."},
		{"beat interval over timeout", "POST", []string{"serviceName", "s", "ip", "1.1.1.1", "port", "1", "metadata", `{"preserved.heart.beat.interval":"20000"}`}, 400, "Instance 'heart beat interval' must less than 'heart beat timeout' and 'ip delete timeout'."},
		{"ephemeral into persistent", "POST", []string{"serviceName", "persist-svc", "ip", "1.1.1.1", "port", "1"}, 400, "errCode: 400, errMsg: Current service DEFAULT_GROUP@@persist-svc is persistent service, can't register ephemeral instance. "},
		{"create existing service", "POST /service", []string{"serviceName", "persist-svc"}, 400, "specified service DEFAULT_GROUP@@persist-svc already exists!"},
		{"get missing service", "GET /service", []string{"serviceName", "missing"}, 400, "service not found, namespace: public, serviceName: DEFAULT_GROUP@@missing"},
		{"service param missing", "GET /service", nil, 400, "Parameter 'serviceName' is missing"},
		{"update missing service", "PUT /service", []string{"serviceName", "missing", "protectThreshold", "0.5"}, 400, "service DEFAULT_GROUP@@missing not found!"},
		{"delete missing service", "DELETE /service", []string{"serviceName", "missing"}, 400, "service DEFAULT_GROUP@@missing not found!"},
		{"bad selector", "POST /service", []string{"serviceName", "sel", "selector", `{"type":"x"}`}, 400, "not match any type of selector!"},
		{"put instance no service", "PUT", []string{"serviceName", "ghost", "ip", "1.1.1.1", "port", "1"}, 400, "service not found, namespace: public, service: Service{namespace='public', group='DEFAULT_GROUP', name='ghost', ephemeral=true, revision=0}"},
		{"get instance unknown", "GET", []string{"serviceName", "persist-svc", "ip", "1.1.1.1", "port", "1"}, 404, "no ips found for cluster DEFAULT in service DEFAULT_GROUP@@persist-svc"},
		{"list no pageNo", "GET /service/list", []string{"pageSize", "1"}, 400, "Param 'pageNo' is required."},
		{"unknown method", "POST /instance/list", []string{"serviceName", "s"}, 501, "no such api:POST:/nacos/v1/ns/instance/list"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method, path, _ := strings.Cut(tt.method, " ")
			if path == "" {
				path = "/instance"
			}
			a := s.do(method, "/nacos/v1/ns"+path, vals(tt.params...))
			if a.status != tt.status || a.body != tt.text {
				t.Fatalf("got %d %q\nwant %d %q", a.status, a.body, tt.status, tt.text)
			}
		})
	}
	// Nothing of the refused writes was stored.
	a := s.do("GET", "/nacos/v1/ns/service/list", vals("pageNo", "1", "pageSize", "100"))
	if a.body != `{"count":1,"doms":["persist-svc"]}` {
		t.Fatalf("services after bad input: %s", a.body)
	}

	t.Run("body over limit", func(t *testing.T) {
		a := s.do("POST", "/nacos/v1/ns/instance", vals("serviceName", "big", "ip", "1.1.1.1", "port", "1", "app", strings.Repeat("x", 5000)))
		if a.status != http.StatusRequestEntityTooLarge {
			t.Fatalf("got %d %q, want 413", a.status, a.body)
		}
		if l := s.do("GET", "/nacos/v1/ns/instance/list", vals("serviceName", "big")); strings.Contains(l.body, "1.1.1.1") {
			t.Fatalf("oversized request stored an instance: %s", l.body)
		}
	})
}

// TestPoisonInputIsRefused: numbers JSON cannot carry (NaN, ±Infinity, beyond a
// double) and control characters in names and metadata keys are refused on every v1
// write path, with Nacos' text where Nacos has one, and nothing is stored. Accepted
// once, a NaN weight made every list of its service answer 500.
func TestPoisonInputIsRefused(t *testing.T) {
	s := newStack(t, stackOptions{})
	s.must("POST", "/nacos/v1/ns/instance", vals("serviceName", "eph", "ip", "1.1.1.1", "port", "1"))
	s.must("POST", "/nacos/v1/ns/instance", vals("serviceName", "per", "ip", "1.1.1.1", "port", "1", "ephemeral", "false"))
	const weightText = "instance format invalid: The weights range from 0.0 to 10000.0"
	const thresholdText = "protectThreshold must be a finite number"
	control := func(param string) string {
		return "Param '" + param + "' is illegal, control characters should not appear in the param."
	}
	const metadataKeyText = "Param 'Metadata' is illegal, control characters should not appear in its keys."
	register := func(kv ...string) []string {
		return append([]string{"serviceName", "eph", "ip", "1.1.1.1", "port", "1"}, kv...)
	}
	beat := func(json string) []string { return []string{"serviceName", "eph", "beat", json} }
	tests := []struct {
		name   string
		method string
		params []string
		status int
		text   string
	}{
		{"register weight NaN", "POST", register("weight", "NaN"), 400, weightText},
		{"register weight Infinity", "POST", register("weight", "Infinity"), 400, weightText},
		{"register weight -Infinity", "POST", register("weight", "-Infinity"), 400, weightText},
		{"register weight beyond a double", "POST", register("weight", "1e400"), 400, weightText},
		{"register weight in Go's spelling", "POST", register("weight", "inf"), 400, `For input string: "inf"`},
		{"register persistent weight NaN", "POST", register("weight", "NaN", "ephemeral", "false"), 400, weightText},
		{"update weight NaN", "PUT", register("weight", "NaN"), 400, weightText},
		{"update weight beyond a double", "PUT", register("weight", "-1e400"), 400, weightText},
		{"patch weight NaN", "PATCH", register("weight", "NaN"), 400, weightText},
		{"patch weight beyond a double", "PATCH", register("weight", "1e400"), 400, weightText},
		{"patch persistent weight beyond a double", "PATCH", []string{"serviceName", "per", "ip", "1.1.1.1", "port", "1", "weight", "1e400"}, 400, weightText},
		{"beat weight beyond a double", "PUT /instance/beat", beat(`{"ip":"1.1.1.2","port":2,"weight":1e400}`), 400, weightText},
		{"beat weight NaN as text", "PUT /instance/beat", beat(`{"ip":"1.1.1.2","port":2,"weight":"NaN"}`), 400, weightText},
		{"beat weight out of range", "PUT /instance/beat", beat(`{"ip":"1.1.1.2","port":2,"weight":20000}`), 400, weightText},
		{"beat metadata key NUL", "PUT /instance/beat", beat(`{"ip":"1.1.1.2","port":2,"metadata":{"k\u0000":"v"}}`), 400, metadataKeyText},
		{"register service NUL", "POST", []string{"serviceName", "s\x00v", "ip", "1.1.1.1", "port", "1"}, 400, control("serviceName")},
		{"register service leading NUL", "POST", []string{"serviceName", "\x00svc", "ip", "1.1.1.1", "port", "1"}, 400, control("serviceName")},
		{"register service SOH", "POST", []string{"serviceName", "s\x01v", "ip", "1.1.1.1", "port", "1"}, 400, control("serviceName")},
		{"register grouped service NUL", "POST", []string{"serviceName", "G@@s\x00", "ip", "1.1.1.1", "port", "1"}, 400, control("serviceName")},
		{"register ip NUL", "POST", []string{"serviceName", "eph", "ip", "1.1.1.1\x00", "port", "1"}, 400, control("ip")},
		{"register metadata key NUL", "POST", register("metadata", `{"a\u0000b":"v"}`), 400, metadataKeyText},
		{"register metadata key SOH", "POST", register("metadata", "a\x01b=v"), 400, metadataKeyText},
		{"register namespace NUL", "POST", register("namespaceId", "n\x00"), 400, "Param 'namespaceId/tenant' is illegal, illegal characters should not appear in the param."},
		{"register group NUL", "POST", register("groupName", "g\x00"), 400, "Param 'group' is illegal, illegal characters should not appear in the param."},
		{"register cluster NUL", "POST", register("clusterName", "c\x00"), 400, "Param 'cluster' is illegal, illegal characters should not appear in the param."},
		{"metadata batch key control", "PUT /instance/metadata/batch", []string{"serviceName", "eph", "metadata", `{"k\u0001":"v"}`}, 400, metadataKeyText},
		{"persistent metadata batch key control", "PUT /instance/metadata/batch", []string{"serviceName", "per", "consistencyType", "persist", "metadata", `{"k\u0001":"v"}`}, 400, metadataKeyText},
		{"metadata batch of no instance, key control", "PUT /instance/metadata/batch", []string{"serviceName", "none", "metadata", `{"k\u0001":"v"}`}, 400, metadataKeyText},
		{"create service threshold NaN", "POST /service", []string{"serviceName", "t1", "protectThreshold", "NaN"}, 400, thresholdText},
		{"create service threshold beyond a double", "POST /service", []string{"serviceName", "t1", "protectThreshold", "1e400"}, 400, thresholdText},
		{"create service threshold Infinity", "POST /service", []string{"serviceName", "t1", "protectThreshold", "Infinity"}, 400, thresholdText},
		{"create service metadata key control", "POST /service", []string{"serviceName", "t1", "metadata", `{"k\u0001":"v"}`}, 400, metadataKeyText},
		{"create service name control", "POST /service", []string{"serviceName", "t\x02"}, 400, control("serviceName")},
		{"update service threshold NaN", "PUT /service", []string{"serviceName", "per", "protectThreshold", "NaN"}, 400, thresholdText},
		{"update ephemeral service threshold -Infinity", "PUT /service", []string{"serviceName", "eph", "protectThreshold", "-Infinity"}, 400, thresholdText},
	}
	before := s.listing()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method, path, _ := strings.Cut(tt.method, " ")
			if path == "" {
				path = "/instance"
			}
			a := s.do(method, "/nacos/v1/ns"+path, vals(tt.params...))
			if a.status != tt.status || a.body != tt.text {
				t.Fatalf("got %d %q\nwant %d %q", a.status, a.body, tt.status, tt.text)
			}
		})
	}
	if after := s.listing(); after != before {
		t.Errorf("refused writes changed the registry:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	for _, svc := range []string{"eph", "per"} {
		if a := s.do("GET", "/nacos/v1/ns/instance/list", vals("serviceName", svc)); a.status != 200 {
			t.Errorf("list %s after the refusals = %d %s", svc, a.status, a.body)
		}
	}
}

// TestParameterBytesReadAsJava: bytes that are not UTF-8 are read as Java reads them,
// U+FFFD each, so a name is stored, listed, replicated and snapshotted as one name.
// Before, a persistent service "u\xff" was committed as "u\ufffd" (the command is JSON)
// while its list asked for "u\xff" and found nothing.
func TestParameterBytesReadAsJava(t *testing.T) {
	s := newStack(t, stackOptions{})
	s.must("POST", "/nacos/v1/ns/instance", vals("serviceName", "u\xff", "ip", "1.1.1.1", "port", "1", "ephemeral", "false", "metadata", "{\"k\xfe\":\"v\xfd\"}"))
	for _, name := range []string{"u\xff", "u\ufffd"} {
		a := s.do("GET", "/nacos/v1/ns/instance/list", vals("serviceName", name))
		if a.status != 200 || !strings.Contains(a.body, "\"name\":\"DEFAULT_GROUP@@u\ufffd\"") ||
			!strings.Contains(a.body, "\"metadata\":{\"k\ufffd\":\"v\ufffd\"}") {
			t.Errorf("list %q = %d %s", name, a.status, a.body)
		}
	}
}

func TestServiceKindConflict(t *testing.T) {
	s := newStack(t, stackOptions{})
	s.must("POST", "/nacos/v1/ns/instance", vals("serviceName", "eph", "ip", "1.1.1.1", "port", "1"))
	a := s.do("POST", "/nacos/v1/ns/instance", vals("serviceName", "eph", "ip", "1.1.1.2", "port", "1", "ephemeral", "false"))
	want := "errCode: 400, errMsg: Current service DEFAULT_GROUP@@eph is ephemeral service, can't register persistent instance. "
	if a.status != 400 || a.body != want {
		t.Fatalf("got %d %q, want 400 %q", a.status, a.body, want)
	}
}

func TestDeregisterAlwaysOK(t *testing.T) {
	s := newStack(t, stackOptions{})
	s.must("DELETE", "/nacos/v1/ns/instance", vals("serviceName", "nothing", "ip", "1.1.1.1", "port", "1"))
	s.must("POST", "/nacos/v1/ns/instance", vals("serviceName", "p", "ip", "1.1.1.1", "port", "1", "ephemeral", "false"))
	// Node.js deregisters without the ephemeral flag and with the ungrouped name: the
	// service's stored kind routes it.
	s.must("DELETE", "/nacos/v1/ns/instance", vals("serviceName", "p", "ip", "1.1.1.1", "port", "1"))
	if a := s.do("GET", "/nacos/v1/ns/instance/list", vals("serviceName", "p")); strings.Contains(a.body, "1.1.1.1") {
		t.Fatalf("persistent instance still listed: %s", a.body)
	}
}

// TestGoV1UnencodedQuery sends what nacos-sdk-go v1.1.4 sends: GET and DELETE query
// strings built without URL encoding, and a PUT body likewise.
func TestGoV1UnencodedQuery(t *testing.T) {
	s := newStack(t, stackOptions{})
	s.must("POST", "/nacos/v1/ns/instance", vals("serviceName", "DEFAULT_GROUP@@go", "groupName", "DEFAULT_GROUP", "ip", "1.1.1.1", "port", "80",
		"metadata", `{"a":"b c"}`, "enable", "true", "healthy", "true", "weight", "1", "ephemeral", "true"))
	a := s.raw("GET", `/nacos/v1/ns/instance/list?serviceName=DEFAULT_GROUP@@go&clusters=&udpPort=0&healthyOnly=false&clientIP=1.1.1.1`)
	if a.status != 200 || !strings.Contains(a.body, `"metadata":{"a":"b c"}`) {
		t.Fatalf("list = %d %s", a.status, a.body)
	}
	beat := `{"cluster":"DEFAULT","ip":"1.1.1.1","metadata":{"a":"b c"},"port":80,"scheduled":false,"serviceName":"DEFAULT_GROUP@@go","weight":1}`
	// v1.1.4 builds a PUT body without encoding it.
	req, _ := http.NewRequest("PUT", s.srv.URL+"/nacos/v1/ns/instance/beat", strings.NewReader("serviceName=DEFAULT_GROUP@@go&beat="+beat))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if a := s.send(req); a.status != 200 || !strings.Contains(a.body, `"code":10200`) {
		t.Fatalf("beat = %d %s", a.status, a.body)
	}
	// A bad percent escape is kept as written.
	if a := s.raw("GET", `/nacos/v1/ns/instance/list?serviceName=DEFAULT_GROUP@@go%zz`); a.status != 200 || !strings.Contains(a.body, `"name":"DEFAULT_GROUP@@go%zz"`) {
		t.Fatalf("bad escape = %d %s", a.status, a.body)
	}
	s.must("DELETE", "/nacos/v1/ns/instance?serviceName=DEFAULT_GROUP@@go&ip=1.1.1.1&port=80&clusterName=DEFAULT&ephemeral=true", nil)
	if a := s.do("GET", "/nacos/v1/ns/instance/list", vals("serviceName", "go")); strings.Contains(a.body, "1.1.1.1") {
		t.Fatalf("still listed after DELETE with query params: %s", a.body)
	}
}

func TestFullBeatRegistersUnknownInstance(t *testing.T) {
	s := newStack(t, stackOptions{})
	beat := `{"ip":"2.2.2.2","port":81,"serviceName":"DEFAULT_GROUP@@b","cluster":"","weight":3,"metadata":{"m":"1"},"period":5000,"stopped":false}`
	a := s.do("PUT", "/nacos/v1/ns/instance/beat", vals("serviceName", "DEFAULT_GROUP@@b", "beat", beat))
	if a.body != `{"clientBeatInterval":5000,"code":10200,"lightBeatEnabled":true}` {
		t.Fatalf("beat = %d %s", a.status, a.body)
	}
	l := s.do("GET", "/nacos/v1/ns/instance/list", vals("serviceName", "b"))
	for _, want := range []string{`"ip":"2.2.2.2"`, `"port":81`, `"weight":3.0`, `"metadata":{"m":"1"}`, `"clusterName":"DEFAULT"`, `"healthy":true`} {
		if !strings.Contains(l.body, want) {
			t.Errorf("list lacks %s: %s", want, l.body)
		}
	}
	// preserved.heart.beat.interval is echoed as clientBeatInterval.
	s.must("POST", "/nacos/v1/ns/instance", vals("serviceName", "c", "ip", "3.3.3.3", "port", "1", "metadata", `{"preserved.heart.beat.interval":"2000"}`))
	if a := s.do("PUT", "/nacos/v1/ns/instance/beat", vals("serviceName", "c", "ip", "3.3.3.3", "port", "1")); !strings.Contains(a.body, `"clientBeatInterval":2000`) {
		t.Fatalf("beat interval override: %s", a.body)
	}
}

type listAnswer struct {
	Name                     string `json:"name"`
	LastRefTime              int64  `json:"lastRefTime"`
	ReachProtectionThreshold bool   `json:"reachProtectionThreshold"`
	Hosts                    []struct {
		IP      string `json:"ip"`
		Healthy bool   `json:"healthy"`
		Enabled bool   `json:"enabled"`
	} `json:"hosts"`
}

func (s *stack) list(params ...string) listAnswer {
	s.t.Helper()
	a := s.do("GET", "/nacos/v1/ns/instance/list", vals(params...))
	if a.status != 200 {
		s.t.Fatalf("list = %d %s", a.status, a.body)
	}
	var l listAnswer
	if err := json.Unmarshal([]byte(a.body), &l); err != nil {
		s.t.Fatal(err)
	}
	return l
}

func TestLastRefTimeStrictlyIncreases(t *testing.T) {
	s := newStack(t, stackOptions{})
	prev := int64(0)
	for i := 0; i < 20; i++ {
		s.must("POST", "/nacos/v1/ns/instance", vals("serviceName", "ref", "ip", "1.1.1.1", "port", fmt.Sprint(1000+i), "ephemeral", "false"))
		l := s.list("serviceName", "ref")
		if l.LastRefTime <= prev {
			t.Fatalf("change %d: lastRefTime %d not above %d", i, l.LastRefTime, prev)
		}
		prev = l.LastRefTime
	}
}

func TestProtectThresholdAndDisabled(t *testing.T) {
	s := newStack(t, stackOptions{})
	for i, ip := range []string{"1.0.0.1", "1.0.0.2", "1.0.0.3"} {
		s.must("POST", "/nacos/v1/ns/instance", vals("serviceName", "pt", "ip", ip, "port", "1", "ephemeral", "false", "healthy", fmt.Sprint(i == 0)))
	}
	s.must("POST", "/nacos/v1/ns/instance", vals("serviceName", "pt", "ip", "1.0.0.4", "port", "1", "ephemeral", "false", "enabled", "false"))
	l := s.list("serviceName", "pt")
	if len(l.Hosts) != 3 || l.ReachProtectionThreshold {
		t.Fatalf("threshold 0, 1 of 3 healthy: %+v", l)
	}
	s.must("PUT", "/nacos/v1/ns/service", vals("serviceName", "pt", "protectThreshold", "0.5"))
	l = s.list("serviceName", "pt")
	if !l.ReachProtectionThreshold || len(l.Hosts) != 3 {
		t.Fatalf("threshold 0.5 should fire: %+v", l)
	}
	for _, h := range l.Hosts {
		if !h.Healthy || h.IP == "1.0.0.4" {
			t.Fatalf("protected hosts must be healthy copies and never disabled: %+v", l.Hosts)
		}
	}
	if l := s.list("serviceName", "pt", "healthyOnly", "true"); len(l.Hosts) != 1 || l.ReachProtectionThreshold {
		t.Fatalf("healthyOnly after filter: %+v", l)
	}
}

func TestEphemeralExpiry(t *testing.T) {
	s := newStack(t, stackOptions{timing: timing(time.Second, 3*time.Second, 6*time.Second)})
	s.must("POST", "/nacos/v1/ns/instance", vals("serviceName", "exp", "ip", "1.1.1.1", "port", "1"))
	s.clock.Advance(3*time.Second + time.Millisecond)
	s.distro.CheckExpiry()
	l := s.list("serviceName", "exp", "healthyOnly", "false")
	// With threshold 0 an all-unhealthy service is protected: listed as healthy.
	if len(l.Hosts) != 1 || !l.ReachProtectionThreshold {
		t.Fatalf("after the heartbeat timeout: %+v", l)
	}
	s.clock.Advance(3 * time.Second)
	s.distro.CheckExpiry()
	if l := s.list("serviceName", "exp"); len(l.Hosts) != 0 {
		t.Fatalf("after the delete timeout: %+v", l)
	}
	// A light beat now answers 20404; a full beat brings it back.
	if a := s.do("PUT", "/nacos/v1/ns/instance/beat", vals("serviceName", "exp", "ip", "1.1.1.1", "port", "1")); !strings.Contains(a.body, `"code":20404`) {
		t.Fatalf("light beat after expiry: %s", a.body)
	}
}

func timing(interval, timeout, del time.Duration) naming.Timing {
	return naming.Timing{HeartBeatInterval: interval, HeartBeatTimeout: timeout, IPDeleteTimeout: del}
}

// TestDistroResponsibility: the operator route reports, for each ephemeral instance of
// a service, the member the 1.x hash routes its client to and the member whose copy the
// node holds; a lone node is both for every client, and a persistent instance is not
// listed (it has no responsible member).
func TestDistroResponsibility(t *testing.T) {
	s := newStack(t, stackOptions{})
	s.must("POST", "/nacos/v1/ns/instance", vals("serviceName", "resp", "ip", "127.0.0.1", "port", "71"))
	s.must("POST", "/nacos/v1/ns/instance", vals("serviceName", "resp", "ip", "127.0.0.1", "port", "72"))
	s.must("POST", "/nacos/v1/ns/instance", vals("serviceName", "respP", "ip", "127.0.0.1", "port", "73", "ephemeral", "false"))
	a := s.do("GET", "/roster/v1/operator/distro/responsibility", vals("serviceName", "resp"))
	want := `{"self":"n1","members":["n1"],"instances":[` +
		`{"instance":"127.0.0.1#71#DEFAULT","client":"127.0.0.1:71","routed":"n1","holder":"n1"},` +
		`{"instance":"127.0.0.1#72#DEFAULT","client":"127.0.0.1:72","routed":"n1","holder":"n1"}]}`
	if a.status != 200 || strings.TrimSpace(a.body) != want {
		t.Errorf("responsibility = %d %s\nwant %s", a.status, a.body, want)
	}
	if a := s.do("GET", "/roster/v1/operator/distro/responsibility", vals("serviceName", "respP")); a.status != 200 || !strings.Contains(a.body, `"instances":[]`) {
		t.Errorf("persistent service: %d %s, want no instances", a.status, a.body)
	}
	if a := s.do("GET", "/roster/v1/operator/distro/responsibility", vals()); a.status != 400 || !strings.Contains(a.body, "serviceName") {
		t.Errorf("no serviceName: %d %s, want 400 naming it", a.status, a.body)
	}
}
