package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// defaultRefusalWindow is how long the run without credentials may take to report its
// first step.
const defaultRefusalWindow = 20 * time.Second

// clientEnv is a client program's environment (compat/README.md); username and
// password are empty when the client must use none.
func clientEnv(c Client, httpPort int, service, username, password, cacheDir string) []string {
	return append(os.Environ(),
		"ROSTER_SERVER_ADDR=127.0.0.1:"+strconv.Itoa(httpPort),
		"ROSTER_NAMESPACE="+c.Namespace,
		"ROSTER_GROUP="+c.Group,
		"ROSTER_SERVICE="+service,
		// Nacos 2.x fixes a service's kind with its first instance, so P cannot join
		// E's service; it goes to a service of its own.
		"ROSTER_PERSISTENT_SERVICE="+service+"-persistent",
		"ROSTER_HEARTBEAT_INTERVAL_MS="+strconv.FormatInt(heartbeatInterval.Milliseconds(), 10),
		"ROSTER_HEARTBEAT_TIMEOUT_MS="+strconv.FormatInt(heartbeatTimeout.Milliseconds(), 10),
		"ROSTER_DELETE_TIMEOUT_MS="+strconv.FormatInt(ipDeleteTimeout.Milliseconds(), 10),
		"ROSTER_USERNAME="+username,
		"ROSTER_PASSWORD="+password,
		"ROSTER_CACHE_DIR="+cacheDir,
		// Set (to 1) only for the run without credentials; os.Environ's value, if any,
		// is overridden either way.
		"ROSTER_EXPECT_REFUSAL=",
	)
}

// refusal starts the client program again against srv without credentials, in a
// service of its own, and judges the refused cell on the server's state: it passes
// when the server never lists that run's E, whatever the client printed.
func (d *runner) refusal(ctx context.Context, c Client, srv *server, httpPort int, service string, logf func(string, ...any)) *Cell {
	name := d.logName(c) + ".refused"
	window := d.refusalWindow
	if window <= 0 {
		window = defaultRefusalWindow
	}
	ctx, cancel := context.WithTimeout(ctx, window+30*time.Second)
	defer cancel()
	cacheDir := filepath.Join(d.logDir, name+".cache")
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return &Cell{Done: true, Detail: err.Error()}
	}
	env := append(clientEnv(c, httpPort, service, "", "", cacheDir), "ROSTER_EXPECT_REFUSAL=1")
	stderrLog := filepath.Join(d.logDir, name+".stderr.log")
	cl, events, err := startClient(d.root, c.Argv, env, filepath.Join(d.logDir, name+".stdout.log"), stderrLog)
	if err != nil {
		return &Cell{Done: true, Detail: "the run without credentials did not start: " + err.Error()}
	}
	defer cl.kill()
	logf("refusal: client started without credentials (pid %d), service %s", cl.pid(), service)
	// Any instance in the run's own service counts: a client that registers its own
	// address has not said it yet when it is refused.
	w := newWaiter(srv, c, service, logf)
	w.ip, w.port = "", 0
	cell, exited := judgeRefusal(ctx, events, w.lookupE, cl.kill, window, stderrLog)
	logf("refusal: ok=%v %d ms %s", cell.OK, cell.MS, cell.Detail)
	if !exited {
		// Let the reader write what the killed program left on stdout to its log.
		t := time.NewTimer(5 * time.Second)
		defer t.Stop()
	drain:
		for {
			select {
			case ev := <-events:
				if ev.exited != nil {
					break drain
				}
			case <-t.C:
				break drain
			}
		}
	}
	return cell
}

// refusalPoll is how often the server is asked for E during the run without
// credentials.
const refusalPoll = 200 * time.Millisecond

