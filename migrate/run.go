package migrate

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/roster-registry/roster/client"
	"github.com/roster-registry/roster/naming"
)

// Reader is where an import reads from: a live server (Source) or an export file
// (DumpReader).
type Reader interface {
	// Namespaces lists the namespaces; ok is false when the reader cannot list them.
	Namespaces(ctx context.Context) (list []Namespace, ok bool, err error)
	ServiceNames(ctx context.Context, ns string) ([]ServiceName, error)
	// Service reads one service whole, or fails without a partial answer.
	Service(ctx context.Context, ns, group, name string) (*Service, error)
}

// Options steer an import.
type Options struct {
	// Namespaces limits the import to these namespace ids; empty is all.
	Namespaces []string
	// DryRun reads both sides and reports what would be written, writing nothing.
	DryRun bool
	// Pace waits this long between services, to keep the load on a production source low.
	Pace time.Duration
	// Parallel is how many services are read and written at once (at least 1).
	Parallel int
	// Progress, if set, is told after each service.
	Progress func(done, total int, s ServiceResult)
}

// Actions in a report.
const (
	ActionCreate    = "create"
	ActionUpdate    = "update"
	ActionUnchanged = "unchanged"
	ActionFailed    = "failed"
	// ActionImplicit: the target has no namespace API; its namespaces exist by use.
	ActionImplicit = "implicit"
)

// NamespaceResult is what happened to one namespace.
type NamespaceResult struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Action string `json:"action"`
	Error  string `json:"error,omitempty"`
}

// ServiceResult is what happened to one service.
type ServiceResult struct {
	Service   string `json:"service"` // namespace/group@@name
	Kind      string `json:"kind"`    // persistent or ephemeral
	Action    string `json:"action"`
	Writes    int    `json:"writes"` // requests sent (or, in a dry run, planned)
	Clusters  int    `json:"clusters"`
	Instances int    `json:"persistentInstances"`
	// EphemeralInstances are the source's, not copied: their clients re-register.
	EphemeralInstances int      `json:"ephemeralInstances"`
	Plan               []string `json:"plan,omitempty"` // the writes, one line each
	Error              string   `json:"error,omitempty"`
}

// Report is the result of a run; the CLI prints it as the summary table or JSON.
type Report struct {
	Source     string            `json:"source"`
	Target     string            `json:"target"`
	DryRun     bool              `json:"dryRun"`
	Namespaces []NamespaceResult `json:"namespaces"`
	Services   []ServiceResult   `json:"services"`
	Totals     Totals            `json:"totals"`
	// Changed is false when the run found Roster already holding everything.
	Changed bool     `json:"changed"`
	Notes   []string `json:"notes,omitempty"`
}

// Totals sum a report.
type Totals struct {
	Services           int `json:"services"`
	Created            int `json:"created"`
	Updated            int `json:"updated"`
	Unchanged          int `json:"unchanged"`
	Failed             int `json:"failed"`
	Writes             int `json:"writes"`
	PersistentCopied   int `json:"persistentInstances"`
	EphemeralNotCopied int `json:"ephemeralInstances"`
}

// Failed reports whether any namespace or service failed.
func (r *Report) Failed() bool {
	if r.Totals.Failed > 0 {
		return true
	}
	for _, n := range r.Namespaces {
		if n.Action == ActionFailed {
			return true
		}
	}
	return false
}

// Target is the Roster an import writes to: writes through client, reads (to compare
// before writing) through the same walker that reads a source.
type Target struct {
	c    *client.Client
	read *Source
}

// NewTarget returns the target behind c; token is c's access token, if any.
func NewTarget(c *client.Client, token string, timeout time.Duration) (*Target, error) {
	s, err := NewSource(c.Addr(), timeout)
	if err != nil {
		return nil, err
	}
	s.token = token
	return &Target{c: c, read: s}, nil
}

