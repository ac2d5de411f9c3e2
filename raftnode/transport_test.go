package raftnode

import (
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// heartbeat is an AppendEntries request the transport recognises as a heartbeat (its
// fast path, run on the connection's goroutine).
func heartbeat(from raft.ServerAddress) *raft.AppendEntriesRequest {
	return &raft.AppendEntriesRequest{RPCHeader: raft.RPCHeader{Addr: []byte(from), ID: []byte("leader")}, Term: 7}
}

// TestFenceWaitsForTheHeartbeatInFlight: a heartbeat already inside Raft's handler when
// the node shuts down holds fence until it returns (so the stable store it may write
// is still open), and heartbeats after the fence never reach the handler.
func TestFenceWaitsForTheHeartbeatInFlight(t *testing.T) {
	server := newGuardedTransport(plainTransport(t))
	defer server.Close()
	client := plainTransport(t)
	defer client.Close()

	entered := make(chan struct{}, 10)
	release := make(chan struct{})
	server.SetHeartbeatHandler(func(rpc raft.RPC) {
		entered <- struct{}{}
		<-release
		rpc.Respond(&raft.AppendEntriesResponse{Term: 7, Success: true}, nil)
	})

	first := make(chan error, 1)
	go func() {
		var resp raft.AppendEntriesResponse
		first <- client.AppendEntries("server", server.LocalAddr(), heartbeat(client.LocalAddr()), &resp)
	}()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the heartbeat never reached the handler")
	}

	fenced := make(chan struct{})
	go func() {
		server.fence()
		close(fenced)
	}()
	// The handler is blocked on release: fence must not return meanwhile. A short
	// observation window; fence returning inside it is the bug.
	select {
	case <-fenced:
		t.Fatal("fence returned while a heartbeat was still inside the handler")
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	select {
	case <-fenced:
	case <-time.After(10 * time.Second):
		t.Fatal("fence did not return after the heartbeat in flight finished")
	}
	if err := <-first; err != nil {
		t.Fatalf("the heartbeat in flight: %v, want its answer", err)
	}

	var resp raft.AppendEntriesResponse
	if err := client.AppendEntries("server", server.LocalAddr(), heartbeat(client.LocalAddr()), &resp); err == nil {
		t.Fatal("a heartbeat after the fence was answered without an error")
	}
	select {
	case <-entered:
		t.Fatal("a heartbeat after the fence reached Raft's handler")
	default:
	}
}
