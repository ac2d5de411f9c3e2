package raftnode

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

func TestHCLogAdapterForwardsToSlog(t *testing.T) {
	var buf bytes.Buffer
	l := newHCLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))

	l.Info("initial configuration", "index", 3, "servers", hclog.Fmt("%+v", []string{"a", "b"}))
	l.Named("net").With("peer", "n2").Warn("failed to contact", "error", "refused")
	l.Trace("hidden below debug")
	l.Debug("shown at debug", "dangling")
	out := buf.String()
	for _, want := range []string{
		`level=INFO msg="initial configuration" component=raft index=3 servers="[a b]"`,
		`level=WARN msg="failed to contact" component=raft peer=n2 logger=net error=refused`,
		`level=DEBUG msg="shown at debug" component=raft EXTRA_VALUE_AT_END=dangling`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "hidden") {
		t.Errorf("trace message passed a debug handler:\n%s", out)
	}
	if l.IsTrace() || !l.IsDebug() {
		t.Errorf("IsTrace=%v IsDebug=%v; want false, true", l.IsTrace(), l.IsDebug())
	}

	buf.Reset()
	l.SetLevel(hclog.Warn)
	l.Info("below the floor")
	l.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}).Print("[ERR] from std")
	if out := buf.String(); strings.Contains(out, "below the floor") ||
		!strings.Contains(out, `level=ERROR msg="from std"`) {
		t.Errorf("SetLevel/StandardLogger output:\n%s", out)
	}
	if l.Named("x").GetLevel() != hclog.Warn {
		t.Errorf("derived logger does not share the level")
	}
}