// Import copies what r holds into the target. A failure to list is returned as the
// error; a service that cannot be read or written is a failed row of the report, and
// the others go on.
//
// Each service is all-or-nothing towards its source: it is read and validated whole
// before the first write. Its writes are upserts of the source's values, each made only
// where the target differs, so an interrupted service (a failed request, a killed
// process) holds a subset of the final state, never a wrong value, and running the
// import again completes it. Undoing instead would need writes to the target that just
// failed, and would delete what was there before the run.
func Import(ctx context.Context, r Reader, t *Target, opts Options) (*Report, error) {
	rep := &Report{Target: t.c.Addr(), DryRun: opts.DryRun, Namespaces: []NamespaceResult{}, Services: []ServiceResult{}}
	if s, ok := r.(*Source); ok {
		rep.Source = s.Addr()
	}
	namespaces, err := namespacesToRead(ctx, r, opts.Namespaces)
	if err != nil {
		return nil, err
	}
	if err := t.importNamespaces(ctx, namespaces, opts.DryRun, rep); err != nil {
		return nil, err
	}
	type job struct{ ns, group, name string }
	var jobs []job
	for _, ns := range namespaces {
		names, err := r.ServiceNames(ctx, ns.ID)
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			jobs = append(jobs, job{ns.ID, n.Group, n.Name})
		}
	}
	results := make([]*ServiceResult, len(jobs))
	next := make(chan int)
	var mu sync.Mutex // guards done and the Progress calls
	done := 0
	var wg sync.WaitGroup
	workers := max(1, opts.Parallel)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				res := t.importService(ctx, r, jobs[i].ns, jobs[i].group, jobs[i].name, opts.DryRun)
				results[i] = &res
				if opts.Progress != nil {
					mu.Lock()
					done++
					opts.Progress(done, len(jobs), res)
					mu.Unlock()
				}
			}
		}()
	}
	var stopped error
feed:
	for i := range jobs {
		if i > 0 && opts.Pace > 0 {
			select {
			case <-ctx.Done():
				stopped = ctx.Err()
				break feed
			case <-time.After(opts.Pace):
			}
		}
		select {
		case <-ctx.Done():
			stopped = ctx.Err()
			break feed
		case next <- i:
		}
	}
	close(next)
	wg.Wait()
	// Services finished before an interruption are reported; the rest were not begun.
	for _, res := range results {
		if res != nil {
			rep.add(*res)
		}
	}
	if stopped != nil {
		return rep, stopped
	}
	rep.finish()
	return rep, nil
}

func (rep *Report) add(res ServiceResult) {
	rep.Services = append(rep.Services, res)
	rep.Totals.Services++
	rep.Totals.Writes += res.Writes
	rep.Totals.EphemeralNotCopied += res.EphemeralInstances
	switch res.Action {
	case ActionCreate:
		rep.Totals.Created++
	case ActionUpdate:
		rep.Totals.Updated++
	case ActionUnchanged:
		rep.Totals.Unchanged++
	case ActionFailed:
		rep.Totals.Failed++
	}
	if res.Action != ActionFailed {
		rep.Totals.PersistentCopied += res.Instances
	}
}

func (rep *Report) finish() {
	for _, n := range rep.Namespaces {
		if n.Action == ActionCreate || n.Action == ActionUpdate {
			rep.Changed = true
		}
	}
	if rep.Totals.Writes > 0 {
		rep.Changed = true
	}
	if rep.Totals.EphemeralNotCopied > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf(
			"Ephemeral instances not copied: %d; their clients re-register them once pointed at Roster.", rep.Totals.EphemeralNotCopied))
	}
	mixed := 0
	for _, s := range rep.Services {
		if s.Kind == "persistent" && s.EphemeralInstances > 0 {
			mixed++
		}
	}
	if mixed > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf(
			"Services holding both kinds of instances at the source: %d; Roster keeps a service to one kind, as Nacos 2 does: they are persistent, and their ephemeral clients' registrations will be refused.", mixed))
	}
	if rep.Totals.Failed > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf(
			"Services failed: %d (each with its error): one whose source could not be read was not written at all; one whose write failed is completed by running the import again.", rep.Totals.Failed))
	}
	if !rep.Changed && rep.Totals.Failed == 0 {
		if rep.DryRun {
			rep.Notes = append(rep.Notes, "Nothing to write: Roster already holds everything.")
		} else {
			rep.Notes = append(rep.Notes, "Nothing changed: Roster already held everything.")
		}
	}
}

