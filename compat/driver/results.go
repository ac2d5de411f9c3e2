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
	Results   []*Result
	Wall      time.Duration
	Parallel  int
	Subset    bool
	AllCount  int
	TimeoutPC time.Duration
}

// detailCells show their detail beside "pass".
var detailCells = map[string]bool{"subscribe": true, "restart": true, "stop": true}

// cellText renders one cell; withDetail shows every pass detail.
func cellText(c *Cell, withDetail bool) string {
	switch {
	case !c.Done:
		return "FAIL: not run"
	case !c.OK:
		return "FAIL: " + oneLine(c.Detail, 160)
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
	passed := 0
	var names []string
	for _, res := range r.Results {
		if res.Passed() {
			passed++
		}
		names = append(names, res.Client.Name)
	}
	if r.Subset {
		fmt.Fprintf(&b, "- Clients: %s only (`--only`; %d in the full matrix)\n", strings.Join(names, ", "), r.AllCount)
	}
	fmt.Fprintf(&b, "- Passed: %d of %d clients\n\n", passed, len(r.Results))

	b.WriteString("| client | language | version |")
	for _, c := range cells {
		fmt.Fprintf(&b, " %s |", c)
	}
	b.WriteString("\n|---|---|---|")
	for range cells {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for _, res := range r.Results {
		fmt.Fprintf(&b, "| %s | %s | %s |", res.Client.Name, mdEscape(res.Client.Language), mdEscape(oneLine(res.Version, 80)))
		for _, c := range cells {
			fmt.Fprintf(&b, " %s |", mdEscape(cellText(res.Cells[c], detailCells[c])))
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "\nTotal wall time: %s (%d clients at once, at most %s each).\n\n",
		r.Wall.Round(time.Second), r.Parallel, r.TimeoutPC)

	b.WriteString("## Details\n\n")
	for _, res := range r.Results {
		fmt.Fprintf(&b, "- **%s** (%s, %s/%s, %s):", res.Client.Name, strings.Join(res.Client.Argv, " "),
			res.Client.Namespace, res.Client.Group, res.Wall.Round(100*time.Millisecond))
		var parts []string
		for _, c := range cells {
			cell := res.Cells[c]
			if cell.Done && cell.OK && cell.Detail != "" {
				parts = append(parts, fmt.Sprintf("%s: %s", c, oneLine(cell.Detail, 200)))
			}
		}
		if len(parts) == 0 {
			b.WriteString(" no details.\n")
		} else {
			b.WriteString(" " + mdEscape(strings.Join(parts, "; ")) + ".\n")
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
- keepalive: E listed healthy at every poll (200 ms) for 3 × the heartbeat timeout (server timings:
  beat 1 s, unhealthy 3 s, removed 6 s).
- P is registered in a service of its own, ` + "`ROSTER_PERSISTENT_SERVICE`" + ` (E's service name +
  ` + "`-persistent`" + `): Nacos 2.x fixes a service's kind with its first instance, so a persistent
  instance in E's ephemeral service is refused.
`)
	return b.String()
}
