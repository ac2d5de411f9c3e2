package registry

import (
	"context"
	"fmt"

	"github.com/roster-registry/roster/fsm"
	"github.com/roster-registry/roster/naming"
	"github.com/roster-registry/roster/persistence"
)

// The instance write paths of HTTP clients. Each one validates its input once, here
// where it enters the registry, then decides the kind of its service, then either
// writes to the AP store (on the member responsible for the client: route.go) or
// commits a CP command through the leader (apply.go). A forwarded AP write is served by
// the *Local half of its path, which trusts the validation the first member did.

// Register adds or replaces an instance in the store its kind names.
func (r *Registry) Register(ctx context.Context, svc naming.ServiceKey, inst *naming.Instance) error {
	if err := naming.CheckServiceKey(svc); err != nil {
		return err
	}
	if !inst.Ephemeral {
		cmd := &fsm.RegisterInstance{Service: svc, Instance: *inst, Quota: r.defaultQuota()}
		if err := r.validate(cmd); err != nil {
			return err
		}
		if r.distro.HasService(svc) {
			return naming.ErrEphemeralService(svc)
		}
		if err := r.checkQuota(svc, inst); err != nil {
			return err
		}
		_, err := r.propose(ctx, cmd)
		return err
	}
	if err := naming.CheckInstance(inst, r.cfg.MaxMetadata, r.cfg.Timing); err != nil {
		return err
	}
	if peer, ok := r.responsibleElsewhere(ctx, inst.IP, inst.Port); ok {
		if done, err := r.sendAP(ctx, peer, apWrite{Op: opRegister, Service: svc, Instance: inst}, nil); done {
			return err
		}
	}
	return r.registerLocal(svc, inst)
}

// registerLocal stores a validated ephemeral instance on this member.
func (r *Registry) registerLocal(svc naming.ServiceKey, inst *naming.Instance) error {
	_, persistent, err := r.serviceKind(svc)
	if err != nil {
		return err
	}
	if persistent {
		return naming.ErrPersistentService(svc)
	}
	if err := r.checkQuota(svc, inst); err != nil {
		return err
	}
	r.distro.Register(svc, inst.Clone())
	return nil
}

// Deregister removes an instance. It answers success when nothing matched, as Nacos
// does. The service's stored kind decides the store; the request's ephemeral flag is
// used only for a service Roster does not know.
func (r *Registry) Deregister(ctx context.Context, svc naming.ServiceKey, ip string, port int, cluster string, ephemeral bool) error {
	if err := naming.CheckServiceKey(svc); err != nil {
		return err
	}
	exists, persistent, err := r.serviceKind(svc)
	if err != nil {
		return err
	}
	if exists {
		ephemeral = !persistent
	}
	if ephemeral {
		if peer, ok := r.responsibleElsewhere(ctx, ip, port); ok {
			w := apWrite{Op: opDeregister, Service: svc, IP: ip, Port: port, Cluster: cluster}
			if done, err := r.sendAP(ctx, peer, w, nil); done {
				return err
			}
		}
		r.distro.Deregister(svc, ip, port, cluster)
		return nil
	}
	// A service this node does not know yet may exist on the leader: a follower that
	// has not applied the registration would otherwise answer ok for a deregistration
	// that never happens (found by the chaos suite, R12). The FSM treats an absent
	// instance as removed, so the leader's answer is the same ok when it is truly absent.
	_, err = r.apply(ctx, &fsm.DeregisterInstance{Service: svc, IP: ip, Port: port, Cluster: cluster})
	return err
}

