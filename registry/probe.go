package registry

import (
	"context"

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
	return healthcheck.New(cfg, probeSource{r}, probeMembers{r}, probeFlipper{r})
}

type probeSource struct{ r *Registry }

// Targets converts the registry's probe targets; the prober dials CheckPort, already
// resolved from the cluster's checkPort and useInstancePort4Check.
func (s probeSource) Targets() []healthcheck.Target {
	list, err := s.r.ProbeTargets()
	if err != nil {
		s.r.log.Warn("health checks: cannot list the persistent instances", "err", err)
		return nil
	}
	out := make([]healthcheck.Target, len(list))
	for i, t := range list {
		hc := healthcheck.Checker{
			Type: healthcheck.Type(t.Checker.Type), Path: t.Checker.Path, Headers: t.Checker.Headers,
			GRPCService: t.Checker.Service, CheckPort: t.CheckPort,
		}
		if t.Checker.ExpectedResponseCode != 0 {
			hc.ExpectedCodes = []int{t.Checker.ExpectedResponseCode}
		}
		out[i] = healthcheck.Target{Service: t.Service, Cluster: t.Cluster, IP: t.IP, Port: t.Port,
			Healthy: t.Healthy, Revision: t.Revision, Checker: hc}
	}
	return out
}

type probeMembers struct{ r *Registry }

// Live is Distro's live members; the epoch is the Raft term, which every member comes
// to agree on and none sees decrease, so a flip decided under an older term can never
// undo one decided under a newer one.
func (m probeMembers) Live() (self string, live []string, epoch uint64) {
	return m.r.node.ID(), m.r.replicator.LiveMembers(), m.r.node.Stats().Term
}

type probeFlipper struct{ r *Registry }

func (f probeFlipper) Flip(ctx context.Context, t healthcheck.Target, healthy bool, epoch uint64) error {
	view := ProbeView{Prober: f.r.node.ID(), Members: f.r.replicator.LiveMembers(), Epoch: epoch}
	ref := InstanceRef{IP: t.IP, Port: t.Port, Cluster: t.Cluster}
	return f.r.FlipHealth(ctx, t.Service, ref, healthy, t.Revision, view)
}
