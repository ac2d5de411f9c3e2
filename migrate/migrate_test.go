package migrate

import (
	"strings"
	"testing"
)

func TestRoundFloat32(t *testing.T) {
	for _, c := range []struct{ in, want float64 }{
		{float64(float32(0.3)), 0.3},   // r-nacos' f32 threshold, widened
		{float64(float32(0.75)), 0.75}, // exact either way
		{0.3, 0.3},                     // a float64 that is no float32 stays
		{0.123456789, 0.123456789},
		{float64(float32(2.5)), 2.5},
	} {
		if got := roundFloat32(c.in); got != c.want {
			t.Errorf("roundFloat32(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestReadDumpRefusals(t *testing.T) {
	good := `{"format":"roster-export","version":1,"namespaces":[{"id":"public","name":"public"}],"services":[` +
		`{"namespace":"public","group":"DEFAULT_GROUP","name":"a","ephemeral":false,"protectThreshold":0,"selector":{"type":"none"},` +
		`"instances":[{"ip":"127.0.0.1","port":80,"cluster":"DEFAULT","weight":1,"healthy":true,"enabled":true}]}]}`
	if _, err := ReadDump(strings.NewReader(good)); err != nil {
		t.Fatalf("good file: %v", err)
	}
	for name, c := range map[string]struct{ from, to, want string }{
		"format":           {`"roster-export"`, `"nacos"`, `format "nacos"`},
		"later version":    {`"version":1`, `"version":2`, "version 2"},
		"unknown field":    {`"ephemeral":false`, `"ephemeral":false,"colour":"red"`, `unknown field "colour"`},
		"wrong type":       {`"port":80`, `"port":"80"`, `field "services.instances.port"`},
		"unknown ns":       {`"namespace":"public","group"`, `"namespace":"dev","group"`, `namespace "dev" is not in namespaces`},
		"bad port":         {`"port":80`, `"port":0`, "no usable ip or port"},
		"threshold":        {`"protectThreshold":0`, `"protectThreshold":2`, "outside [0, 1]"},
		"truncated":        {`]}]}`, `]}`, "not an export file"},
		"duplicate":        {`"enabled":true}]`, `"enabled":true},{"ip":"127.0.0.1","port":80,"cluster":"DEFAULT","weight":1,"enabled":true}]`, "listed twice"},
		"bad service name": {`"name":"a"`, `"name":"a@@b"`, "service public/DEFAULT_GROUP@@a@@b"},
	} {
		bad := strings.Replace(good, c.from, c.to, 1)
		if bad == good {
			t.Fatalf("%s: the replacement did not apply", name)
		}
		_, err := ReadDump(strings.NewReader(bad))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want it to say %q", name, err, c.want)
		}
	}
}