// Update is Nacos' PUT /instance: the service must exist; weight, enabled and metadata
// are set; a missing instance is registered (as Nacos does for Go and Node.js agents).
func (r *Registry) Update(ctx context.Context, svc naming.ServiceKey, inst *naming.Instance) error {
	if err := naming.CheckServiceKey(svc); err != nil {
		return err
	}
	if err := naming.CheckInstance(inst, r.cfg.MaxMetadata, r.cfg.Timing); err != nil {
		return err
	}
	exists, persistent, err := r.serviceKind(svc)
	if err != nil {
		return err
	}
	if !exists {
		return naming.ErrUpdateNoService(svc, inst.Ephemeral)
	}
	if err := r.checkQuota(svc, inst); err != nil {
		return err
	}
	if !persistent {
		if peer, ok := r.responsibleElsewhere(ctx, inst.IP, inst.Port); ok {
			if done, err := r.sendAP(ctx, peer, apWrite{Op: opUpdate, Service: svc, Instance: inst}, nil); done {
				return err
			}
		}
		r.updateLocal(svc, inst)
		return nil
	}
	up := inst.Clone()
	up.Ephemeral = false
	w, en := inst.Weight, inst.Enabled
	_, err = r.propose(ctx, &fsm.UpdateInstance{
		Service: svc, IP: inst.IP, Port: inst.Port, Cluster: inst.ClusterName,
		Weight: &w, Enabled: &en, Metadata: nonNil(inst.Metadata), Upsert: up, Quota: r.defaultQuota(),
	})
	return err
}

