package raftnode

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
)

// levelTrace is the slog level hclog's Trace maps to: below Debug, so a handler set to
// Debug still hides raft's per-RPC chatter.
const levelTrace = slog.LevelDebug - 4

// slogAdapter is an hclog.Logger that forwards to a *slog.Logger. hashicorp/raft (and its
// transport and snapshot store) only take an hclog.Logger; this keeps one logging pipeline.
//
// Filtering is the slog handler's job; SetLevel only adds a floor on top of it, shared by
// every logger derived through With/Named (hclog's contract for SetLevel).
type slogAdapter struct {
	base    *slog.Logger // component=raft plus the implied args, without the name
	logger  *slog.Logger // base plus logger=<name> when named
	name    string
	implied []any
	floor   *atomic.Int32 // hclog.Level; messages below it are dropped
}

func (a *slogAdapter) derive(base *slog.Logger, name string, implied []any) *slogAdapter {
	logger := base
	if name != "" {
		logger = base.With("logger", name)
	}
	return &slogAdapter{base: base, logger: logger, name: name, implied: implied, floor: a.floor}
}

var _ hclog.Logger = (*slogAdapter)(nil)

// newHCLogger returns an hclog.Logger writing to l with component=raft; nil l discards.
func newHCLogger(l *slog.Logger) *slogAdapter {
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	floor := new(atomic.Int32)
	floor.Store(int32(hclog.Trace))
	base := l.With("component", "raft")
	return &slogAdapter{base: base, logger: base, floor: floor}
}

func toSlogLevel(level hclog.Level) slog.Level {
	switch level {
	case hclog.Trace:
		return levelTrace
	case hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	default: // Info and NoLevel
		return slog.LevelInfo
	}
}

// convertArgs turns hclog's alternating key/values into slog attributes, rendering the
// hclog formatting helpers (hclog.Fmt is used by raft for server lists) to strings.
func convertArgs(args []any) []slog.Attr {
	attrs := make([]slog.Attr, 0, (len(args)+1)/2)
	for i := 0; i < len(args); i += 2 {
		if i+1 >= len(args) {
			// Same key hclog itself uses for a dangling value.
			attrs = append(attrs, slog.Any("EXTRA_VALUE_AT_END", convertValue(args[i])))
			break
		}
		key, ok := args[i].(string)
		if !ok {
			key = fmt.Sprint(args[i])
		}
		attrs = append(attrs, slog.Any(key, convertValue(args[i+1])))
	}
	return attrs
}

func convertValue(v any) any {
	switch v := v.(type) {
	case hclog.Format:
		if len(v) == 0 {
			return ""
		}
		if f, ok := v[0].(string); ok {
			return fmt.Sprintf(f, v[1:]...)
		}
		return fmt.Sprint(v...)
	case hclog.Hex:
		return "0x" + strconv.FormatInt(int64(v), 16)
	case hclog.Octal:
		return "0" + strconv.FormatInt(int64(v), 8)
	case hclog.Binary:
		return "0b" + strconv.FormatInt(int64(v), 2)
	case hclog.Quote:
		return strconv.Quote(string(v))
	case error:
		return v
	case fmt.Stringer:
		// raft logs itself (*Raft) and addresses; a JSON handler would otherwise try to
		// marshal the struct.
		return v.String()
	default:
		return v
	}
}

func (a *slogAdapter) Log(level hclog.Level, msg string, args ...any) {
	if level == hclog.Off || level < hclog.Level(a.floor.Load()) {
		return
	}
	sl := toSlogLevel(level)
	ctx := context.Background()
	if !a.logger.Enabled(ctx, sl) {
		return
	}
	a.logger.LogAttrs(ctx, sl, msg, convertArgs(args)...)
}

func (a *slogAdapter) Trace(msg string, args ...any) { a.Log(hclog.Trace, msg, args...) }
func (a *slogAdapter) Debug(msg string, args ...any) { a.Log(hclog.Debug, msg, args...) }
func (a *slogAdapter) Info(msg string, args ...any)  { a.Log(hclog.Info, msg, args...) }
func (a *slogAdapter) Warn(msg string, args ...any)  { a.Log(hclog.Warn, msg, args...) }
func (a *slogAdapter) Error(msg string, args ...any) { a.Log(hclog.Error, msg, args...) }

func (a *slogAdapter) enabled(level hclog.Level) bool {
	return level >= hclog.Level(a.floor.Load()) &&
		a.logger.Enabled(context.Background(), toSlogLevel(level))
}

func (a *slogAdapter) IsTrace() bool { return a.enabled(hclog.Trace) }
func (a *slogAdapter) IsDebug() bool { return a.enabled(hclog.Debug) }
func (a *slogAdapter) IsInfo() bool  { return a.enabled(hclog.Info) }
func (a *slogAdapter) IsWarn() bool  { return a.enabled(hclog.Warn) }
func (a *slogAdapter) IsError() bool { return a.enabled(hclog.Error) }

func (a *slogAdapter) ImpliedArgs() []any { return append([]any(nil), a.implied...) }

func (a *slogAdapter) With(args ...any) hclog.Logger {
	attrs := convertArgs(args)
	anyAttrs := make([]any, len(attrs))
	for i, at := range attrs {
		anyAttrs[i] = at
	}
	implied := append(append([]any(nil), a.implied...), args...)
	return a.derive(a.base.With(anyAttrs...), a.name, implied)
}

func (a *slogAdapter) Name() string { return a.name }

func (a *slogAdapter) Named(name string) hclog.Logger {
	if a.name != "" {
		name = a.name + "." + name
	}
	return a.derive(a.base, name, a.implied)
}

func (a *slogAdapter) ResetNamed(name string) hclog.Logger {
	return a.derive(a.base, name, a.implied)
}

func (a *slogAdapter) SetLevel(level hclog.Level) {
	if level == hclog.NoLevel {
		level = hclog.Trace
	}
	a.floor.Store(int32(level))
}

func (a *slogAdapter) GetLevel() hclog.Level { return hclog.Level(a.floor.Load()) }

func (a *slogAdapter) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(a.StandardWriter(opts), "", 0)
}

func (a *slogAdapter) StandardWriter(opts *hclog.StandardLoggerOptions) io.Writer {
	if opts == nil {
		opts = &hclog.StandardLoggerOptions{}
	}
	return &stdWriter{a: a, force: opts.ForceLevel, infer: opts.InferLevels}
}

// stdWriter adapts log.Logger output (one line per Write) to the adapter, optionally
// reading a "[LEVEL]" prefix the way hclog's own standard writer does.
type stdWriter struct {
	a     *slogAdapter
	force hclog.Level
	infer bool
}

var levelPrefixes = []struct {
	prefix string
	level  hclog.Level
}{
	{"[TRACE]", hclog.Trace},
	{"[DEBUG]", hclog.Debug},
	{"[INFO]", hclog.Info},
	{"[WARN]", hclog.Warn},
	{"[ERROR]", hclog.Error},
	{"[ERR]", hclog.Error},
}

func (w *stdWriter) Write(p []byte) (int, error) {
	msg := string(bytes.TrimRight(p, " \t\n"))
	level := hclog.Info
	if w.force != hclog.NoLevel || w.infer {
		for _, lp := range levelPrefixes {
			if strings.HasPrefix(msg, lp.prefix) {
				msg = strings.TrimSpace(msg[len(lp.prefix):])
				level = lp.level
				break
			}
		}
	}
	if w.force != hclog.NoLevel {
		level = w.force
	}
	w.a.Log(level, msg)
	return len(p), nil
}