// judgeRefusal watches a client program run without credentials: until its first step
// line, its exit or window, it polls lookup for E; then it asks once more (a gRPC
// registration would go with its connection), kills the program and fills the cell.
// It reports whether the program had exited by itself.
func judgeRefusal(ctx context.Context, events <-chan event, lookup func(context.Context) (instance, error),
	kill func(), window time.Duration, stderrLog string) (*Cell, bool) {
	start := time.Now()
	var seenAt time.Duration = -1
	polls := 0
	lastErr := ""
	check := func() bool {
		e, err := lookup(ctx)
		if err != nil {
			lastErr = err.Error()
			return false
		}
		polls++
		if e.present && seenAt < 0 {
			seenAt = time.Since(start)
		}
		return true
	}
	check()

	deadline := time.NewTimer(window)
	defer deadline.Stop()
	tick := time.NewTicker(refusalPoll)
	defer tick.Stop()
	reported := ""
	exited, eof := false, false
	var exitState *os.ProcessState
	var drain <-chan time.Time
	exitText := func() string {
		return fmt.Sprintf("client exited (%v) before any step", exitState) + logHint(stderrLog)
	}
wait:
	for {
		select {
		case ev := <-events:
			switch {
			case ev.msg != nil && ev.msg.Step != "":
				reported = "client reported: " + stepText(ev.msg)
				break wait
			case ev.exited != nil:
				// The exit can overtake the last lines on stdout: judge at stdout's end.
				exited, exitState = true, ev.exited
				if eof {
					reported = exitText()
					break wait
				}
				drain = time.After(2 * time.Second)
			case ev.eof:
				eof = true
				if exited {
					reported = exitText()
					break wait
				}
			}
		case <-drain:
			reported = exitText()
			break wait
		case <-deadline.C:
			reported = fmt.Sprintf("client reported no step within %v", window) + logHint(stderrLog)
			break wait
		case <-tick.C:
			check()
		case <-ctx.Done():
			reported = "interrupted: " + ctx.Err().Error()
			break wait
		}
	}
	until := time.Since(start)

	// One answer from the server after the step is needed to judge; a lookup can fail
	// while the server is busy, so retry for a few seconds.
	final := false
	retry := time.NewTicker(100 * time.Millisecond)
	defer retry.Stop()
	stop := time.Now().Add(3 * time.Second)
	for !final && ctx.Err() == nil {
		if final = check(); final || time.Now().After(stop) {
			break
		}
		<-retry.C
	}
	kill()

	cell := &Cell{Done: true, MS: until.Milliseconds()}
	switch {
	case seenAt >= 0:
		cell.Detail = fmt.Sprintf("E was listed %.1fs after the start without credentials; %s", seenAt.Seconds(), reported)
	case !final:
		cell.Detail = fmt.Sprintf("could not read the server's list after the client's answer (%s); %s", lastErr, reported)
	default:
		cell.OK = true
		cell.Detail = fmt.Sprintf("E never listed (%d polls); %s", polls, reported)
	}
	return cell, exited
}

// stepText is a step line as the refused cell shows it.
func stepText(m *message) string {
	switch {
	case m.OK == nil:
		return m.Step + " without ok"
	case *m.OK && m.Detail != "":
		return m.Step + " ok (" + m.Detail + ")"
	case *m.OK:
		return m.Step + " ok"
	case m.Detail == "":
		return m.Step + " failed"
	default:
		return m.Detail
	}
}

// refusalTexts are Nacos' answers to a request without (valid) credentials, as clients
// log them.
var refusalTexts = []string{"user not found!", "token invalid!", "token expired!", "authorization failed!", "403"}

// logHint quotes a client's log for the refused cell: its last line that shows a
// refusal, else its last line.
func logHint(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	last, refusal := "", ""
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" {
			continue
		}
		last = l
		for _, t := range refusalTexts {
			if strings.Contains(l, t) {
				refusal = l
				break
			}
		}
	}
	switch {
	case refusal != "":
		return "; its log: " + truncate(refusal, 160)
	case last != "":
		return "; its last log line: " + truncate(last, 160)
	}
	return ""
}
