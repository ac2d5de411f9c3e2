package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Cell is one result of the matrix.
type Cell struct {
	Done   bool
	OK     bool
	NA     bool // the client has no such operation; Detail says why (counts as passed)
	MS     int64
	Detail string
}

// Result is one client's row.
type Result struct {
	Client  Client
	Names   []string // the row's cells, in column order
	Version string   // reported by the program, else Client.Version
	Cells   map[string]*Cell
	Wall    time.Duration
	Note    string // why the run ended early, if it did
}

func newResult(c Client, names []string) *Result {
	r := &Result{Client: c, Names: names, Version: c.Version, Cells: map[string]*Cell{}}
	for _, name := range names {
		r.Cells[name] = &Cell{}
	}
	return r
}

func (r *Result) set(name string, ok bool, ms int64, detail string) {
	r.Cells[name] = &Cell{Done: true, OK: ok, MS: ms, Detail: detail}
}

// failRest fails every cell not yet filled with reason.
func (r *Result) failRest(reason string) {
	for _, name := range r.Names {
		if !r.Cells[name].Done {
			r.set(name, false, 0, reason)
		}
	}
}

// reportedAll reports whether every cell but refused (the driver's, after the run) is
// filled.
func (r *Result) reportedAll() bool {
	for _, name := range r.Names {
		if name != "refused" && !r.Cells[name].Done {
			return false
		}
	}
	return true
}

// Passed reports whether every cell passed.
func (r *Result) Passed() bool {
	for _, name := range r.Names {
		if c := r.Cells[name]; !c.Done || !c.OK {
			return false
		}
	}
	return true
}

// message is one JSON line of a client program.
type message struct {
	Version *string `json:"version"`
	// Ephemeral is E's "ip:port" when the client registers its own address instead of
	// 10.9.0.1:8080; the driver's waits watch that address from then on.
	Ephemeral string `json:"ephemeral"`
	Step      string `json:"step"`
	// NA marks a step the client cannot take; its detail says why.
	NA     bool   `json:"na"`
	Wait   string `json:"wait"`
	OK     *bool  `json:"ok"`
	MS     *int64 `json:"ms"`
	Detail string `json:"detail"`
}

// event is what the client's stdout reader and waiter send the run loop.
type event struct {
	msg    *message
	line   string // msg's line as the client wrote it
	bad    string // a line that is not a valid message
	eof    bool   // stdout closed
	exited *os.ProcessState
}

// runner holds what one client's run needs. One runner runs one matrix: auth off, or
// auth on.
type runner struct {
	root    string
	roster  string
	logDir  string
	timeout time.Duration
	ports   *ports
	extra   []string
	runID   string

	// auth starts every server with --auth, gives each client a user of its own with
	// rw on its namespace, and fills the refused cell from a second run of the program
	// without credentials.
	auth bool
	// refusalWindow is how long the run without credentials may take to report its
	// first step before it is killed.
	refusalWindow time.Duration
	// refusalConcurrent starts the run without credentials beside the scenario (it ends
	// before the server restarts); otherwise it runs after the stop step.
	refusalConcurrent bool
}

// cellNames are the columns of the runner's matrix.
func (d *runner) cellNames() []string {
	if d.auth {
		return authCells
	}
	return cells
}

// logName is the prefix of a client's log files in the runner's matrix.
func (d *runner) logName(c Client) string {
	if d.auth {
		return c.Name + ".auth"
	}
	return c.Name
}

