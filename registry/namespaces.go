package registry

import (
	"context"
	"crypto/rand"
	"fmt"
	"sort"

	"github.com/roster-registry/roster/fsm"
	"github.com/roster-registry/roster/naming"
	"github.com/roster-registry/roster/persistence"
)

// Namespaces: records operators create go through Raft (fsm.PutNamespace,
// fsm.DeleteNamespace); a namespace clients use without creating it has no record and
// keeps working, listed as NamespaceImplicit. public is built in.

// NamespaceKind says where a namespace comes from. The numbers of public and created
// namespaces are Nacos' NamespaceTypeEnum (GLOBAL 0, CUSTOM 2); Nacos has no namespace
// that exists without being created, so NamespaceImplicit is Roster's own number.
type NamespaceKind int

// Namespace kinds.
const (
	NamespacePublic   NamespaceKind = 0
	NamespaceCreated  NamespaceKind = 2
	NamespaceImplicit NamespaceKind = 3
)

// NamespaceInfo is a namespace as the console shows it: its record (for an implicit
// namespace, its id as name), kind, effective quotas (0 = unlimited) and what it holds.
type NamespaceInfo struct {
	naming.Namespace
	Kind NamespaceKind
	// QuotaServices and QuotaInstances are the effective quotas: the record's
	// override, else the server's default.
	QuotaServices  int
	QuotaInstances int
	Services       int
	Instances      int
}

// Public namespace's shown name and description (Nacos' NamespaceOperationService).
const (
	PublicNamespaceName = "public"
	PublicNamespaceDesc = "Public Namespace"
)

// namespaceCache holds the namespace records as of one FSM namespace generation: every
// instance write reads its namespace's quota, and the records change rarely.
type namespaceCache struct {
	gen  uint64
	list []*naming.Namespace
	byID map[string]*naming.Namespace
}

// namespaces returns the current records, from cache while the FSM's generation says
// they have not changed. Callers must not modify what it returns.
func (r *Registry) namespaces() (*namespaceCache, error) {
	gen := r.fsm.NamespaceGeneration()
	if c := r.nsCache.Load(); c != nil && c.gen == gen {
		return c, nil
	}
	var list []*naming.Namespace
	err := r.store.View(func(tx *persistence.Tx) error {
		var err error
		list, err = tx.NamespaceRecords()
		return err
	})
	if err != nil {
		return nil, err
	}
	c := &namespaceCache{gen: gen, list: list, byID: make(map[string]*naming.Namespace, len(list))}
	for _, n := range list {
		c.byID[n.ID] = n
	}
	r.nsCache.Store(c)
	return c, nil
}

func (r *Registry) namespaceRecords() ([]*naming.Namespace, error) {
	c, err := r.namespaces()
	if err != nil {
		return nil, err
	}
	return c.list, nil
}

func (r *Registry) namespaceRecord(id string) (*naming.Namespace, error) {
	c, err := r.namespaces()
	if err != nil {
		return nil, err
	}
	return c.byID[id], nil
}

// effectiveQuota is a record's override, else the server default.
func effectiveQuota(override *int, def int) int {
	if override != nil {
		return *override
	}
	return def
}

func (r *Registry) info(rec *naming.Namespace, id string) NamespaceInfo {
	var in NamespaceInfo
	switch {
	case id == naming.DefaultNamespace:
		in.Namespace = naming.Namespace{ID: id, Name: PublicNamespaceName, Desc: PublicNamespaceDesc}
		in.Kind = NamespacePublic
	case rec != nil:
		in.Namespace = *rec.Clone()
		in.Kind = NamespaceCreated
	default:
		in.Namespace = naming.Namespace{ID: id, Name: id}
		in.Kind = NamespaceImplicit
	}
	in.QuotaServices = effectiveQuota(in.MaxServices, r.cfg.NamespaceMaxServices)
	in.QuotaInstances = effectiveQuota(in.MaxInstances, r.cfg.NamespaceMaxInstances)
	return in
}

