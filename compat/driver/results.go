package main

import (
	"fmt"
	"strings"
	"time"
)

// Report is what RESULTS.md shows.
type Report struct {
	Date      time.Time
	Roster    string
	Machine   string
	Matrices  []Matrix
	Wall      time.Duration
	Parallel  int
	Subset    bool
	AllCount  int
	TimeoutPC time.Duration
}

// Matrix is one table: every client with auth off, or with auth on.
type Matrix struct {
	Auth    bool
	Results []*Result
}

// matrixLabel is a matrix's short name in the driver's output.
func matrixLabel(auth bool) string {
	if auth {
		return "auth on"
	}
	return "auth off"
}

// Title is the matrix's heading in RESULTS.md.
func (m Matrix) Title() string {
	if m.Auth {
		return "auth on (credentials in the client's config)"
	}
	return "auth off"
}

// Passed counts the clients that passed every cell.
func (m Matrix) Passed() int {
	n := 0
	for _, r := range m.Results {
		if r.Passed() {
			n++
		}
	}
	return n
}

// Busy is the sum of the clients' wall times.
func (m Matrix) Busy() time.Duration {
	var d time.Duration
	for _, r := range m.Results {
		d += r.Wall
	}
	return d
}

func (m Matrix) names() []string {
	if m.Auth {
		return authCells
	}
	return cells
}

// detailCells show their detail beside "pass".
var detailCells = map[string]bool{"subscribe": true, "restart": true, "stop": true, "refused": true}

// cellText renders one cell; withDetail shows every pass detail.
func cellText(c *Cell, withDetail bool) string {
	switch {
	case !c.Done:
		return "FAIL: not run"
	case !c.OK:
		return "FAIL: " + oneLine(c.Detail, 160)
	case c.NA:
		return "n/a: " + oneLine(c.Detail, 160)
	case withDetail && c.Detail != "":
		return fmt.Sprintf("pass %d ms, %s", c.MS, oneLine(c.Detail, 160))
	default:
		return fmt.Sprintf("pass %d ms", c.MS)
	}
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	return truncate(s, n)
}

func mdEscape(s string) string {
	return strings.ReplaceAll(s, "|", `\|`)
}

