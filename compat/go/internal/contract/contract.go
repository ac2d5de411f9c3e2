// Package contract is the client side of the driver ↔ client contract of
// compat/README.md, shared by the Go client programs: the environment, the JSON lines
// on stdout and the driver's answers on stdin.
package contract

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The contract's instances.
const (
	EphemeralIP  = "10.9.0.1"
	PersistentIP = "10.9.0.2"
	ExtraIP      = "10.9.0.3"
	Port         = 8080
	Cluster      = "DEFAULT"
)

// Env is what the driver passes in the environment.
type Env struct {
	Host                string
	Port                uint64
	Namespace           string
	Group               string
	Service             string
	PersistentService   string // P's service: ROSTER_PERSISTENT_SERVICE, else Service
	HeartbeatIntervalMS int64
	HeartbeatTimeoutMS  int64
	DeleteTimeoutMS     int64
	Username, Password  string
	CacheDir, LogDir    string
	DriverStdin         *bufio.Reader
	stdoutMu            sync.Mutex
}

// FromEnv reads the environment; a missing or bad variable ends the program.
func FromEnv() *Env {
	e := &Env{DriverStdin: bufio.NewReader(os.Stdin)}
	addr := need("ROSTER_SERVER_ADDR")
	host, port, ok := strings.Cut(addr, ":")
	p, err := strconv.ParseUint(port, 10, 16)
	if !ok || err != nil {
		Fatalf("ROSTER_SERVER_ADDR %q is not host:port", addr)
	}
	e.Host, e.Port = host, p
	e.Namespace = os.Getenv("ROSTER_NAMESPACE")
	e.Group = os.Getenv("ROSTER_GROUP")
	e.Service = need("ROSTER_SERVICE")
	// P's service: Nacos 2.x refuses a persistent instance in a service whose first
	// instance was ephemeral.
	e.PersistentService = os.Getenv("ROSTER_PERSISTENT_SERVICE")
	if e.PersistentService == "" {
		e.PersistentService = e.Service
	}
	e.HeartbeatIntervalMS = ms("ROSTER_HEARTBEAT_INTERVAL_MS")
	e.HeartbeatTimeoutMS = ms("ROSTER_HEARTBEAT_TIMEOUT_MS")
	e.DeleteTimeoutMS = ms("ROSTER_DELETE_TIMEOUT_MS")
	e.Username = os.Getenv("ROSTER_USERNAME")
	e.Password = os.Getenv("ROSTER_PASSWORD")
	dir := os.Getenv("ROSTER_CACHE_DIR")
	if dir == "" {
		dir = os.TempDir()
	}
	e.CacheDir = dir + "/cache"
	e.LogDir = dir + "/log"
	return e
}

func need(name string) string {
	v := strings.TrimSpace(os.Getenv(name))
	if v == "" {
		Fatalf("%s is not set (run this program through compat/driver)", name)
	}
	return v
}

func ms(name string) int64 {
	v := need(name)
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		Fatalf("%s=%q is not a positive number of milliseconds", name, v)
	}
	return n
}

// Fatalf reports on stderr and exits; the driver fails the remaining cells.
func Fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}

// Logf writes to stderr, the program's log.
func Logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

// Timings are the preserved metadata keys of the short server timings.
func (e *Env) Timings() map[string]string {
	return map[string]string{
		"preserved.heart.beat.interval": strconv.FormatInt(e.HeartbeatIntervalMS, 10),
		"preserved.heart.beat.timeout":  strconv.FormatInt(e.HeartbeatTimeoutMS, 10),
		"preserved.ip.delete.timeout":   strconv.FormatInt(e.DeleteTimeoutMS, 10),
	}
}

func (e *Env) emit(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		Fatalf("encode %v: %v", v, err)
	}
	e.stdoutMu.Lock()
	defer e.stdoutMu.Unlock()
	os.Stdout.Write(append(b, '\n'))
}

// Version reports the exact version of module path as built into this program.
func (e *Env) Version(label, path string) {
	v := "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == path {
				v = d.Version
				if d.Replace != nil {
					v = d.Replace.Version
				}
			}
		}
	}
	e.emit(map[string]string{"version": label + " " + v})
}

// Step runs fn, timing it, and reports the step. fn returns the detail or an error.
func (e *Env) Step(name string, fn func() (string, error)) {
	start := time.Now()
	detail, err := fn()
	el := time.Since(start).Milliseconds()
	if err != nil {
		Logf("step %s failed: %v", name, err)
		e.emit(map[string]any{"step": name, "ok": false, "ms": el, "detail": err.Error()})
		return
	}
	Logf("step %s: %s", name, detail)
	m := map[string]any{"step": name, "ok": true, "ms": el}
	if detail != "" {
		m["detail"] = detail
	}
	e.emit(m)
}

// Wait asks the driver for a wait and returns its answer.
func (e *Env) Wait(name string) {
	e.emit(map[string]string{"wait": name})
	line, err := e.DriverStdin.ReadString('\n')
	if err != nil {
		Fatalf("wait %s: no answer from the driver: %v", name, err)
	}
	Logf("wait %s: %s", name, strings.TrimSpace(line))
}

// WaitStop asks for the stop and blocks reading stdin until the driver kills the
// program (or closes stdin).
func (e *Env) WaitStop() {
	e.emit(map[string]string{"wait": "stop"})
	for {
		if _, err := e.DriverStdin.ReadString('\n'); err != nil {
			os.Exit(0)
		}
	}
}

// Eventually calls fn until it returns nil or timeout passes; it returns fn's last
// error then.
func Eventually(timeout time.Duration, fn func() error) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := fn()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %v: %w", timeout, err)
		}
		<-tick.C
	}
}