// updateLocal is Update of an ephemeral instance on this member.
func (r *Registry) updateLocal(svc naming.ServiceKey, inst *naming.Instance) {
	found := r.distro.Update(svc, inst.Key(), func(cur *naming.Instance) {
		cur.Weight = inst.Weight
		cur.Enabled = inst.Enabled
		cur.Metadata = inst.Metadata
	})
	if !found {
		c := inst.Clone()
		c.Ephemeral = true
		r.distro.Register(svc, c)
	}
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// Patch is Nacos' PATCH /instance: only the given fields change; the instance must exist.
type Patch struct {
	Weight   *float64          `json:"weight,omitempty"`
	Enabled  *bool             `json:"enabled,omitempty"`
	Metadata map[string]string `json:"metadata,omitempty"` // nil: unchanged
}

// PatchInstance applies a partial update to an existing instance.
func (r *Registry) PatchInstance(ctx context.Context, svc naming.ServiceKey, ip string, port int, cluster string, p Patch) error {
	if err := naming.CheckServiceKey(svc); err != nil {
		return err
	}
	probe := &naming.Instance{IP: ip, Port: port, ClusterName: cluster, Metadata: p.Metadata}
	if p.Weight != nil {
		probe.Weight = *p.Weight
	}
	if err := naming.CheckInstance(probe, r.cfg.MaxMetadata, r.cfg.Timing); err != nil {
		return err
	}
	_, persistent, err := r.serviceKind(svc)
	if err != nil {
		return err
	}
	if !persistent {
		if peer, ok := r.responsibleElsewhere(ctx, ip, port); ok {
			w := apWrite{Op: opPatch, Service: svc, IP: ip, Port: port, Cluster: cluster, Patch: &p}
			if done, err := r.sendAP(ctx, peer, w, nil); done {
				return err
			}
		}
		return r.patchLocal(svc, ip, port, cluster, p)
	}
	_, err = r.propose(ctx, &fsm.UpdateInstance{Service: svc, IP: ip, Port: port, Cluster: cluster,
		Weight: p.Weight, Enabled: p.Enabled, Metadata: p.Metadata})
	return err
}

// patchLocal is PatchInstance of an ephemeral instance on this member.
func (r *Registry) patchLocal(svc naming.ServiceKey, ip string, port int, cluster string, p Patch) error {
	ok := r.distro.Update(svc, naming.InstanceKey(ip, port, cluster), func(cur *naming.Instance) {
		if p.Weight != nil {
			cur.Weight = *p.Weight
		}
		if p.Enabled != nil {
			cur.Enabled = *p.Enabled
		}
		if p.Metadata != nil {
			cur.Metadata = p.Metadata
		}
	})
	if !ok {
		return naming.BadRequest("instance not exist: " + naming.InstanceKey(ip, port, cluster))
	}
	return nil
}

// SetHealth is Nacos' PUT /health/instance: a manual health change, for persistent
// instances of a cluster whose checker is NONE only. Elsewhere health belongs to the
// servers' checks (or, for ephemeral instances, to beats) and the answer is Nacos' 400.
// The write bumps the instance's revision, so a probe result still in flight for it is
// refused.
func (r *Registry) SetHealth(ctx context.Context, svc naming.ServiceKey, ip string, port int, cluster string, healthy bool) error {
	if err := naming.CheckServiceKey(svc); err != nil {
		return err
	}
	cmd := &fsm.UpdateInstance{Service: svc, IP: ip, Port: port, Cluster: cluster, Healthy: &healthy}
	if err := r.validate(cmd); err != nil {
		return err
	}
	var meta *naming.Service
	if err := r.store.View(func(tx *persistence.Tx) error {
		var err error
		meta, err = tx.Service(svc)
		return err
	}); err != nil {
		return err
	}
	if meta == nil || meta.Ephemeral || meta.ClusterOf(cluster).HealthChecker.Probed() {
		return errHealthCheckWorking(svc, cluster)
	}
	_, err := r.propose(ctx, cmd)
	return err
}

// InstanceRef names an instance of a service in a batch operation.
type InstanceRef = fsm.InstanceRef

// UpdateMetadataBatch merges (remove=false) or deletes (remove=true) metadata keys on
// the listed instances (all when empty) and returns Nacos' "updated" entries.
func (r *Registry) UpdateMetadataBatch(ctx context.Context, svc naming.ServiceKey, persistent bool, refs []InstanceRef, md map[string]string, remove bool) ([]string, error) {
	if err := naming.CheckServiceKey(svc); err != nil {
		return nil, err
	}
	if persistent {
		res, err := r.apply(ctx, &fsm.UpdateMetadataBatch{Service: svc, Instances: refs, Metadata: md, Remove: remove})
		if err != nil {
			return nil, err
		}
		updated, _ := res.([]string)
		if updated == nil {
			updated = []string{}
		}
		return updated, nil
	}
	want := map[string]bool{}
	for _, ref := range refs {
		c := ref.Cluster
		if c == "" {
			c = naming.DefaultCluster
		}
		want[naming.InstanceKey(ref.IP, ref.Port, c)] = true
	}
	if err := naming.CheckMetadata(md, r.cfg.MaxMetadata); err != nil {
		return nil, err
	}
	// Every instance is checked before any changes: a batch that one instance cannot
	// take is refused whole, never applied to the instances checked before it.
	var targets []*naming.Instance
	for _, inst := range r.distro.Instances(svc) {
		if len(want) > 0 && !want[inst.Key()] {
			continue
		}
		probe := inst.Clone()
		probe.Metadata = mergeMetadata(inst.Metadata, md, remove)
		if err := naming.CheckInstance(probe, r.cfg.MaxMetadata, r.cfg.Timing); err != nil {
			return nil, err
		}
		targets = append(targets, inst)
	}
	updated := []string{}
	for _, inst := range targets {
		if r.distro.Update(svc, inst.Key(), func(cur *naming.Instance) { cur.Metadata = mergeMetadata(cur.Metadata, md, remove) }) {
			updated = append(updated, fmt.Sprintf("%s:%d:unknown:%s:ephemeral", inst.IP, inst.Port, inst.ClusterName))
		}
	}
	return updated, nil
}

func mergeMetadata(cur, md map[string]string, remove bool) map[string]string {
	out := make(map[string]string, len(cur)+len(md))
	for k, v := range cur {
		out[k] = v
	}
	for k, v := range md {
		if remove {
			delete(out, k)
		} else {
			out[k] = v
		}
	}
	return out
}
