package registry

import (
	"context"
	"sync/atomic"

	"github.com/roster-registry/roster/healthcheck"
)

// The prober of persistent instances (package healthcheck) runs over three views of
// the registry: the instances to probe (ProbeTargets), the live members its shares are
// computed over (Distro's liveness, so probing and 1.x client responsibility move
// together when a member dies), and the flip it commits through Raft (FlipHealth).

// NewProber builds the health prober of this node's share of the persistent
// instances. The caller starts and stops it.
func (r *Registry) NewProber(cfg healthcheck.Config) (*healthcheck.Prober, error) {
	if cfg.Logger == nil {
		cfg.Logger = r.cfg.Logger
	}
	members := &probeMembers{r: r}
	return healthcheck.New(cfg, probeSource{r}, members, members)
}

type probeSource struct{ r *Registry }

// Targets converts the registry's probe targets. Every target of one cluster shares its
// checker, which carries the port to dial (the instance's own, or the cluster's
// checkPort, as the store resolved it).
func (s probeSource) Targets() []healthcheck.Target {
	var out []healthcheck.Target
	_, err := s.r.probes.visit(s.r.store, func(n int, t *ProbeTarget, probe *healthcheck.Checker) {
		if out == nil {
			out = make([]healthcheck.Target, 0, n)
		}
		out = append(out, healthcheck.Target{Service: t.Service, Cluster: t.Cluster, IP: t.IP, Port: t.Port,
			Healthy: t.Healthy, Revision: t.Revision, Checker: probe})
	})
	if err != nil {
		s.r.log.Warn("health checks: cannot list the persistent instances", "err", err)
		return nil
	}
	return out
}

// probeMembers is the prober's membership view and its flipper in one, so that a flip
// carries the very member list its round's shares were computed over.
type probeMembers struct {
	r    *Registry
	last atomic.Pointer[[]string] // the live members of the latest round
}

// Live is Distro's live members; the epoch is the Raft term, which every member comes
// to agree on and none sees decrease, so a flip decided under an older term can never
// undo one decided under a newer one.
func (m *probeMembers) Live() (self string, live []string, epoch uint64) {
	live = m.r.replicator.LiveMembers()
	m.last.Store(&live)
	return m.r.node.ID(), live, m.r.node.Stats().Term
}

func (m *probeMembers) Flip(ctx context.Context, t healthcheck.Target, healthy bool, epoch uint64) error {
	var members []string
	if p := m.last.Load(); p != nil {
		members = *p
	}
	view := ProbeView{Prober: m.r.node.ID(), Members: members, Epoch: epoch}
	ref := InstanceRef{IP: t.IP, Port: t.Port, Cluster: t.Cluster}
	return m.r.FlipHealth(ctx, t.Service, ref, healthy, t.Revision, view)
}
