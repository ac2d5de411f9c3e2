package fsm

import (
	"fmt"
	"slices"
	"strconv"

	"github.com/roster-registry/roster/naming"
	"github.com/roster-registry/roster/persistence"
)

// The health of persistent instances: the cluster configuration that says how they are
// checked (PutCluster), what a prober reads to know what to probe (ProbeTargets), and the
// one write a prober makes (FlipHealth).

// PutCluster sets one cluster's configuration (health checker, check port,
// useInstancePort4Check, metadata) on a service record, as Nacos' PUT /cluster does,
// leaving the service's other fields and clusters as they are: the read-modify-write
// happens here, in the FSM, so it cannot lose a concurrent change to the same record.
// A service without a record is refused (Nacos' "service not found:" 400) unless
// Ephemeral says the registry found it in the ephemeral store; its record is then
// created, marked ephemeral, as UpdateService does for such a service.
type PutCluster struct {
	Service   naming.ServiceKey `json:"service"`
	Cluster   naming.Cluster    `json:"cluster"`
	Ephemeral bool              `json:"ephemeral"`
}

// Type implements Command.
func (PutCluster) Type() CommandType { return PutClusterType }

// ErrServiceNotFoundForCluster is Nacos' answer to PUT /cluster of a service that does
// not exist (ClusterOperatorV2Impl).
func ErrServiceNotFoundForCluster(k naming.ServiceKey) *naming.Error {
	return naming.BadRequest("service not found:" + k.Grouped())
}

func checkCluster(c *naming.Cluster, l Limits) error {
	if c.Name == "" {
		return naming.RequiredParam("clusterName")
	}
	if err := naming.CheckCluster(c.Name); err != nil {
		return err
	}
	if err := naming.CheckMetadata(c.Metadata, l.MaxMetadata); err != nil {
		return err
	}
	if c.CheckPort < 0 || c.CheckPort > 65535 {
		return naming.ErrPortRange
	}
	return c.HealthChecker.Validate()
}

func (a *applier) putCluster(c PutCluster) (any, error) {
	svc, err := a.tx.Service(c.Service)
	if err != nil {
		return nil, err
	}
	if svc == nil {
		if !c.Ephemeral {
			return ErrServiceNotFoundForCluster(c.Service), nil
		}
		svc = naming.NewService(c.Service, true)
	}
	if svc.Clusters == nil {
		svc.Clusters = map[string]*naming.Cluster{}
	}
	cl := c.Cluster
	if cl.Metadata == nil {
		cl.Metadata = map[string]string{}
	}
	svc.Clusters[cl.Name] = &cl
	if err := a.tx.PutService(svc); err != nil {
		return nil, err
	}
	a.touch(c.Service)
	return nil, nil
}

// ProbeView is the membership a prober acted under, carried by each of its flips.
type ProbeView struct {
	// Prober is the id of the member that probed.
	Prober string `json:"prober"`
	// Members are the live members it saw, itself among them, sorted: the list its
	// share of the instances was computed over.
	Members []string `json:"members"`
	// Epoch is its membership epoch. It must be a number every member agrees on and
	// none ever sees decrease (the Raft configuration's index, say); the FSM refuses a
	// flip whose epoch is below that of the last flip applied to the same instance.
	// Zero everywhere turns that rule off.
	Epoch uint64 `json:"epoch"`
}

