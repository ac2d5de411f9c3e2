package packaging

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roster-registry/roster/nodeauth/testcerts"
)

// testTimeout bounds every wait of these tests for a node to start or answer.
const testTimeout = 60 * time.Second

// pause waits a little between polls, or until ctx ends.
func pause(ctx context.Context) {
	select {
	case <-ctx.Done():
	case <-time.After(50 * time.Millisecond):
	}
}

// syncBuffer is a bytes.Buffer that a process's output goroutines and the test share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestSystemdNotify runs the real binary as systemd would for Type=notify, with
// NOTIFY_SOCKET naming a unixgram socket the test reads: READY=1 must come when /readyz
// answers 200 (and not before), STOPPING=1 once SIGTERM starts the shutdown, and the
// process must then exit 0.
func TestSystemdNotify(t *testing.T) {
	bin := rosterBinary(t)
	sock := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	messages := make(chan string, 16)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				close(messages)
				return
			}
			messages <- string(buf[:n])
		}
	}()

	port := freeBasePort(t)
	httpAddr := "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command(bin, "server", "--http-addr", httpAddr, "--raft-addr", "127.0.0.1:"+strconv.Itoa(port-1000),
		"--data-dir", t.TempDir(), "--health-check-cidrs", "127.0.0.0/8", "--log-level", "warn")
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-done
		}
	}()

	receive := func(want string) {
		t.Helper()
		select {
		case m, ok := <-messages:
			if !ok || m != want {
				t.Fatalf("notify socket got %q (open %v), want %q; output:\n%s", m, ok, want, out.String())
			}
		case err := <-done:
			t.Fatalf("roster exited (%v) before sending %q:\n%s", err, want, out.String())
		case <-time.After(testTimeout):
			t.Fatalf("no %q within %v; output:\n%s", want, testTimeout, out.String())
		}
	}
	receive("READY=1")
	// READY=1 is sent once the node is ready, so /readyz must already say so.
	resp, err := http.Get("http://" + httpAddr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("after READY=1, /readyz = %s", resp.Status)
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	receive("STOPPING=1")
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGINT: %v\n%s", err, out.String())
		}
	case <-time.After(testTimeout):
		t.Fatal("roster did not exit after STOPPING=1")
	}
}

// TestHealthCommand checks `roster health` against a real node, plain and serving TLS:
// exit 1 while nothing listens (or the certificate is not trusted), 0 once /readyz
// answers 200.
func TestHealthCommand(t *testing.T) {
	bin := rosterBinary(t)
	ca, err := testcerts.NewCA("health")
	if err != nil {
		t.Fatal(err)
	}
	files, err := ca.WriteFiles(t.TempDir(), "node")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		scheme      string
		serverFlags []string
		healthFlags []string
		untrusted   []string // flags with which the healthy node must still fail
	}{
		{"plain", "http", nil, nil, nil},
		{"tls", "https", []string{"--tls-cert", files.Cert, "--tls-key", files.Key, "--tls-ca", files.CA},
			[]string{"--ca", files.CA}, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			port := freeBasePort(t)
			addr := tt.scheme + "://127.0.0.1:" + strconv.Itoa(port)
			health := func(ctx context.Context, extra []string) (string, int) {
				out, err := exec.CommandContext(ctx, bin, append([]string{"health", "--addr", addr}, extra...)...).CombinedOutput()
				if ee, ok := err.(*exec.ExitError); ok {
					return string(out), ee.ExitCode()
				} else if err != nil {
					t.Fatal(err)
				}
				return string(out), 0
			}
			if out, code := health(context.Background(), tt.healthFlags); code != 1 {
				t.Fatalf("health with no server: exit %d (%s), want 1", code, out)
			}
			args := append([]string{"server", "--http-addr", "127.0.0.1:" + strconv.Itoa(port),
				"--raft-addr", "127.0.0.1:" + strconv.Itoa(port-1000), "--data-dir", t.TempDir(),
				"--health-check-cidrs", "127.0.0.0/8", "--log-level", "warn"}, tt.serverFlags...)
			cmd := exec.Command(bin, args...)
			var logs syncBuffer
			cmd.Stdout, cmd.Stderr = &logs, &logs
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			for {
				out, code := health(ctx, tt.healthFlags)
				if code == 0 {
					if out != "ok\n" {
						t.Fatalf("health printed %q", out)
					}
					break
				}
				if ctx.Err() != nil {
					t.Fatalf("never healthy: %s\n%s", out, logs.String())
				}
				pause(ctx)
			}
			if tt.untrusted != nil {
				if out, code := health(context.Background(), tt.untrusted); code != 1 || !strings.Contains(out, "certificate") {
					t.Fatalf("health without the CA: exit %d (%s), want 1 naming the certificate", code, out)
				}
			}
		})
	}
}