// namespacesToRead is the source's namespaces, narrowed to the ones asked for. A source
// that cannot list them is read in the ones asked for, or public.
func namespacesToRead(ctx context.Context, r Reader, want []string) ([]Namespace, error) {
	list, ok, err := r.Namespaces(ctx)
	if err != nil {
		return nil, err
	}
	if !ok {
		if len(want) == 0 {
			want = []string{naming.DefaultNamespace}
		}
		out := make([]Namespace, 0, len(want))
		for _, id := range want {
			out = append(out, Namespace{ID: id, Name: id})
		}
		return out, nil
	}
	if len(want) == 0 {
		return list, nil
	}
	var out []Namespace
	for _, id := range want {
		i := slices.IndexFunc(list, func(n Namespace) bool { return n.ID == id })
		if i < 0 {
			return nil, fmt.Errorf("--namespace %s: the source has no such namespace", id)
		}
		out = append(out, list[i])
	}
	return out, nil
}

// targetLacksAPI reports an answer of a Roster without the endpoint.
func targetLacksAPI(err error) bool {
	return client.IsStatus(err, http.StatusNotFound) || client.IsStatus(err, http.StatusNotImplemented) ||
		client.IsStatus(err, http.StatusMethodNotAllowed)
}

func (t *Target) importNamespaces(ctx context.Context, namespaces []Namespace, dryRun bool, rep *Report) error {
	have, err := t.c.ListNamespaces(ctx)
	if targetLacksAPI(err) {
		for _, ns := range namespaces {
			rep.Namespaces = append(rep.Namespaces, NamespaceResult{ID: ns.ID, Name: ns.Name, Action: ActionImplicit})
		}
		rep.Notes = append(rep.Notes, "The target has no namespace API: its namespaces exist as services use them.")
		return nil
	}
	if err != nil {
		return fmt.Errorf("target: list namespaces: %w", err)
	}
	for _, ns := range namespaces {
		res := NamespaceResult{ID: ns.ID, Name: ns.Name, Action: ActionUnchanged}
		i := slices.IndexFunc(have, func(n client.Namespace) bool { return n.ID == ns.ID })
		spec := client.NamespaceSpec{ID: ns.ID, Name: displayName(ns), Desc: ns.Desc, DescSet: true}
		var write func() error
		switch {
		case ns.ID == naming.DefaultNamespace:
			// public always exists and keeps its own name.
		case i < 0 || have[i].Type == client.NamespaceImplicit:
			// An implicit namespace is one in use that nobody created: creating it
			// gives it the source's name and description.
			res.Action = ActionCreate
			write = func() error { return t.c.CreateNamespace(ctx, spec) }
		case have[i].Name != spec.Name || deref(have[i].Desc) != ns.Desc:
			res.Action = ActionUpdate
			write = func() error { return t.c.UpdateNamespace(ctx, spec) }
		}
		if write != nil && !dryRun {
			if err := write(); err != nil {
				res.Action, res.Error = ActionFailed, err.Error()
			}
		}
		rep.Namespaces = append(rep.Namespaces, res)
	}
	return nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func displayName(ns Namespace) string {
	if ns.Name == "" {
		return ns.ID
	}
	return ns.Name
}

// write is one planned request to the target.
type write struct {
	what string
	do   func(ctx context.Context) error
}

// importService reads one service from r, compares it with the target and writes the
// difference.
func (t *Target) importService(ctx context.Context, r Reader, ns, group, name string, dryRun bool) ServiceResult {
	res := ServiceResult{Service: ns + "/" + group + naming.GroupSeparator + name}
	src, err := r.Service(ctx, ns, group, name)
	if err != nil {
		res.Action, res.Error = ActionFailed, err.Error()
		return res
	}
	res.Kind = kindName(src.Ephemeral)
	res.Clusters, res.Instances, res.EphemeralInstances = len(src.Clusters), len(src.Instances), src.EphemeralInstances
	plan, created, err := t.plan(ctx, src)
	if err != nil {
		res.Action, res.Error = ActionFailed, "target: "+err.Error()
		return res
	}
	for _, w := range plan {
		res.Plan = append(res.Plan, w.what)
	}
	res.Writes = len(plan)
	switch {
	case len(plan) == 0:
		res.Action = ActionUnchanged
	case created:
		res.Action = ActionCreate
	default:
		res.Action = ActionUpdate
	}
	if dryRun {
		return res
	}
	for i, w := range plan {
		if err := w.do(ctx); err != nil {
			res.Action = ActionFailed
			res.Writes = i
			res.Error = fmt.Sprintf("target: %s: %v (%d of %d writes made; run again to complete)", w.what, err, i, len(plan))
			return res
		}
	}
	return res
}

func kindName(ephemeral bool) string {
	if ephemeral {
		return "ephemeral"
	}
	return "persistent"
}

// plan compares src with the target and lists the writes that make the target hold it.
func (t *Target) plan(ctx context.Context, src *Service) (plan []write, created bool, err error) {
	ref := src.ref()
	opts := client.ServiceOptions{ProtectThreshold: src.ProtectThreshold, Metadata: src.Metadata, Selector: &src.Selector}
	_, err = t.c.CatalogService(ctx, ref)
	var have *Service
	switch {
	case client.IsStatus(err, http.StatusNotFound):
		created = true
		if src.Ephemeral {
			plan = append(plan, write{"create ephemeral service", func(ctx context.Context) error { return t.c.CreateEphemeralService(ctx, ref, opts) }})
		} else {
			plan = append(plan, write{"create service", func(ctx context.Context) error { return t.c.CreateService(ctx, ref, opts) }})
		}
		have = &Service{}
	case err != nil:
		return nil, false, err
	default:
		if have, err = t.read.Service(ctx, src.Namespace, src.Group, src.Name); err != nil {
			return nil, false, err
		}
		if !sameServiceFields(src, have) {
			plan = append(plan, write{"update service", func(ctx context.Context) error { return t.c.UpdateService(ctx, ref, opts) }})
		}
	}
	for _, cl := range src.Clusters {
		i := slices.IndexFunc(have.Clusters, func(c Cluster) bool { return c.Name == cl.Name })
		if i >= 0 && sameCluster(cl, have.Clusters[i]) {
			continue
		}
		cfg := client.ClusterConfig{Name: cl.Name, HealthChecker: cl.HealthChecker, CheckPort: cl.CheckPort,
			UseInstancePort: cl.UseInstancePort, Metadata: cl.Metadata}
		plan = append(plan, write{"set cluster " + cl.Name + " (" + cl.HealthChecker.Type + ")",
			func(ctx context.Context) error { return t.c.UpdateCluster(ctx, ref, cfg) }})
	}
	haveInst := map[string]Instance{}
	for _, in := range have.Instances {
		haveInst[in.key()] = in
	}
	for _, in := range src.Instances {
		if h, ok := haveInst[in.key()]; ok && sameInstance(in, h) {
			continue
		} else if !ok && !created {
			// /instance/list leaves disabled instances out: ask for this one by name.
			if h, err := t.instance(ctx, ref, in); err != nil {
				return nil, false, err
			} else if h != nil && sameInstance(in, *h) {
				continue
			}
		}
		ci := client.Instance{IP: in.IP, Port: in.Port, ClusterName: in.Cluster, Weight: in.Weight, Healthy: in.Healthy,
			Enabled: in.Enabled, Ephemeral: false, Metadata: in.Metadata}
		plan = append(plan, write{fmt.Sprintf("register %s:%d in %s", in.IP, in.Port, in.Cluster),
			func(ctx context.Context) error { return t.c.RegisterInstance(ctx, ref, ci) }})
	}
	return plan, created, nil
}

// instance reads one persistent instance from the target; nil when it has none.
func (t *Target) instance(ctx context.Context, ref client.ServiceRef, in Instance) (*Instance, error) {
	got, err := t.c.GetInstance(ctx, ref, in.IP, in.Port, in.Cluster)
	var ce *client.Error
	if errors.As(err, &ce) && ce.Status >= 400 && ce.Status < 500 {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if got.Ephemeral {
		return nil, nil
	}
	cluster := got.ClusterName
	if cluster == "" {
		cluster = in.Cluster
	}
	// GET /instance does not answer the enabled flag (Nacos' neither); asked for because
	// /instance/list left it out, the instance is a disabled one.
	return &Instance{IP: got.IP, Port: got.Port, Cluster: cluster, Weight: got.Weight, Healthy: got.Healthy,
		Enabled: false, Metadata: nonEmpty(got.Metadata)}, nil
}

// ServiceLine is a one-line description of a result, for progress output.
func ServiceLine(done, total int, s ServiceResult) string {
	line := fmt.Sprintf("[%d/%d] %s: %s", done, total, s.Service, s.Action)
	if s.Writes > 0 {
		line += fmt.Sprintf(" (%d writes)", s.Writes)
	}
	if s.Error != "" {
		line += ": " + strings.Join(strings.Fields(s.Error), " ")
	}
	return line
}
