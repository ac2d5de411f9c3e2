package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/roster-registry/roster/client"
)

// Exit statuses of the client subcommands.
const (
	exitOK    = 0
	exitError = 1 // the request failed: the server refused it or could not be reached
	exitUsage = 2 // the command line is wrong
)

// clientFlags are the flags every client subcommand has.
type clientFlags struct {
	addr   string
	output string
	// Credentials for a server with auth on: a token, or a username and password to
	// log in with. The environment is the better place for them (ps shows arguments).
	token    string
	username string
	password string
}

// subcommand is one leaf command such as "instance register".
type subcommand struct {
	name  string // "instance register"
	args  string // positional synopsis after [flags], usually empty
	short string // one line: what it does
	fs    *flag.FlagSet
	cf    clientFlags
}

// newSubcommand returns a subcommand whose flag set reports to stderr and carries
// --addr and -o.
func newSubcommand(name, short string, stderr io.Writer) *subcommand {
	return newSubcommandLogin(name, short, "username", "password", stderr)
}

// newSubcommandLogin is newSubcommand with Roster's login flags under other names, for a
// command whose --username and --password are another server's (roster import nacos).
func newSubcommandLogin(name, short, userFlag, passFlag string, stderr io.Writer) *subcommand {
	sc := &subcommand{name: name, short: short}
	sc.fs = flag.NewFlagSet("roster "+name, flag.ContinueOnError)
	sc.fs.SetOutput(stderr)
	addr := os.Getenv("ROSTER_ADDR")
	if addr == "" {
		addr = client.DefaultAddr
	}
	sc.fs.StringVar(&sc.cf.addr, "addr", addr, "server `URL` (env ROSTER_ADDR)")
	sc.fs.StringVar(&sc.cf.output, "o", "table", "output `format`: table or json")
	sc.fs.StringVar(&sc.cf.token, "token", os.Getenv("ROSTER_TOKEN"), "access `token` for a server with auth on (env ROSTER_TOKEN)")
	sc.fs.StringVar(&sc.cf.username, userFlag, os.Getenv("ROSTER_USERNAME"), "log in to Roster as this `user` first (env ROSTER_USERNAME)")
	sc.fs.StringVar(&sc.cf.password, passFlag, os.Getenv("ROSTER_PASSWORD"), "the Roster user's `password` (env ROSTER_PASSWORD)")
	sc.fs.Usage = func() {
		fmt.Fprintf(sc.fs.Output(), "Usage: roster %s [flags]%s\n\n%s\n\nFlags:\n", sc.name, sc.args, sc.short)
		sc.fs.PrintDefaults()
	}
	return sc
}

// parse parses args. When it returns ok=false the command must exit with code.
func (sc *subcommand) parse(args []string, stderr io.Writer) (code int, ok bool) {
	if err := sc.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, false
		}
		// The flag package has already printed the error and the usage.
		return exitUsage, false
	}
	if sc.fs.NArg() > 0 {
		return sc.usageError(stderr, fmt.Sprintf("unexpected argument %q", sc.fs.Arg(0))), false
	}
	if sc.cf.output != "table" && sc.cf.output != "json" {
		return sc.usageError(stderr, fmt.Sprintf("-o %q: want table or json", sc.cf.output)), false
	}
	return exitOK, true
}

// require reports a usage error for the first of the named flags that was left blank.
func (sc *subcommand) require(stderr io.Writer, names ...string) (code int, ok bool) {
	set := map[string]bool{}
	sc.fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for _, n := range names {
		if !set[n] || strings.TrimSpace(sc.fs.Lookup(n).Value.String()) == "" {
			return sc.usageError(stderr, "--"+n+" is required"), false
		}
	}
	return exitOK, true
}

// usageError prints one line and returns exitUsage.
func (sc *subcommand) usageError(stderr io.Writer, msg string) int {
	fmt.Fprintf(stderr, "roster %s: %s (see 'roster %s -h')\n", sc.name, msg, sc.name)
	return exitUsage
}

