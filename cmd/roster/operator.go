package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
)

const operatorSynopsis = `  raft list-peers        show the Raft configuration and the leader
  raft remove-peer       remove a server from the configuration (--id)
  raft transfer-leader   hand leadership to another voter
`

// runOperator runs "roster operator raft list-peers|remove-peer|transfer-leader".
func runOperator(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "raft" {
		args = args[1:]
	} else if len(args) > 0 && args[0] != "-h" && args[0] != "--help" && args[0] != "help" {
		fmt.Fprintf(stderr, "roster operator: unknown command %q (see 'roster operator -h')\n", args[0])
		return exitUsage
	}
	return group("operator raft", operatorSynopsis, args, stdout, stderr, map[string]func([]string) int{
		"list-peers":      func(a []string) int { return raftListPeers(ctx, a, stdout, stderr) },
		"remove-peer":     func(a []string) int { return raftRemovePeer(ctx, a, stdout, stderr) },
		"transfer-leader": func(a []string) int { return raftTransferLeader(ctx, a, stdout, stderr) },
	})
}

func raftListPeers(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	sc := newSubcommand("operator raft list-peers", "Show the Raft configuration as the node at --addr sees it.", stderr)
	c, code, ok := sc.connect(args, stderr)
	if !ok {
		return code
	}
	st, err := c.RaftState(ctx)
	if err != nil {
		return fail(stderr, err)
	}
	return sc.answer(stdout, stderr, st, func(w io.Writer) error {
		rows := [][]string{{"ID", "RAFT ADDRESS", "HTTP ADDRESS", "STATE", "VOTER"}}
		for _, s := range st.Servers {
			state := "follower"
			if s.Leader {
				state = "leader"
			}
			rows = append(rows, []string{s.ID, s.RaftAddr, dash(s.HTTPAddr), state, strconv.FormatBool(s.Voter)})
		}
		if err := table(w, rows); err != nil {
			return err
		}
		_, err := fmt.Fprintf(w, "term %d, commit index %d, applied index %d\n", st.Term, st.CommitIndex, st.AppliedIndex)
		return err
	})
}

func raftRemovePeer(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	sc := newSubcommand("operator raft remove-peer", "Remove a server from the Raft configuration.", stderr)
	id := sc.fs.String("id", "", "node `id` to remove")
	c, code, ok := sc.connect(args, stderr, "id")
	if !ok {
		return code
	}
	if err := c.RemovePeer(ctx, *id); err != nil {
		return fail(stderr, err)
	}
	fmt.Fprintf(stdout, "removed %s\n", *id)
	return exitOK
}

func raftTransferLeader(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	sc := newSubcommand("operator raft transfer-leader", "Hand leadership to another voter.", stderr)
	c, code, ok := sc.connect(args, stderr)
	if !ok {
		return code
	}
	if err := c.TransferLeader(ctx); err != nil {
		return fail(stderr, err)
	}
	st, err := c.RaftState(ctx)
	if err == nil && st.Leader != "" {
		fmt.Fprintf(stdout, "leadership transferred; leader is now %s\n", st.Leader)
	} else {
		fmt.Fprintln(stdout, "leadership transferred")
	}
	return exitOK
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