// Markdown renders RESULTS.md. Rows follow the client table's order.
func (r Report) Markdown() string {
	var b strings.Builder
	b.WriteString("# Roster compatibility matrix\n\n")
	b.WriteString("Written by `make compat` (compat/driver); the scenario and the client programs are described in [README.md](README.md).\n\n")
	fmt.Fprintf(&b, "- Date: %s\n", r.Date.Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(&b, "- Roster: %s\n", mdEscape(r.Roster))
	fmt.Fprintf(&b, "- Machine: %s\n", r.Machine)
	var names []string
	if len(r.Matrices) > 0 {
		for _, res := range r.Matrices[0].Results {
			names = append(names, res.Client.Name)
		}
	}
	if r.Subset {
		fmt.Fprintf(&b, "- Clients: %s only (`--only`; %d in the full matrix)\n", strings.Join(names, ", "), r.AllCount)
	}
	for _, m := range r.Matrices {
		fmt.Fprintf(&b, "- %s: %d of %d clients passed every cell\n", m.Title(), m.Passed(), len(m.Results))
	}
	fmt.Fprintf(&b, "- Total wall time: %s (%d client runs at once, at most %s each", r.Wall.Round(time.Second), r.Parallel, r.TimeoutPC)
	if len(r.Matrices) > 1 {
		b.WriteString("; the matrices run side by side")
	}
	b.WriteString(")\n")

	for _, m := range r.Matrices {
		fmt.Fprintf(&b, "\n## %s\n\n", m.Title())
		if m.Auth {
			b.WriteString("Every server runs with `--auth`; the client logs in as a user of its own whose role may read and write " +
				"its namespace only (`ROSTER_USERNAME`, `ROSTER_PASSWORD` in the client's own configuration). " +
				"`refused`: the same program again, without credentials, in a service of its own.\n\n")
		}
		b.WriteString("| client | language | version |")
		for _, c := range m.names() {
			fmt.Fprintf(&b, " %s |", c)
		}
		b.WriteString("\n|---|---|---|")
		for range m.names() {
			b.WriteString("---|")
		}
		b.WriteString("\n")
		for _, res := range m.Results {
			fmt.Fprintf(&b, "| %s | %s | %s |", res.Client.Name, mdEscape(res.Client.Language), mdEscape(oneLine(res.Version, 80)))
			for _, c := range m.names() {
				fmt.Fprintf(&b, " %s |", mdEscape(cellText(res.Cells[c], detailCells[c])))
			}
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "\nClient run time, summed: %s.\n\n", m.Busy().Round(time.Second))

		fmt.Fprintf(&b, "### Details (%s)\n\n", matrixLabel(m.Auth))
		for _, res := range m.Results {
			fmt.Fprintf(&b, "- **%s** (%s, %s/%s, %s):", res.Client.Name, strings.Join(res.Client.Argv, " "),
				res.Client.Namespace, res.Client.Group, res.Wall.Round(100*time.Millisecond))
			var parts []string
			for _, c := range m.names() {
				cell := res.Cells[c]
				if cell.Done && cell.OK && cell.Detail != "" {
					na := ""
					if cell.NA {
						na = "n/a: "
					}
					parts = append(parts, fmt.Sprintf("%s: %s%s", c, na, oneLine(cell.Detail, 200)))
				}
			}
			if len(parts) == 0 {
				b.WriteString(" no details.\n")
			} else {
				b.WriteString(" " + mdEscape(strings.Join(parts, "; ")) + ".\n")
			}
		}
	}

	b.WriteString(`
## Legend

- ` + "`pass N ms`" + `: the step succeeded; N is its duration as the client measured it (keepalive,
  restart and stop: as the driver measured it). Subscribe adds how the change arrived (` + "`push (udp)`" + `,
  ` + "`push (grpc)`" + ` or ` + "`poll`" + `); restart adds how long after the server was ready E was back; stop
  adds when E turned unhealthy and was removed after the client was killed.
- ` + "`FAIL: reason`" + `: the step failed, or never ran because the client exited early, printed bad
  JSON, was not built or timed out; the reason says which. Logs of every client and server are kept in
  the directory the driver prints.
- ` + "`n/a: reason`" + `: the client has no such operation (e.g. Dubbo registers no persistent
  instance); the reason says what it does instead. It counts as passed.
- keepalive: E listed healthy at every poll (200 ms) for 3 × the heartbeat timeout (server timings:
  beat 1 s, unhealthy 3 s, removed 6 s).
- P is registered in a service of its own, ` + "`ROSTER_PERSISTENT_SERVICE`" + ` (E's service name +
  ` + "`-persistent`" + `): Nacos 2.x fixes a service's kind with its first instance, so a persistent
  instance in E's ephemeral service is refused.
- auth on: the driver bootstraps an administrator on each fresh server, creates the user
  ` + "`compat-<client>`" + ` (password generated by the server), a role of the same name bound to it, and a
  grant ` + "`rw`" + ` on exactly the client's namespace (` + "`public`" + ` for clients in the default one). The
  driver's own polling carries the administrator's token; the ACL survives the restart (it is in Raft).
- refused: the same client program, started again against the same server with empty
  ` + "`ROSTER_USERNAME`" + `/` + "`ROSTER_PASSWORD`" + `, ` + "`ROSTER_EXPECT_REFUSAL=1`" + ` and a service of its own, is killed
  after its first step line (or 20 s); it passes if the server never listed an instance in that run's service, whatever the
  client printed. N is the time until the step line; the detail says what the client reported.
`)
	return b.String()
}