// run runs one client against a fresh server and returns its row.
func (d *runner) run(ctx context.Context, c Client) *Result {
	start := time.Now()
	r := newResult(c, d.cellNames())
	defer func() { r.Wall = time.Since(start) }()

	if _, err := os.Stat(progPath(d.root, c.Argv[0])); err != nil {
		r.Note = fmt.Sprintf("not built: run make compat (%s is missing)", c.Argv[0])
		r.failRest(r.Note)
		return r
	}

	dlog, err := os.Create(filepath.Join(d.logDir, d.logName(c)+".driver.log"))
	if err != nil {
		r.Note = err.Error()
		r.failRest(r.Note)
		return r
	}
	defer dlog.Close()
	var logMu sync.Mutex
	logf := func(format string, args ...any) {
		logMu.Lock()
		defer logMu.Unlock()
		fmt.Fprintf(dlog, "%s %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
	}

	base := ctx
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()

	httpPort, err := d.ports.pick(1000)
	if err == nil {
		var raftPort int
		raftPort, err = d.ports.pick(0)
		if err == nil {
			err = d.runWith(ctx, base, c, r, httpPort, raftPort, logf)
		}
	}
	if err != nil {
		r.Note = err.Error()
		logf("run ended: %v", err)
	}
	if r.Note != "" {
		r.failRest(r.Note)
	}
	return r
}

// runWith runs the scenario within ctx; the run without credentials of the auth
// matrix has a deadline of its own under base.
func (d *runner) runWith(ctx, base context.Context, c Client, r *Result, httpPort, raftPort int, logf func(string, ...any)) error {
	name := d.logName(c)
	dataDir, err := os.MkdirTemp("", "roster-compat-"+name+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dataDir)
	cacheDir := filepath.Join(d.logDir, name+".cache")
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return err
	}
	srv := &server{
		bin: d.roster, port: httpPort, raftPort: raftPort, dataDir: dataDir,
		logPath: filepath.Join(d.logDir, name+".server.log"), extra: d.extra, auth: d.auth,
		hc: &http.Client{Timeout: 2 * time.Second},
	}
	_ = os.Remove(srv.logPath)
	defer func() { _ = srv.stop(syscall.SIGTERM, stopTimeout) }()
	logf("server: %s %s", d.roster, strings.Join(srv.args(), " "))
	if err := srv.start(ctx); err != nil {
		return fmt.Errorf("server did not start: %v", err)
	}
	logf("server ready on %s", srv.url())

	var acl aclSetup
	if d.auth {
		if acl, err = setupACL(ctx, srv, c); err != nil {
			return fmt.Errorf("ACL set-up: %v", err)
		}
		logf("acl: administrator %s logged in; %s", adminUser, acl)
	}

	service := "compat-" + c.Name + "-" + d.runID
	env := clientEnv(c, httpPort, service, acl.User, acl.Password, cacheDir)
	cl, events, err := startClient(d.root, c.Argv, env,
		filepath.Join(d.logDir, name+".stdout.log"), filepath.Join(d.logDir, name+".stderr.log"))
	if err != nil {
		return fmt.Errorf("client did not start: %v", err)
	}
	defer cl.kill()
	logf("client started: %s (pid %d), service %s", strings.Join(c.Argv, " "), cl.pid(), service)

	// The refused cell: the same program without credentials, in a service of its own.
	var refusal chan *Cell
	refusalStarted := false
	startRefusal := func() {
		refusalStarted = true
		refusal = make(chan *Cell, 1)
		go func() { refusal <- d.refusal(base, c, srv, httpPort, service+"-refused", logf) }()
	}
	waitRefusal := func() {
		if refusal != nil {
			cell := <-refusal
			r.Cells["refused"] = cell
			refusal = nil
		}
	}
	if d.auth {
		if d.refusalConcurrent {
			startRefusal()
		}
		defer func() {
			// Whatever became of the scenario, the server is up until the deferred stop.
			if !refusalStarted {
				cl.kill()
				startRefusal()
			}
			waitRefusal()
		}()
	}

	w := newWaiter(srv, c, service, logf)
	stopped := false
	eof := false
	var exitState *os.ProcessState
	exitedAt := time.Time{}
	var drain <-chan time.Time
	for {
		var ev event
		select {
		case ev = <-events:
		case <-drain:
			return d.ended(r, exitState, stopped, logf)
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				r.Note = fmt.Sprintf("timed out after %v", d.timeout)
			} else {
				r.Note = "interrupted"
			}
			if stopped {
				r.Note += " after the stop step"
			}
			logf("%s", r.Note)
			return nil
		}
		switch {
		case ev.exited != nil:
			exitState = ev.exited
			exitedAt = time.Now()
			logf("client exited: %v", exitState)
			if eof {
				return d.ended(r, exitState, stopped, logf)
			}
			// Let the reader pass on what the client wrote before it exited.
			drain = time.After(2 * time.Second)
		case ev.eof:
			eof = true
			logf("client stdout closed")
			if !exitedAt.IsZero() {
				return d.ended(r, exitState, stopped, logf)
			}
		case ev.bad != "":
			logf("bad line: %s", ev.bad)
			r.Note = "bad JSON from client: " + ev.bad
			return nil
		case ev.msg != nil:
			m := ev.msg
			logf("client: %s", ev.line)
			switch {
			case m.Version != nil:
				if v := strings.TrimSpace(*m.Version); v != "" {
					r.Version = v
				}
			case m.Ephemeral != "":
				ip, port, err := splitAddr(m.Ephemeral)
				if err != nil {
					r.Note = fmt.Sprintf("protocol error: ephemeral %q: %v", m.Ephemeral, err)
					return nil
				}
				w.ip, w.port = ip, port
				logf("E is %s:%d (reported by the client)", ip, port)
			case m.Step != "":
				cell, ok := r.Cells[m.Step]
				// A driver cell may be reported by the client only as n/a: the client
				// has no E for the driver to watch.
				if !ok || (driverCells[m.Step] && (!m.NA || m.Step == "refused")) {
					r.Note = fmt.Sprintf("protocol error: unknown step %q", m.Step)
					return nil
				}
				if cell.Done {
					r.Note = fmt.Sprintf("protocol error: step %q reported twice", m.Step)
					return nil
				}
				if m.OK == nil {
					r.Note = fmt.Sprintf("protocol error: step %q without \"ok\"", m.Step)
					return nil
				}
				ms := int64(0)
				if m.MS != nil {
					ms = *m.MS
				}
				detail := m.Detail
				if !*m.OK && detail == "" {
					detail = "failed (no detail)"
				}
				if m.NA && !*m.OK {
					r.Note = fmt.Sprintf("protocol error: step %q is n/a and failed", m.Step)
					return nil
				}
				r.set(m.Step, *m.OK, ms, detail)
				r.Cells[m.Step].NA = m.NA
			case m.Wait != "":
				if !driverCells[m.Wait] {
					r.Note = fmt.Sprintf("protocol error: unknown wait %q", m.Wait)
					return nil
				}
				if r.Cells[m.Wait].Done {
					r.Note = fmt.Sprintf("protocol error: wait %q asked twice", m.Wait)
					return nil
				}
				var ok bool
				var ms int64
				var detail string
				switch m.Wait {
				case "keepalive":
					ok, ms, detail = w.keepalive(ctx)
				case "restart":
					// The run without credentials ends before the server restarts.
					waitRefusal()
					ok, ms, detail = w.restart(ctx)
				case "stop":
					cl.kill()
					ok, ms, detail = w.stop(ctx)
					stopped = true
				}
				logf("%s: ok=%v %d ms %s", m.Wait, ok, ms, detail)
				r.set(m.Wait, ok, ms, detail)
				if m.Wait != "stop" {
					answer, _ := json.Marshal(map[string]any{"ok": ok, "detail": detail})
					logf("driver: %s", answer)
					cl.answer(answer)
				} else if eof && !exitedAt.IsZero() {
					return d.ended(r, exitState, stopped, logf)
				}
			default:
				r.Note = "protocol error: a line with neither step, wait nor version: " + truncate(ev.line, 120)
				return nil
			}
		}
	}
}

