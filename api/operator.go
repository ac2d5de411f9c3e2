package api

import (
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/roster-registry/roster/naming"
	"github.com/roster-registry/roster/registry"
)

// operatorRoutes are Roster's own membership operations and the cluster-internal
// endpoints, under /roster/v1.
func (a *API) operatorRoutes(r chi.Router) {
	r.Get("/roster/v1/operator/raft", a.wrap(a.raftState))
	r.Get("/roster/v1/operator/distro/responsibility", a.wrap(a.distroResponsibility))
	r.Delete("/roster/v1/operator/raft/peer", a.wrap(a.leaderOnly(a.removePeer)))
	r.Post("/roster/v1/operator/raft/transfer-leader", a.wrap(a.leaderOnly(a.transferLeader)))
	a.reg.MountInternal(r)
}

// raftServer is one entry of GET /roster/v1/operator/raft.
type raftServer struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raftAddr"`
	HTTPAddr string `json:"httpAddr"`
	Leader   bool   `json:"leader"`
	Voter    bool   `json:"voter"`
}

type raftState struct {
	Leader       string       `json:"leader"`
	Term         uint64       `json:"term"`
	CommitIndex  uint64       `json:"commitIndex"`
	AppliedIndex uint64       `json:"appliedIndex"`
	Servers      []raftServer `json:"servers"`
}

func (a *API) raftState(w http.ResponseWriter, r *http.Request) error {
	leader := a.reg.Leader()
	st := a.reg.RaftStats()
	servers, err := a.reg.RaftServers()
	if err != nil {
		return err
	}
	out := raftState{Leader: leader, Term: st.Term, CommitIndex: st.CommitIndex, AppliedIndex: st.AppliedIndex, Servers: []raftServer{}}
	for _, s := range servers {
		out.Servers = append(out.Servers, raftServer{
			ID: s.ID, RaftAddr: s.Address, HTTPAddr: a.httpAddrOf(s.ID), Leader: s.ID == leader, Voter: s.Voter,
		})
	}
	return writeJSON(w, out)
}

// instanceResponsibility is one instance of GET /roster/v1/operator/distro/responsibility.
type instanceResponsibility struct {
	Instance   string `json:"instance"`
	Client     string `json:"client,omitempty"`
	Connection string `json:"connection,omitempty"`
	Routed     string `json:"routed,omitempty"`
	Holder     string `json:"holder"`
}

type responsibility struct {
	Self      string                   `json:"self"`
	Members   []string                 `json:"members"`
	Instances []instanceResponsibility `json:"instances"`
}

// distroResponsibility answers who this node considers responsible for each ephemeral
// instance of a service (namespaceId, groupName, serviceName as in Nacos): the member
// its hash routes the client to, and the member whose copy it holds.
func (a *API) distroResponsibility(w http.ResponseWriter, r *http.Request) error {
	p, err := readParams(r)
	if err != nil {
		return err
	}
	svc, err := p.service(naming.RequiredParam)
	if err != nil {
		return err
	}
	st := a.reg.Responsibility(svc)
	out := responsibility{Self: st.Self, Members: st.Members, Instances: make([]instanceResponsibility, 0, len(st.Instances))}
	for _, i := range st.Instances {
		out.Instances = append(out.Instances, instanceResponsibility(i))
	}
	return writeJSON(w, out)
}

// httpAddrOf is a member's HTTP address, as far as this node knows it.
func (a *API) httpAddrOf(id string) string {
	if id == a.cfg.NodeID {
		return a.cfg.HTTPAddr
	}
	return a.reg.MemberHTTPAddr(id)
}

// leaderOnly runs h on the leader and sends the request on to the leader from any
// other node (once: a forwarded request that meets a follower is refused).
func (a *API) leaderOnly(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		here, err := a.reg.OnLeader(w, r)
		switch {
		case errors.Is(err, registry.ErrNotLeader):
			return naming.Unavailable("not the leader; retry against the leader")
		case err != nil:
			return err
		case here:
			return h(w, r)
		}
		return nil
	}
}

func (a *API) removePeer(w http.ResponseWriter, r *http.Request) error {
	p, err := readParams(r)
	if err != nil {
		return err
	}
	id, err := p.required("id")
	if err != nil {
		return err
	}
	if err := a.reg.RemovePeer(id); err != nil {
		return err
	}
	writeText(w, http.StatusOK, "ok")
	return nil
}

func (a *API) transferLeader(w http.ResponseWriter, r *http.Request) error {
	if err := a.reg.TransferLeadership(); err != nil {
		return err
	}
	writeText(w, http.StatusOK, "ok")
	return nil
}

// raftLeader is Nacos 1.x's GET /nacos/v1/ns/raft/leader: the leader as a RaftPeer,
// serialised into a string.
func (a *API) raftLeader(w http.ResponseWriter, r *http.Request) error {
	leader := a.reg.Leader()
	if leader == "" {
		return writeJSON(w, map[string]any{"leader": nil})
	}
	peer := map[string]any{"ip": a.httpAddrOf(leader), "voteFor": leader, "term": a.reg.RaftStats().Term, "state": "LEADER"}
	b, err := naming.Marshal(peer)
	if err != nil {
		return err
	}
	return writeJSON(w, map[string]any{"leader": string(b)})
}

// members lists the Raft configuration's servers as Nacos members.
func (a *API) members() ([]member, error) {
	leaderID := a.reg.Leader()
	servers, err := a.reg.RaftServers()
	if err != nil {
		return nil, err
	}
	out := make([]member, 0, len(servers))
	for _, s := range servers {
		addr := a.httpAddrOf(s.ID)
		host, portStr, _ := net.SplitHostPort(addr)
		port, _ := strconv.Atoi(portStr)
		out = append(out, member{
			IP: host, Port: port, State: "UP", Address: addr,
			ExtendInfo: map[string]any{"raftPort": raftPort(s.Address), "raftAddr": s.Address, "nodeId": s.ID, "leader": s.ID == leaderID, "voter": s.Voter, "version": a.cfg.Version},
			Abilities:  map[string]any{},
		})
	}
	return out, nil
}

func raftPort(addr string) string {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	return port
}

// consistentReads makes reads that ask for it (consistent=true, or the header
// X-Roster-Consistency: consistent) linearizable: the leader confirms its leadership
// and its barrier; any other node sends the read to the leader.
func (a *API) consistentReads(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !wantsConsistent(r) {
			next.ServeHTTP(w, r)
			return
		}
		here, err := a.reg.OnLeader(w, r)
		switch {
		case errors.Is(err, registry.ErrNotLeader):
			a.fail(versionOf(r), w, r, naming.Unavailable("consistent read refused: this node is not the leader"))
		case err != nil:
			a.fail(versionOf(r), w, r, err)
		case here:
			if err := a.reg.ConsistentRead(r.Context()); err != nil {
				a.fail(versionOf(r), w, r, err)
				return
			}
			next.ServeHTTP(w, r)
		}
	})
}

func wantsConsistent(r *http.Request) bool {
	if strings.EqualFold(r.Header.Get("X-Roster-Consistency"), "consistent") {
		return true
	}
	return strings.EqualFold(r.URL.Query().Get("consistent"), "true")
}