// FlipHealth is a prober's result for one persistent instance: the instance should now
// be Healthy, as seen at SeenRevision (the instance's revision in the ProbeTarget the
// prober acted on) under View. Its answer is a FlipResult.
//
// # Why a stale prober can never undo a newer result
//
// Every write to a persistent instance (register, update, a metadata batch, a manual
// health change, an applied flip) stamps the instance with the Raft index of the entry
// that wrote it: its revision. Indexes are unique and increase along the log, and a
// deleted and re-registered instance gets a fresh, higher one, so a revision names one
// version of one instance and is never reused. That holds across snapshots too: a
// snapshot's revisions are at or below its index, and Raft's log goes on above that
// index after a restore (raftnode.Restore and Seed). A flip is applied only if the instance's
// revision, when the flip's entry is applied, is still exactly SeenRevision; else it is
// refused (FlipStaleRevision) and changes nothing. Entries are applied in log order on
// every member, so the check and the write are one atomic step, the same everywhere.
//
// A result is newer than a prober's observation exactly when it was committed after the
// version the prober read: a flip by the member that took over the prober's share, a
// user's write, anything. Committing it changed the revision, so the older prober's
// flip, however late it arrives (a member that lost its share but has not noticed yet, a
// process paused between probing and proposing, an entry forwarded through a slow
// leader), finds a revision it did not see and is refused. A stale prober can therefore
// only write on top of the very version it observed, which no newer result has
// replaced. The answer carries the current revision, so a refused prober starts again
// from the state as it is.
//
// The view adds a second guard for probers whose membership is behind: a flip whose
// View.Epoch is below the epoch of the last flip applied to the instance is refused
// (FlipStaleView) even when the revision matches. And a cluster whose checker is NONE
// is never flipped (FlipNotProbed): its health is set by hand, and a probe result that
// was in flight when the checker was switched off must not overwrite it.
type FlipHealth struct {
	Service      naming.ServiceKey `json:"service"`
	Instance     InstanceRef       `json:"instance"`
	Healthy      bool              `json:"healthy"`
	SeenRevision uint64            `json:"seenRevision"`
	View         ProbeView         `json:"view"`
}

// Type implements Command.
func (FlipHealth) Type() CommandType { return FlipHealthType }

// FlipOutcome says what became of a FlipHealth.
type FlipOutcome string

// Flip outcomes. Applied and Unchanged are successes; the others refuse the flip and
// change nothing.
const (
	FlipApplied   FlipOutcome = "applied"   // health changed; the instance's revision is the flip's index
	FlipUnchanged FlipOutcome = "unchanged" // the instance already had that health; nothing was written
	// FlipStaleRevision: the instance was written after SeenRevision.
	FlipStaleRevision FlipOutcome = "stale-revision"
	// FlipStaleView: a flip under a newer membership epoch was applied to the instance.
	FlipStaleView FlipOutcome = "stale-view"
	// FlipGone: the instance, or its persistent service, no longer exists.
	FlipGone FlipOutcome = "gone"
	// FlipNotProbed: the instance's cluster has checker NONE; its health is set by hand.
	FlipNotProbed FlipOutcome = "not-probed"
)

// FlipResult is the FSM's answer to a FlipHealth: the outcome and the instance's
// revision after the command (0 when it is gone).
type FlipResult struct {
	Outcome  FlipOutcome `json:"outcome"`
	Revision uint64      `json:"revision"`
}

// Err is nil for a flip that succeeded (applied or unchanged), else a *FlipRejection.
func (r FlipResult) Err() error {
	if r.Outcome == FlipApplied || r.Outcome == FlipUnchanged {
		return nil
	}
	return &FlipRejection{Outcome: r.Outcome, Revision: r.Revision}
}

// FlipRejection is a refused FlipHealth: typed, so that a prober can tell a stale result
// (refresh and go on) from a failure to commit.
type FlipRejection struct {
	Outcome  FlipOutcome
	Revision uint64 // the instance's current revision
}

func (e *FlipRejection) Error() string {
	return "fsm: health flip refused (" + string(e.Outcome) + ", revision " + strconv.FormatUint(e.Revision, 10) + ")"
}

func validateFlip(c FlipHealth, _ Limits) error {
	if err := checkKey(c.Service); err != nil {
		return err
	}
	if err := checkRef(c.Instance.IP, c.Instance.Port, c.Instance.Cluster); err != nil {
		return err
	}
	v := c.View
	if v.Prober == "" {
		return naming.BadRequest("health flip without a prober")
	}
	if !slices.IsSorted(v.Members) || len(slices.Compact(slices.Clone(v.Members))) != len(v.Members) {
		return naming.BadRequest("health flip: the members of the view must be sorted and distinct")
	}
	if _, found := slices.BinarySearch(v.Members, v.Prober); !found {
		return naming.BadRequest(fmt.Sprintf("health flip: prober %s is not in its own view", v.Prober))
	}
	return nil
}

