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
	"sync"
	"testing"
	"time"
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

	taken := map[int]bool{}
	port := freeBasePort(t, taken)
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

// TestHealthCommand checks `roster health` against a real node: exit 1 while nothing
// listens, 0 once /readyz answers 200.
func TestHealthCommand(t *testing.T) {
	bin := rosterBinary(t)
	port := freeBasePort(t, map[int]bool{})
	addr := "127.0.0.1:" + strconv.Itoa(port)
	if out, err := exec.Command(bin, "health", "--addr", addr).CombinedOutput(); err == nil {
		t.Fatalf("health with no server exited 0: %s", out)
	} else if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("health with no server: %v, want exit 1", err)
	}
	cmd := exec.Command(bin, "server", "--http-addr", addr, "--raft-addr", "127.0.0.1:"+strconv.Itoa(port-1000),
		"--data-dir", t.TempDir(), "--health-check-cidrs", "127.0.0.0/8", "--log-level", "warn")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	for {
		out, err := exec.CommandContext(ctx, bin, "health", "--addr", "http://"+addr).CombinedOutput()
		if err == nil {
			if string(out) != "ok\n" {
				t.Fatalf("health printed %q", out)
			}
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("never healthy: %s", out)
		}
		pause(ctx)
	}
}