// ended fills the cells a client that exited never reported.
func (d *runner) ended(r *Result, st *os.ProcessState, stopped bool, logf func(string, ...any)) error {
	if !stopped && st != nil && st.Success() && r.reportedAll() {
		// A client with nothing for the stop step (reported n/a) ends by itself.
		logf("client exited after reporting every cell")
		return nil
	}
	if stopped {
		if !r.Passed() {
			r.failRest("never reported by the client")
		}
		return nil
	}
	r.Note = fmt.Sprintf("client exited early (%v); see its log", st)
	return nil
}

// client is a running client program in its own process group.
type client struct {
	cmd   *exec.Cmd
	stdin *os.File
	mu    sync.Mutex
}

func (c *client) pid() int { return c.cmd.Process.Pid }

// kill sends SIGKILL to the client's whole process group.
func (c *client) kill() {
	_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
}

func (c *client) answer(line []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, _ = c.stdin.Write(append(line, '\n'))
}

// startClient starts argv (relative to root, cwd root) and returns the events of its
// stdout and its exit. stdout is copied to stdoutLog, stderr goes to stderrLog.
func startClient(root string, argv, env []string, stdoutLog, stderrLog string) (*client, <-chan event, error) {
	errf, err := os.Create(stderrLog)
	if err != nil {
		return nil, nil, err
	}
	outLog, err := os.Create(stdoutLog)
	if err != nil {
		errf.Close()
		return nil, nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		errf.Close()
		outLog.Close()
		return nil, nil, err
	}
	inR, inW, err := os.Pipe()
	if err != nil {
		errf.Close()
		outLog.Close()
		outR.Close()
		outW.Close()
		return nil, nil, err
	}
	prog := progPath(root, argv[0])
	cmd := exec.Command(prog, argv[1:]...)
	if fi, err := os.Stat(prog); err == nil && fi.Mode()&0o111 == 0 && strings.HasSuffix(prog, ".sh") {
		// A script checked out without its executable bit still runs.
		cmd = exec.Command("bash", append([]string{prog}, argv[1:]...)...)
	}
	cmd.Dir = root
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, errf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	inR.Close()
	outW.Close()
	errf.Close()
	if err != nil {
		outLog.Close()
		outR.Close()
		inW.Close()
		return nil, nil, err
	}
	events := make(chan event, 256)
	go func() {
		defer outLog.Close()
		defer outR.Close()
		br := bufio.NewReaderSize(outR, 64<<10)
		for {
			line, err := br.ReadBytes('\n')
			if len(line) > 0 {
				fmt.Fprintf(outLog, "%s %s", time.Now().Format("15:04:05.000"), line)
				if len(line) == 0 || line[len(line)-1] != '\n' {
					fmt.Fprintln(outLog)
				}
				if ev, ok := parseLine(line); ok {
					events <- ev
				}
			}
			if err != nil {
				events <- event{eof: true}
				return
			}
		}
	}()
	go func() {
		_ = cmd.Wait()
		inW.Close()
		events <- event{exited: cmd.ProcessState}
	}()
	return &client{cmd: cmd, stdin: inW}, events, nil
}

// progPath is a client program's path: argv[0] relative to the repository root.
func progPath(root, prog string) string {
	if filepath.IsAbs(prog) {
		return prog
	}
	return filepath.Join(root, prog)
}

// parseLine turns one stdout line into an event. Lines that do not start with '{' are
// the client's log; a line that does must be one JSON object.
func parseLine(line []byte) (event, bool) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 || line[0] != '{' {
		return event{}, false
	}
	var m message
	dec := json.NewDecoder(bytes.NewReader(line))
	if err := dec.Decode(&m); err != nil {
		return event{bad: fmt.Sprintf("%s (%v)", truncate(string(line), 120), err)}, true
	}
	if dec.More() {
		return event{bad: fmt.Sprintf("%s (more than one JSON value)", truncate(string(line), 120))}, true
	}
	return event{msg: &m, line: string(line)}, true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
