package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
)

// RaftServer is one member of the Raft configuration.
type RaftServer struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raftAddr"`
	HTTPAddr string `json:"httpAddr"`
	Leader   bool   `json:"leader"`
	Voter    bool   `json:"voter"`
}

// RaftState is GET /roster/v1/operator/raft.
type RaftState struct {
	Leader       string       `json:"leader"`
	Term         uint64       `json:"term"`
	CommitIndex  uint64       `json:"commitIndex"`
	AppliedIndex uint64       `json:"appliedIndex"`
	Servers      []RaftServer `json:"servers"`
}

// RaftState reads the node's view of the Raft configuration and leader.
func (c *Client) RaftState(ctx context.Context) (*RaftState, error) {
	b, err := c.doPath(ctx, http.MethodGet, "/roster/v1/operator/raft", nil)
	if err != nil {
		return nil, err
	}
	var st RaftState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("client: decode raft state: %w", err)
	}
	return &st, nil
}

// RemovePeer removes a server from the Raft configuration by id.
func (c *Client) RemovePeer(ctx context.Context, id string) error {
	_, err := c.doPath(ctx, http.MethodDelete, "/roster/v1/operator/raft/peer", url.Values{"id": {id}})
	return err
}

// TransferLeader asks the leader to hand leadership to another voter.
func (c *Client) TransferLeader(ctx context.Context) error {
	_, err := c.doPath(ctx, http.MethodPost, "/roster/v1/operator/raft/transfer-leader", nil)
	return err
}
