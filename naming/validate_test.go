package naming

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckNames(t *testing.T) {
	tests := []struct {
		name  string
		check func(string) error
		in    string
		want  string // "" = valid
	}{
		{"namespace ok", CheckNamespace, "dev-1_a", ""},
		{"namespace blank", CheckNamespace, "", ""},
		{"namespace dot", CheckNamespace, "a.b", "Param 'namespaceId/tenant' is illegal, illegal characters should not appear in the param."},
		{"namespace long", CheckNamespace, strings.Repeat("a", 65), "Param 'namespaceId/tenant' is illegal, the param length should not exceed 64."},
		{"service ok", CheckServiceName, "orders.v1:svc", ""},
		{"service leading at", CheckServiceName, "@orders", "Param 'serviceName' is illegal, illegal characters should not appear in the param."},
		{"service inner @@", CheckServiceName, "a@@b", "Param 'serviceName' is illegal, illegal characters should not appear in the param."},
		{"service single @", CheckServiceName, "a@b", ""},
		{"service space", CheckServiceName, "a b", "Param 'serviceName' is illegal, illegal characters should not appear in the param."},
		{"service cjk", CheckServiceName, "a服务", "Param 'serviceName' is illegal, illegal characters should not appear in the param."},
		{"service long", CheckServiceName, strings.Repeat("s", 513), "Param 'serviceName' is illegal, the param length should not exceed 512."},
		{"group ok", CheckGroup, "DEFAULT_GROUP:a.b-c", ""},
		{"group slash", CheckGroup, "a/b", "Param 'group' is illegal, illegal characters should not appear in the param."},
		{"group long", CheckGroup, strings.Repeat("g", 129), "Param 'group' is illegal, the param length should not exceed 128."},
		{"clusters ok", CheckClusters, "DEFAULT,c_1,c-2", ""},
		{"clusters bad", CheckClusters, "DEFAULT,c 1", "Param 'cluster' is illegal, illegal characters should not appear in the param."},
		{"cluster long", CheckCluster, strings.Repeat("c", 65), "Param 'cluster' is illegal, the param length should not exceed 64."},
		{"ip ok", CheckIP, "10.0.0.5", ""},
		{"ip host", CheckIP, "my-host.local", ""},
		{"ip space", CheckIP, "10.0.0 .5", "Param 'ip' is illegal, illegal characters should not appear in the param."},
		{"ip long", CheckIP, strings.Repeat("1", 129), "Param 'ip' is illegal, the param length should not exceed 128."},
		// Nacos' service and ip patterns let control characters through; Roster does not.
		{"service NUL inside", CheckServiceName, "s\x00v", "Param 'serviceName' is illegal, control characters should not appear in the param."},
		{"service NUL first", CheckServiceName, "\x00svc", "Param 'serviceName' is illegal, control characters should not appear in the param."},
		{"service unit separator", CheckServiceName, "s\x1fv", "Param 'serviceName' is illegal, control characters should not appear in the param."},
		{"service DEL", CheckServiceName, "s\x7fv", ""},
		{"service not UTF-8", CheckServiceName, "u\xff", "Param 'serviceName' is illegal, the param should be valid UTF-8."},
		{"service replacement char", CheckServiceName, "u\ufffd", ""},
		{"ip NUL", CheckIP, "10.0.0.1\x00", "Param 'ip' is illegal, control characters should not appear in the param."},
		{"ip not UTF-8", CheckIP, "10.0.0.\xfe", "Param 'ip' is illegal, the param should be valid UTF-8."},
		// The other names' patterns already refuse them, with Nacos' text.
		{"namespace NUL", CheckNamespace, "n\x00", "Param 'namespaceId/tenant' is illegal, illegal characters should not appear in the param."},
		{"namespace DEL", CheckNamespace, "n\x7f", "Param 'namespaceId/tenant' is illegal, illegal characters should not appear in the param."},
		{"group NUL", CheckGroup, "g\x00", "Param 'group' is illegal, illegal characters should not appear in the param."},
		{"group not UTF-8", CheckGroup, "g\xff", "Param 'group' is illegal, illegal characters should not appear in the param."},
		{"cluster NUL", CheckCluster, "c\x00", "Param 'cluster' is illegal, illegal characters should not appear in the param."},
		{"cluster DEL", CheckCluster, "c\x7f", "Param 'cluster' is illegal, illegal characters should not appear in the param."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.check(tt.in)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Fatalf("check(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestParsePort(t *testing.T) {
	for in, want := range map[string]int{"0": 0, "8080": 8080, "65535": 65535, " 80 ": 80} {
		got, err := ParsePort(in)
		if err != nil || got != want {
			t.Errorf("ParsePort(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"-1", "65536", "abc", ""} {
		if _, err := ParsePort(in); err == nil || err.Error() != "Param 'port' is illegal, the value should be between 0 and 65535." {
			t.Errorf("ParsePort(%q) err = %v", in, err)
		}
	}
}

func TestCheckInstance(t *testing.T) {
	base := func() *Instance {
		return &Instance{IP: "10.0.0.1", Port: 80, ClusterName: "DEFAULT", Weight: 1, Healthy: true, Enabled: true}
	}
	tests := []struct {
		name   string
		mutate func(*Instance)
		want   string
	}{
		{"ok", func(*Instance) {}, ""},
		{"underscore cluster", func(i *Instance) { i.ClusterName = "c_1" }, "Instance 'clusterName' should be characters with only 0-9a-zA-Z-. (current: c_1)"},
		{"weight high", func(i *Instance) { i.Weight = 10000.5 }, "instance format invalid: The weights range from 0.0 to 10000.0"},
		{"weight negative", func(i *Instance) { i.Weight = -1 }, "instance format invalid: The weights range from 0.0 to 10000.0"},
		{"weight zero", func(i *Instance) { i.Weight = 0 }, ""},
		{"timeout below interval", func(i *Instance) {
			i.Metadata = map[string]string{MetaHeartBeatInterval: "20000"}
		}, "Instance 'heart beat interval' must less than 'heart beat timeout' and 'ip delete timeout'."},
		{"overrides ok", func(i *Instance) {
			i.Metadata = map[string]string{MetaHeartBeatInterval: "1000", MetaHeartBeatTimeout: "3000", MetaIPDeleteTimeout: "6000"}
		}, ""},
		{"metadata too long", func(i *Instance) {
			i.Metadata = map[string]string{"k": strings.Repeat("v", 1024)}
		}, "Param 'Metadata' is illegal, the param length should not exceed 1024."},
		{"port range", func(i *Instance) { i.Port = 70000 }, "Param 'port' is illegal, the value should be between 0 and 65535."},
		// JSON carries none of these: accepted, they broke every list and sync of the service.
		{"weight NaN", func(i *Instance) { i.Weight = math.NaN() }, "instance format invalid: The weights range from 0.0 to 10000.0"},
		{"weight +Inf", func(i *Instance) { i.Weight = math.Inf(1) }, "instance format invalid: The weights range from 0.0 to 10000.0"},
		{"weight -Inf", func(i *Instance) { i.Weight = math.Inf(-1) }, "instance format invalid: The weights range from 0.0 to 10000.0"},
		{"weight max", func(i *Instance) { i.Weight = MaxWeight }, ""},
		{"metadata key NUL", func(i *Instance) { i.Metadata = map[string]string{"a\x00b": "v"} },
			"Param 'Metadata' is illegal, control characters should not appear in its keys."},
		{"metadata key newline", func(i *Instance) { i.Metadata = map[string]string{"a\nb": "v"} },
			"Param 'Metadata' is illegal, control characters should not appear in its keys."},
		{"metadata value control", func(i *Instance) { i.Metadata = map[string]string{"k": "line1\nline2\x00"} }, ""},
		{"metadata key not UTF-8", func(i *Instance) { i.Metadata = map[string]string{"k\xff": "v"} },
			"Param 'Metadata' is illegal, the param should be valid UTF-8."},
		{"metadata value not UTF-8", func(i *Instance) { i.Metadata = map[string]string{"k": "v\xff"} },
			"Param 'Metadata' is illegal, the param should be valid UTF-8."},
		{"metadata over the limit before its text", func(i *Instance) {
			i.Metadata = map[string]string{"k\x00": strings.Repeat("v", 1024)}
		}, "Param 'Metadata' is illegal, the param length should not exceed 1024."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inst := base()
			tt.mutate(inst)
			err := CheckInstance(inst, DefaultMaxMetadata, DefaultTiming())
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Fatalf("CheckInstance = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCheckProtectThreshold(t *testing.T) {
	for _, th := range []float64{0, 0.5, 1, -1, 2} {
		if err := CheckProtectThreshold(th); err != nil {
			t.Errorf("CheckProtectThreshold(%v) = %v", th, err)
		}
	}
	for _, th := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		if err := CheckProtectThreshold(th); err == nil || err.Error() != "protectThreshold must be a finite number" {
			t.Errorf("CheckProtectThreshold(%v) = %v", th, err)
		}
	}
}

func TestCheckService(t *testing.T) {
	key := ServiceKey{Namespace: DefaultNamespace, Group: DefaultGroup, Name: "s"}
	tests := []struct {
		name   string
		mutate func(*Service)
		want   string
	}{
		{"ok", func(*Service) {}, ""},
		{"threshold NaN", func(s *Service) { s.ProtectThreshold = math.NaN() }, "protectThreshold must be a finite number"},
		{"threshold Inf", func(s *Service) { s.ProtectThreshold = math.Inf(1) }, "protectThreshold must be a finite number"},
		{"metadata key control", func(s *Service) { s.Metadata = map[string]string{"\x01": "v"} },
			"Param 'Metadata' is illegal, control characters should not appear in its keys."},
		{"cluster metadata key control", func(s *Service) {
			s.Clusters = map[string]*Cluster{"c": {Name: "c", Metadata: map[string]string{"\x01": "v"}}}
		}, "Param 'Metadata' is illegal, control characters should not appear in its keys."},
		{"cluster check port", func(s *Service) { s.Clusters = map[string]*Cluster{"c": {Name: "c", CheckPort: 70000}} },
			"Param 'port' is illegal, the value should be between 0 and 65535."},
		{"no group", func(s *Service) { s.Key.Group = "" }, "Param 'groupName' is required."},
		{"service name control", func(s *Service) { s.Key.Name = "a\x00" },
			"Param 'serviceName' is illegal, control characters should not appear in the param."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewService(key, false)
			tt.mutate(s)
			got := ""
			if err := CheckService(s, DefaultMaxMetadata); err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Fatalf("CheckService = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestParseFloatAsJava: Double.parseDouble's syntax. A number too large is Infinity,
// not an error, so the range rule answers it with Nacos' weight text.
func TestParseFloatAsJava(t *testing.T) {
	for in, want := range map[string]float64{
		"1": 1, " 2.5 ": 2.5, "+3": 3, "-0": math.Copysign(0, -1), ".5": 0.5, "5.": 5, "1e3": 1000, "1E-3": 0.001,
		"1d": 1, "1.5F": 1.5, "0x1p4": 16, "0x1.8p1d": 3, "1e400": math.Inf(1), "-1e400": math.Inf(-1), "1e-400": 0,
		"Infinity": math.Inf(1), "+Infinity": math.Inf(1), "-Infinity": math.Inf(-1), "\t7\n": 7,
	} {
		got, err := ParseFloat(in)
		if err != nil || got != want || math.Signbit(got) != math.Signbit(want) {
			t.Errorf("ParseFloat(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"NaN", "-NaN", "+NaN"} {
		if got, err := ParseFloat(in); err != nil || !math.IsNaN(got) {
			t.Errorf("ParseFloat(%q) = %v, %v; want NaN", in, got, err)
		}
	}
	// Go's own spellings, and what neither reads.
	for _, in := range []string{"inf", "Inf", "+inf", "nan", "infinity", "INFINITY", "1_0", "0x10", "0x1d", "", "-", "--1",
		"+-1", "abc", "1e", "NaNd", "Infinityd", "1 2", "0x_1p0"} {
		if _, err := ParseFloat(in); err == nil || err.Error() != `For input string: "`+in+`"` {
			t.Errorf("ParseFloat(%q) = %v, want Java's NumberFormatException text", in, err)
		}
	}
}

func TestJavaDoubleDecodesAsJackson(t *testing.T) {
	var v struct {
		W *JavaDouble `json:"w"`
	}
	for in, want := range map[string]float64{
		`{"w":2}`: 2, `{"w":2.5e1}`: 25, `{"w":"3"}`: 3, `{"w":1e400}`: math.Inf(1), `{"w":"-Infinity"}`: math.Inf(-1),
	} {
		v.W = nil
		if err := json.Unmarshal([]byte(in), &v); err != nil || v.W == nil || float64(*v.W) != want {
			t.Errorf("decode %s = %v, %v; want %v", in, v.W, err, want)
		}
	}
	v.W = nil
	if err := json.Unmarshal([]byte(`{"w":"NaN"}`), &v); err != nil || v.W == nil || !math.IsNaN(float64(*v.W)) {
		t.Errorf(`decode "NaN" = %v, %v`, v.W, err)
	}
	v.W = nil
	if err := json.Unmarshal([]byte(`{"w":null}`), &v); err != nil || v.W != nil {
		t.Errorf("decode null = %v, %v", v.W, err)
	}
	for _, in := range []string{`{"w":"inf"}`, `{"w":true}`, `{"w":"x"}`, `{"w":{}}`} {
		if err := json.Unmarshal([]byte(in), &v); err == nil {
			t.Errorf("decode %s: no error", in)
		}
	}
	// What cannot be a JSON number is an encoding error, never "NaN.0".
	for _, f := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		if b, err := JavaDouble(f).MarshalJSON(); err == nil {
			t.Errorf("JavaDouble(%v) = %s, want an error", f, b)
		}
	}
}

func TestTimingOverrides(t *testing.T) {
	inst := &Instance{Metadata: map[string]string{MetaHeartBeatTimeout: "3000", MetaIPDeleteTimeout: "x1"}}
	got := DefaultTiming().For(inst)
	if got.HeartBeatTimeout.Milliseconds() != 3000 || got.IPDeleteTimeout.Milliseconds() != 30000 || got.HeartBeatInterval.Milliseconds() != 5000 {
		t.Fatalf("For = %+v", got)
	}
}

func TestSplitGroupedName(t *testing.T) {
	tests := []struct {
		in, group       string
		wantG, wantName string
		wantErr         string
	}{
		{"orders", "", DefaultGroup, "orders", ""},
		{"orders", "G1", "G1", "orders", ""},
		{"G2@@orders", "G1", "G2", "orders", ""},
		{" G2@@orders ", "", "G2", "orders", ""},
		{"G@@S@@extra", "", "G", "S", ""},
		{"G@@", "", "", "", "Param 'serviceName' is illegal, it should be format as 'groupName@@serviceName'"},
		{"@@S", "", "", "", "Param 'serviceName' is illegal, groupName can't be empty"},
	}
	for _, tt := range tests {
		g, n, err := SplitGroupedName(tt.in, tt.group)
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("SplitGroupedName(%q) err = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || g != tt.wantG || n != tt.wantName {
			t.Errorf("SplitGroupedName(%q, %q) = %q, %q, %v", tt.in, tt.group, g, n, err)
		}
	}
}

func TestParseMetadata(t *testing.T) {
	tests := []struct {
		in      string
		want    map[string]string
		wantErr string
	}{
		{"", map[string]string{}, ""},
		{"null", map[string]string{}, ""},
		{`{"zone":"a","v":"1"}`, map[string]string{"zone": "a", "v": "1"}, ""},
		{`{"n":1,"b":true}`, map[string]string{"n": "1", "b": "true"}, ""},
		{"zone=a,v=1", map[string]string{"zone": "a", "v": "1"}, ""},
		{"zone", nil, "metadata format incorrect:zone"},
		{`{"a":{"b":1}}`, nil, `metadata format incorrect:{"a":{"b":1}}`},
	}
	for _, tt := range tests {
		got, err := ParseMetadata(tt.in)
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("ParseMetadata(%q) err = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || len(got) != len(tt.want) {
			t.Errorf("ParseMetadata(%q) = %v, %v", tt.in, got, err)
			continue
		}
		for k, v := range tt.want {
			if got[k] != v {
				t.Errorf("ParseMetadata(%q)[%q] = %q, want %q", tt.in, k, got[k], v)
			}
		}
	}
}

func TestParseBool(t *testing.T) {
	for _, s := range []string{"true", "TRUE", "t", "y", "Yes", "on"} {
		if !ParseBool(s, false) {
			t.Errorf("ParseBool(%q) = false", s)
		}
	}
	for _, s := range []string{"false", "0", "1", "no", "off", "x"} {
		if ParseBool(s, true) {
			t.Errorf("ParseBool(%q) = true", s)
		}
	}
	if !ParseBool(" ", true) || ParseBool("", false) {
		t.Error("blank must give the default")
	}
}

func TestJavaDouble(t *testing.T) {
	for f, want := range map[float64]string{1: "1.0", 0: "0.0", 0.5: "0.5", 10000: "10000.0", 1e21: "1000000000000000000000.0"} {
		b, _ := JavaDouble(f).MarshalJSON()
		if string(b) != want {
			t.Errorf("JavaDouble(%v) = %s, want %s", f, b, want)
		}
	}
}

// FuzzParseMetadata is seeded from testdata/metadata: whatever a client sends, the
// parser answers a map or a *naming.Error, never a panic.
func FuzzParseMetadata(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("..", "testdata", "metadata", "*.txt"))
	for _, path := range seeds {
		b, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Add("=,=")
	f.Fuzz(func(t *testing.T, s string) {
		md, err := ParseMetadata(s)
		if err == nil && md == nil {
			t.Fatal("nil map without error")
		}
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error %T is not a *naming.Error", err)
			}
		}
	})
}
