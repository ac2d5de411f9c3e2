package registry

import (
	"context"

	"github.com/roster-registry/roster/naming"
)

// Connection-owned instances: the writes of Nacos 2.x clients over gRPC. A connection
// (its id is the owner) holds one instance per service, or a list after a batch
// register; they live as long as the connection and never expire by beats. Kind rules
// are those of HTTP: an ephemeral write into a persistent service is refused.

// checkConnWrite validates the service, the instances and the service's kind.
func (r *Registry) checkConnWrite(svc naming.ServiceKey, insts []*naming.Instance) error {
	if err := naming.CheckServiceKey(svc); err != nil {
		return err
	}
	for _, inst := range insts {
		if err := naming.CheckInstance(inst, r.cfg.MaxMetadata, r.cfg.Timing); err != nil {
			return err
		}
	}
	_, persistent, err := r.serviceKind(svc)
	if err != nil {
		return err
	}
	if persistent {
		return naming.ErrPersistentService(svc)
	}
	return r.checkQuota(svc, insts...)
}

// RegisterForConn stores inst as the one instance connection conn holds in svc,
// replacing the one it held there before, whatever its address (Nacos 2.x: one instance
// per client per service). The instance is stored as ephemeral.
func (r *Registry) RegisterForConn(ctx context.Context, svc naming.ServiceKey, inst *naming.Instance, conn string) error {
	return r.BatchRegisterForConn(ctx, svc, []*naming.Instance{inst}, conn)
}

// BatchRegisterForConn makes insts the list connection conn holds in svc (Nacos'
// batchRegisterInstance; Java's batch deregister re-sends the remainder). An empty list
// is refused: a deregister says so.
func (r *Registry) BatchRegisterForConn(ctx context.Context, svc naming.ServiceKey, insts []*naming.Instance, conn string) error {
	list := make([]*naming.Instance, 0, len(insts))
	for _, inst := range insts {
		c := inst.Clone()
		c.Ephemeral = true
		list = append(list, c)
	}
	if err := r.checkConnWrite(svc, list); err != nil {
		return err
	}
	if len(list) == 0 {
		return naming.BadRequest("instances can't be empty")
	}
	r.distro.ReplaceOwned(svc, conn, list)
	return nil
}

// DeregisterForConn removes whatever connection conn holds in svc; Nacos 2.x ignores
// the request's ip and port. It succeeds when there was nothing.
func (r *Registry) DeregisterForConn(ctx context.Context, svc naming.ServiceKey, conn string) error {
	if err := naming.CheckServiceKey(svc); err != nil {
		return err
	}
	r.distro.DeregisterOwned(svc, conn)
	return nil
}

// DropConn removes every instance connection conn holds (it closed or stopped
// answering) and returns how many it removed.
func (r *Registry) DropConn(conn string) int {
	n := 0
	for _, list := range r.distro.RemoveOwned(conn) {
		n += len(list)
	}
	return n
}