func (a *applier) flipHealth(c FlipHealth) (any, error) {
	svc, err := a.tx.Service(c.Service)
	if err != nil {
		return nil, err
	}
	if svc == nil || svc.Ephemeral {
		return FlipResult{Outcome: FlipGone}, nil
	}
	in, stamp, err := a.tx.InstanceStamped(c.Service, naming.InstanceKey(c.Instance.IP, c.Instance.Port, c.Instance.Cluster))
	if err != nil {
		return nil, err
	}
	if in == nil {
		return FlipResult{Outcome: FlipGone}, nil
	}
	switch {
	case !svc.ClusterOf(in.ClusterName).HealthChecker.Probed():
		return FlipResult{Outcome: FlipNotProbed, Revision: stamp.Revision}, nil
	case stamp.Revision != c.SeenRevision:
		return FlipResult{Outcome: FlipStaleRevision, Revision: stamp.Revision}, nil
	case c.View.Epoch < stamp.FlipEpoch:
		return FlipResult{Outcome: FlipStaleView, Revision: stamp.Revision}, nil
	case in.Healthy == c.Healthy:
		return FlipResult{Outcome: FlipUnchanged, Revision: stamp.Revision}, nil
	}
	in.Healthy = c.Healthy
	stamp = persistence.Stamp{Revision: a.index, FlipEpoch: c.View.Epoch}
	if err := a.tx.PutInstanceStamped(c.Service, in, stamp); err != nil {
		return nil, err
	}
	a.touch(c.Service)
	return FlipResult{Outcome: FlipApplied, Revision: stamp.Revision}, nil
}

// ProbeTarget is one persistent instance to probe, as the store holds it: plain data,
// cheap to copy and compare.
type ProbeTarget struct {
	Service naming.ServiceKey
	IP      string
	Port    int // the instance's port
	Cluster string
	// Checker is the cluster's effective checker; never NONE (such instances are not
	// targets).
	Checker naming.HealthChecker
	// CheckPort is the port a probe dials: Port, or the cluster's checkPort when
	// useInstancePort4Check is off.
	CheckPort int
	Healthy   bool
	// Revision is the instance's revision: the SeenRevision of a flip made on this
	// observation.
	Revision uint64
}

// Ref names the target's instance.
func (t ProbeTarget) Ref() InstanceRef {
	return InstanceRef{IP: t.IP, Port: t.Port, Cluster: t.Cluster}
}

// ProbeTargetsOf lists the instances of one service record that the cluster probes, in
// instance key order: none for an ephemeral service or a nil record, and none of a
// cluster whose checker is NONE.
func ProbeTargetsOf(tx *persistence.Tx, svc *naming.Service) ([]ProbeTarget, error) {
	if svc == nil || svc.Ephemeral {
		return nil, nil
	}
	list, err := tx.InstancesStamped(svc.Key)
	if err != nil {
		return nil, err
	}
	var out []ProbeTarget
	clusters := map[string]*naming.Cluster{}
	for _, si := range list {
		in := si.Instance
		cl, ok := clusters[in.ClusterName]
		if !ok {
			cl = svc.ClusterOf(in.ClusterName)
			clusters[in.ClusterName] = cl
		}
		if !cl.HealthChecker.Probed() {
			continue
		}
		out = append(out, ProbeTarget{
			Service: svc.Key, IP: in.IP, Port: in.Port, Cluster: in.ClusterName,
			Checker: cl.HealthChecker, CheckPort: cl.ProbePort(in.Port),
			Healthy: in.Healthy, Revision: si.Stamp.Revision,
		})
	}
	return out, nil
}