// client returns a client of --addr carrying the command's credentials: the token, or
// a token from logging in with the username and password.
func (sc *subcommand) client() (*client.Client, error) {
	c, err := client.New(sc.cf.addr, client.WithToken(sc.cf.token))
	if err != nil || sc.cf.token != "" || sc.cf.username == "" {
		return c, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), client.DefaultTimeout)
	defer cancel()
	if _, err := c.Login(ctx, sc.cf.username, sc.cf.password); err != nil {
		return nil, fmt.Errorf("log in as %s: %w", sc.cf.username, err)
	}
	return c, nil
}

func (sc *subcommand) json() bool { return sc.cf.output == "json" }

// connect parses args, checks that the required flags are set and makes the client of
// --addr; a client that cannot be made is a usage error of --addr. When it returns
// ok=false the command must exit with code.
func (sc *subcommand) connect(args []string, stderr io.Writer, required ...string) (c *client.Client, code int, ok bool) {
	return sc.connectOr(args, stderr, func(err error) int { return sc.usageError(stderr, "--addr: "+err.Error()) }, required...)
}

// connectOr is connect with the answer to a client that cannot be made.
func (sc *subcommand) connectOr(args []string, stderr io.Writer, clientFailed func(error) int, required ...string) (c *client.Client, code int, ok bool) {
	if code, ok := sc.parse(args, stderr); !ok {
		return nil, code, false
	}
	if code, ok := sc.require(stderr, required...); !ok {
		return nil, code, false
	}
	c, err := sc.client()
	if err != nil {
		return nil, clientFailed(err), false
	}
	return c, exitOK, true
}

// printJSON prints v when the output is JSON; done says it did (or failed to), and the
// command exits with code.
func (sc *subcommand) printJSON(stdout, stderr io.Writer, v any) (code int, done bool) {
	if !sc.json() {
		return exitOK, false
	}
	if err := writeJSON(stdout, v); err != nil {
		return fail(stderr, err), true
	}
	return exitOK, true
}

// answer prints a command's result: v as JSON with -o json, else what text writes
// (the table form). It returns the command's exit code.
func (sc *subcommand) answer(stdout, stderr io.Writer, v any, text func(w io.Writer) error) int {
	if code, done := sc.printJSON(stdout, stderr, v); done {
		return code
	}
	if err := text(stdout); err != nil {
		return fail(stderr, err)
	}
	return exitOK
}

// fail prints err as one line and returns exitError. Server answers already read
// "roster: <status>: <body>".
func fail(stderr io.Writer, err error) int {
	var ce *client.Error
	if errors.As(err, &ce) {
		fmt.Fprintln(stderr, ce.Error())
	} else {
		fmt.Fprintln(stderr, "roster: "+strings.Join(strings.Fields(err.Error()), " "))
	}
	return exitError
}

// group runs one of a command's subcommands, e.g. "instance list".
func group(name, synopsis string, args []string, stdout, stderr io.Writer, subs map[string]func([]string) int) int {
	usage := func(w io.Writer) {
		fmt.Fprintf(w, "Usage: roster %s <command> [flags]\n\nCommands:\n%s\nRun 'roster %s <command> -h' for the flags of a command.\n", name, synopsis, name)
	}
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "-h", "--help", "help":
		usage(stdout)
		return exitOK
	}
	run, ok := subs[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "roster %s: unknown command %q (see 'roster %s -h')\n", name, args[0], name)
		return exitUsage
	}
	return run(args[1:])
}

// parseMetadata reads --metadata: "k=v,k=v" or a JSON object of strings. Blank is none.
func parseMetadata(s string) (map[string]string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	if strings.HasPrefix(s, "{") {
		var md map[string]string
		if err := json.Unmarshal([]byte(s), &md); err != nil {
			return nil, fmt.Errorf("--metadata: not a JSON object of strings: %v", err)
		}
		return md, nil
	}
	md := map[string]string{}
	for _, pair := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(pair, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("--metadata: %q is not k=v (want k=v,k=v)", pair)
		}
		md[k] = strings.TrimSpace(v)
	}
	return md, nil
}

// formatMetadata prints metadata as sorted k=v pairs, "-" when empty.
func formatMetadata(md map[string]string) string {
	if len(md) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(md))
	for k := range md {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + md[k]
	}
	return strings.Join(parts, ",")
}

// writeJSON prints v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table writes rows as aligned columns; the first row is the header.
func table(w io.Writer, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}