// usage counts the services and instances of every namespace that has any.
func (r *Registry) usage() (map[string][2]int, error) {
	keys, err := r.Services("")
	if err != nil {
		return nil, err
	}
	out := map[string][2]int{}
	for _, k := range keys {
		v, err := r.load(k)
		if err != nil {
			return nil, err
		}
		u := out[k.Namespace]
		u[0]++
		u[1] += len(v.instances)
		out[k.Namespace] = u
	}
	return out, nil
}

// Namespaces lists public, then every created or used namespace sorted by id.
func (r *Registry) Namespaces() ([]NamespaceInfo, error) {
	recs, err := r.namespaceRecords()
	if err != nil {
		return nil, err
	}
	use, err := r.usage()
	if err != nil {
		return nil, err
	}
	byID := map[string]*naming.Namespace{}
	for _, n := range recs {
		byID[n.ID] = n
	}
	ids := []string{}
	for id := range byID {
		ids = append(ids, id)
	}
	for id := range use {
		if _, ok := byID[id]; !ok && id != naming.DefaultNamespace {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	ids = append([]string{naming.DefaultNamespace}, ids...)
	out := make([]NamespaceInfo, 0, len(ids))
	for _, id := range ids {
		in := r.info(byID[id], id)
		in.Services, in.Instances = use[id][0], use[id][1]
		out = append(out, in)
	}
	return out, nil
}

// Namespace describes one namespace: public, created, or used by a service; nil when it
// is none of these. A blank id is public.
func (r *Registry) Namespace(id string) (*NamespaceInfo, error) {
	if id == "" {
		id = naming.DefaultNamespace
	}
	if err := naming.CheckNamespace(id); err != nil {
		return nil, err
	}
	rec, err := r.namespaceRecord(id)
	if err != nil {
		return nil, err
	}
	keys, err := r.Services(id)
	if err != nil {
		return nil, err
	}
	if rec == nil && len(keys) == 0 && id != naming.DefaultNamespace {
		return nil, nil
	}
	in := r.info(rec, id)
	in.Services = len(keys)
	for _, k := range keys {
		v, err := r.load(k)
		if err != nil {
			return nil, err
		}
		in.Instances += len(v.instances)
	}
	return &in, nil
}

// NamespaceRecorded reports whether id is public or has a record (Nacos'
// checkNamespaceIdExist: an id in use without a record may still be created).
func (r *Registry) NamespaceRecorded(id string) (bool, error) {
	if id == naming.DefaultNamespace {
		return true, nil
	}
	rec, err := r.namespaceRecord(id)
	return rec != nil, err
}

// CreateNamespace stores a new namespace record and returns its id; a blank id gets a
// random UUID, as Nacos gives one. A namespace in use without a record may be created:
// that gives it a name.
func (r *Registry) CreateNamespace(ctx context.Context, n naming.Namespace) (string, error) {
	if n.ID == "" {
		id, err := newUUID()
		if err != nil {
			return "", err
		}
		n.ID = id
	}
	_, err := r.apply(ctx, &fsm.PutNamespace{Namespace: n, Mode: fsm.PutCreate})
	return n.ID, err
}

// NamespaceUpdate lists what UpdateNamespace changes; nil fields stay. A quota of -1
// drops the namespace's override (back to the server's default).
type NamespaceUpdate struct {
	Name, Desc                *string
	MaxServices, MaxInstances *int
}

// UpdateNamespace changes a namespace's record. A namespace in use without a record
// gets one; public cannot be changed; an unknown one is naming.ErrNamespaceNotFound.
func (r *Registry) UpdateNamespace(ctx context.Context, id string, u NamespaceUpdate) error {
	if id == "" || id == naming.DefaultNamespace {
		return naming.ErrPublicNamespace()
	}
	cur, err := r.Namespace(id)
	if err != nil {
		return err
	}
	if cur == nil {
		return naming.ErrNamespaceNotFound(id)
	}
	mode := fsm.PutUpdate
	if cur.Kind == NamespaceImplicit {
		mode = fsm.PutCreate
	}
	n := cur.Namespace
	if u.Name != nil {
		n.Name = *u.Name
	}
	if u.Desc != nil {
		n.Desc = *u.Desc
	}
	setQuota := func(dst **int, v *int) {
		switch {
		case v == nil:
		case *v == -1:
			*dst = nil
		default:
			q := *v
			*dst = &q
		}
	}
	setQuota(&n.MaxServices, u.MaxServices)
	setQuota(&n.MaxInstances, u.MaxInstances)
	_, err = r.apply(ctx, &fsm.PutNamespace{Namespace: n, Mode: mode})
	return err
}

// DeleteNamespace removes a namespace's record. public is refused, so is a namespace
// with services of either kind (the FSM refuses persistent ones again, atomically); a
// namespace without a record is already gone.
func (r *Registry) DeleteNamespace(ctx context.Context, id string) error {
	if id == "" || id == naming.DefaultNamespace {
		return naming.ErrPublicNamespace()
	}
	if err := naming.CheckNamespace(id); err != nil {
		return err
	}
	keys, err := r.Services(id)
	if err != nil {
		return err
	}
	if len(keys) > 0 {
		return naming.ErrNamespaceNotEmpty(id, len(keys))
	}
	rec, err := r.namespaceRecord(id)
	if err != nil || rec == nil {
		return err
	}
	_, err = r.apply(ctx, &fsm.DeleteNamespace{ID: id})
	return err
}

// checkQuota refuses a write that would add a service or instances to svc's namespace
// past its quotas. It runs where each instance write enters the registry (the member
// that stores an ephemeral write, any member for a persistent one), against this
// member's view, counting both kinds. A persistent write is checked again inside the
// FSM (fsm.Quota), where the log orders writes racing through different members; an
// ephemeral write has only this check, since AP writes have no single order: ephemeral
// writes in flight at once on different members may each pass.
func (r *Registry) checkQuota(svc naming.ServiceKey, insts ...*naming.Instance) error {
	rec, err := r.namespaceRecord(svc.Namespace)
	if err != nil {
		return err
	}
	var maxServices, maxInstances int
	if svc.Namespace == naming.DefaultNamespace {
		maxServices, maxInstances = r.cfg.NamespaceMaxServices, r.cfg.NamespaceMaxInstances
	} else {
		in := r.info(rec, svc.Namespace)
		maxServices, maxInstances = in.QuotaServices, in.QuotaInstances
	}
	if maxServices <= 0 && maxInstances <= 0 {
		return nil
	}
	keys, err := r.Services(svc.Namespace)
	if err != nil {
		return err
	}
	exists := false
	for _, k := range keys {
		if k == svc {
			exists = true
			break
		}
	}
	if maxServices > 0 && !exists && len(keys) >= maxServices {
		return naming.ErrQuota(svc.Namespace, "services", maxServices)
	}
	if maxInstances <= 0 || len(insts) == 0 {
		return nil
	}
	total := 0
	have := map[string]bool{}
	for _, k := range keys {
		v, err := r.load(k)
		if err != nil {
			return err
		}
		total += len(v.instances)
		if k == svc {
			for _, in := range v.instances {
				have[in.Key()] = true
			}
		}
	}
	added := 0
	for _, in := range insts {
		if !have[in.Key()] {
			have[in.Key()] = true
			added++
		}
	}
	if added > 0 && total+added > maxInstances {
		return naming.ErrQuota(svc.Namespace, "instances", maxInstances)
	}
	return nil
}

// defaultQuota is the server's default quotas, carried in the CP commands that add a
// service or instance so the FSM checks them the same way on every member.
func (r *Registry) defaultQuota() *fsm.Quota {
	return &fsm.Quota{Services: r.cfg.NamespaceMaxServices, Instances: r.cfg.NamespaceMaxInstances}
}

// checkServiceQuota is checkQuota for a write that creates a service and no instance.
func (r *Registry) checkServiceQuota(svc naming.ServiceKey) error { return r.checkQuota(svc) }

func newUUID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]), nil
}
