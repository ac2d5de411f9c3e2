// Command roster is the one Roster binary: the server and the CLI that talks to it.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

const usage = `roster: a Nacos-compatible service registry

Usage:
  roster server [flags]                      run a node (no flags: single node on 127.0.0.1:8848)
  roster instance register|deregister|list   manage instances through the HTTP API
  roster service list|get                    read services through the HTTP API
  roster namespace list|create|update|delete manage namespaces and their quotas
  roster operator raft list-peers|remove-peer|transfer-leader
                                             manage the cluster's Raft membership
  roster snapshot save|inspect|restore FILE  back up and restore all persistent state
  roster import nacos --from URL             copy persistent services from a running Nacos
  roster export FILE | roster import FILE    Roster's own data as readable JSON
  roster acl bootstrap|login|user|role|grant|rotate-key
                                             manage users, roles, grants and token keys
  roster health [--addr URL]                 exit 0 when the node answers /readyz with 200
  roster version                             print the version

Run 'roster <command> -h' for the flags of a command.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run dispatches a subcommand and returns the process exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "server":
		return runServer(ctx, args[1:], stdout, stderr)
	case "instance":
		return runInstance(ctx, args[1:], stdout, stderr)
	case "service":
		return runService(ctx, args[1:], stdout, stderr)
	case "namespace":
		return runNamespace(ctx, args[1:], stdout, stderr)
	case "operator":
		return runOperator(ctx, args[1:], stdout, stderr)
	case "snapshot":
		return runSnapshot(ctx, args[1:], stdout, stderr)
	case "import":
		return runImport(ctx, args[1:], stdout, stderr)
	case "export":
		return runExport(ctx, args[1:], stdout, stderr)
	case "acl":
		return runACL(ctx, args[1:], stdout, stderr)
	case "health":
		return runHealth(ctx, args[1:], stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintf(stdout, "roster %s\n", version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "roster: unknown command %q\n", args[0])
		fmt.Fprint(stderr, usage)
		return 2
	}
}
