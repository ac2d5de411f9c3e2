package raftnode

import (
	"sync"

	"github.com/hashicorp/raft"
)

// guardedTransport is the network transport with a fence around Raft's heartbeat
// handler. The transport calls that handler on its own connection goroutine, outside
// every goroutine raft.Shutdown waits for: a heartbeat that passed Raft's shutdown check
// just before Shutdown can still be inside the handler, about to save a newer term to
// the stable store, after Shutdown returned. Were the store closed then, Raft panics
// ("failed to save current term: database not open", seen in TestClusterOfThree under
// load). fence waits for such a handler to return and turns later heartbeats away, so
// the store is closed only once nothing can reach it through the transport.
type guardedTransport struct {
	*raft.NetworkTransport

	mu     sync.RWMutex // held shared by each heartbeat being handled
	fenced bool
}

func newGuardedTransport(t *raft.NetworkTransport) *guardedTransport {
	return &guardedTransport{NetworkTransport: t}
}

// SetHeartbeatHandler registers fn behind the fence.
func (t *guardedTransport) SetHeartbeatHandler(fn func(rpc raft.RPC)) {
	if fn == nil {
		t.NetworkTransport.SetHeartbeatHandler(nil)
		return
	}
	t.NetworkTransport.SetHeartbeatHandler(func(rpc raft.RPC) {
		t.mu.RLock()
		defer t.mu.RUnlock()
		if t.fenced {
			rpc.Respond(nil, raft.ErrRaftShutdown)
			return
		}
		fn(rpc)
	})
}

// fence waits until no heartbeat is being handled and answers every later one with
// raft.ErrRaftShutdown without handing it to Raft.
func (t *guardedTransport) fence() {
	t.mu.Lock()
	t.fenced = true
	t.mu.Unlock()
}
