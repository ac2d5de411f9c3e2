package api

import (
	"errors"
	"net/http"
	"regexp"
	"strconv"

	"github.com/go-chi/chi/v5"

	"github.com/roster-registry/roster/auth"
	"github.com/roster-registry/roster/naming"
	"github.com/roster-registry/roster/registry"
)

// Namespaces: the console's v1 endpoints (console/NamespaceController: RestResult list,
// bare answers elsewhere, writes answer true/false) and the Open API v2 ones
// (NamespaceControllerV2: Result envelope, ILLEGAL_NAMESPACE 22000 and
// NAMESPACE_NOT_EXIST 22001). Both read and write the registry's replicated records.
func (a *API) namespaceRoutes(r chi.Router) {
	r.Get("/v1/console/namespaces", a.wrap(a.consoleNamespacesGet))
	r.Post("/v1/console/namespaces", a.serve(apiV1, a.writeNamespace(apiV1, namespaceCreate)))
	r.Put("/v1/console/namespaces", a.serve(apiV1, a.writeNamespace(apiV1, namespaceEdit)))
	r.Delete("/v1/console/namespaces", a.serve(apiV1, a.writeNamespace(apiV1, namespaceDelete)))

	r.Get("/v2/console/namespace", a.serve(apiV2, a.getNamespace))
	r.Post("/v2/console/namespace", a.serve(apiV2, a.writeNamespace(apiV2, namespaceCreate)))
	r.Put("/v2/console/namespace", a.serve(apiV2, a.writeNamespace(apiV2, namespaceEdit)))
	r.Delete("/v2/console/namespace", a.serve(apiV2, a.writeNamespace(apiV2, namespaceDelete)))
	r.Get("/v2/console/namespace/list", a.serve(apiV2, a.namespaceList))
	r.Get("/v2/console/namespace/exist", a.serve(apiV2, a.namespaceExists))
}

// namespaceJSON is Nacos' Namespace (core/namespace/model/Namespace.java) and, with
// show=all, its NamespaceAllInfo (the same fields). Roster has no configuration, so
// configCount is 0, and quota is the namespace's service quota (0 = unlimited) where
// Nacos shows its configuration quota. The last three fields are Roster's: Nacos'
// console ignores them.
type namespaceJSON struct {
	Namespace         string  `json:"namespace"`
	NamespaceShowName string  `json:"namespaceShowName"`
	NamespaceDesc     *string `json:"namespaceDesc"`
	Quota             int     `json:"quota"`
	ConfigCount       int     `json:"configCount"`
	Type              int     `json:"type"`
	InstanceQuota     int     `json:"instanceQuota"`
	ServiceCount      int     `json:"serviceCount"`
	InstanceCount     int     `json:"instanceCount"`
}

// namespaceOf renders a namespace. Nacos lists public without a description and shows
// it, alone, as "Public" with one; a namespace without a description has none.
func namespaceOf(in registry.NamespaceInfo, detail bool) namespaceJSON {
	out := namespaceJSON{
		Namespace: in.ID, NamespaceShowName: in.Name, Quota: in.QuotaServices, Type: int(in.Kind),
		InstanceQuota: in.QuotaInstances, ServiceCount: in.Services, InstanceCount: in.Instances,
	}
	if in.Desc != "" {
		d := in.Desc
		out.NamespaceDesc = &d
	}
	if in.Kind == registry.NamespacePublic {
		out.NamespaceDesc = nil
		if detail {
			out.NamespaceShowName = "Public"
			d := registry.PublicNamespaceDesc
			out.NamespaceDesc = &d
		}
	}
	return out
}

// visibleNamespaces lists public and every namespace the caller may read something of.
func (a *API) visibleNamespaces(r *http.Request) ([]namespaceJSON, error) {
	all, err := a.reg.Namespaces()
	if err != nil {
		return nil, err
	}
	out := make([]namespaceJSON, 0, len(all))
	for _, in := range all {
		if in.Kind != registry.NamespacePublic && !a.mayReadNamespace(r, in.ID) {
			continue
		}
		out = append(out, namespaceOf(in, false))
	}
	return out, nil
}

// mayReadNamespace: read on the namespace's default group, or on any group of it a
// service of it is in.
func (a *API) mayReadNamespace(r *http.Request, ns string) bool {
	if !a.authOn() || a.mayRead(r, ns, naming.DefaultGroup) {
		return true
	}
	keys, err := a.reg.Services(ns)
	if err != nil {
		return false
	}
	for _, k := range keys {
		if a.mayRead(r, ns, k.Group) {
			return true
		}
	}
	return false
}

// namespaceDetail is one namespace, or NAMESPACE_NOT_EXIST. A blank id is public.
func (a *API) namespaceDetail(id string) (namespaceJSON, error) {
	in, err := a.reg.Namespace(id)
	if err != nil {
		return namespaceJSON{}, err
	}
	if in == nil {
		return namespaceJSON{}, naming.ErrNamespaceNotFound(id)
	}
	return namespaceOf(*in, true), nil
}

// consoleNamespacesGet is GET /v1/console/namespaces: the list as RestResult, or with
// show=all one namespace bare, or with checkNamespaceIdExist=true whether an id is
// taken (public or created; an id clients merely use may still be created).
func (a *API) consoleNamespacesGet(w http.ResponseWriter, r *http.Request) error {
	p, err := readParams(r)
	if err != nil {
		return err
	}
	switch {
	case p.get("checkNamespaceIdExist") == "true":
		id := p.get("customNamespaceId")
		if id == "" {
			return writeJSON(w, false)
		}
		ok, err := a.reg.NamespaceRecorded(id)
		if err != nil {
			return err
		}
		return writeJSON(w, ok)
	case p.get("show") == "all":
		if _, present := p["namespaceId"]; !present {
			return naming.MissingParameter("namespaceId")
		}
		if !a.mayReadNamespace(r, p.namespace()) {
			deny(w, r, http.StatusForbidden, auth.ErrForbidden.Error())
			return nil
		}
		ns, err := a.namespaceDetail(p.namespace())
		if err != nil {
			return err
		}
		return writeJSON(w, ns)
	}
	list, err := a.visibleNamespaces(r)
	if err != nil {
		return err
	}
	return writeJSON(w, restResult(http.StatusOK, nil, list))
}

// quotaParams reads Roster's quota parameters, maxServices and maxInstances: a number
// of 0 or more sets the namespace's override, -1 drops it.
func quotaParams(p params) (services, instances *int, err error) {
	read := func(name string) (*int, error) {
		s := p.get(name)
		if s == "" {
			return nil, nil
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < -1 {
			return nil, naming.APIError(http.StatusBadRequest, naming.CodeParameterValidate,
				"Param '"+name+"' is illegal: a quota is 0 (unlimited) or more, or -1 for the server's default")
		}
		return &n, nil
	}
	if services, err = read("maxServices"); err != nil {
		return nil, nil, err
	}
	instances, err = read("maxInstances")
	return services, instances, err
}

// refusedFalse turns a refusal Nacos' v1 controller answers as false into false; the
// refusals Roster adds (public, a namespace with services, a bad quota) and failures
// stay errors, so that the caller reads why.
func refusedFalse(w http.ResponseWriter, err error) error {
	var ne *naming.Error
	if err == nil {
		return writeJSON(w, true)
	}
	if errors.As(err, &ne) && (ne.Code == naming.CodeIllegalNamespace || ne.Code == naming.CodeNamespaceNotExist) {
		return writeJSON(w, false)
	}
	return err
}

var (
	namespaceIDPattern = regexp.MustCompile(`^[\w-]+$`)
)

// maxNamespaceIDLength is NamespaceController's limit on a custom namespace id.
const maxNamespaceIDLength = 128

// checkNewNamespaceID applies NamespaceController's checks of a custom id.
func checkNewNamespaceID(id string) error {
	if !namespaceIDPattern.MatchString(id) {
		return naming.APIError(http.StatusBadRequest, naming.CodeIllegalNamespace, "namespaceId ["+id+"] mismatch the pattern")
	}
	if len(id) > maxNamespaceIDLength {
		return naming.APIError(http.StatusBadRequest, naming.CodeIllegalNamespace, "too long namespaceId, over 128")
	}
	return nil
}

// namespaceOp is which namespace write a request asks for.
type namespaceOp int

const (
	namespaceCreate namespaceOp = iota
	namespaceEdit
	namespaceDelete
)

// namespaceChange is a namespace write as its request names it; a nil name or
// description was not sent.
type namespaceChange struct {
	op   namespaceOp
	id   string
	name *string
	desc *string
}

// consoleNamespaceChange reads the console's v1 parameters: POST customNamespaceId,
// namespaceName (present), namespaceDesc; PUT namespace (required), namespaceShowName,
// namespaceDesc; DELETE namespaceId (required).
func consoleNamespaceChange(op namespaceOp, p params) (namespaceChange, error) {
	c := namespaceChange{op: op, desc: optional(p, "namespaceDesc")}
	var err error
	switch op {
	case namespaceCreate:
		if _, present := p["namespaceName"]; !present {
			return c, naming.MissingParameter("namespaceName")
		}
		c.id, c.name = p.get("customNamespaceId"), optional(p, "namespaceName")
	case namespaceEdit:
		c.id, err = p.required("namespace")
		c.name = optional(p, "namespaceShowName")
	case namespaceDelete:
		c.id, err = p.required("namespaceId")
	}
	return c, err
}

// namespaceChangeV2 reads Open API v2's (and v3's) parameters: POST and PUT a
// NamespaceForm (namespaceId and namespaceName present) and namespaceDesc, DELETE
// namespaceId (present).
func namespaceChangeV2(op namespaceOp, p params) (namespaceChange, error) {
	c := namespaceChange{op: op, desc: optional(p, "namespaceDesc")}
	if op == namespaceDelete {
		if _, present := p["namespaceId"]; !present {
			return c, naming.MissingRequestParam("namespaceId", "String")
		}
		c.id = p.get("namespaceId")
		return c, nil
	}
	for _, name := range []string{"namespaceId", "namespaceName"} {
		if _, present := p[name]; !present {
			return c, naming.APIError(http.StatusBadRequest, naming.CodeParameterMissing, "required parameter '"+name+"' is missing")
		}
	}
	c.id, c.name = p.get("namespaceId"), optional(p, "namespaceName")
	return c, nil
}

// writeNamespace is every front's namespace write: v reads the request and shapes the
// answer, true; Nacos' v1 controller answers a create or edit it refuses as false
// (refusedFalse), where v2 and v3 answer the error.
func (a *API) writeNamespace(v *version, op namespaceOp) handlerFunc {
	read := consoleNamespaceChange
	if v.v2 {
		read = namespaceChangeV2
	}
	return func(w http.ResponseWriter, r *http.Request) error {
		p, err := readParams(r)
		if err != nil {
			return err
		}
		c, err := read(op, p)
		if err != nil {
			return err
		}
		err = a.applyNamespaceChange(r, p, c)
		if !v.v2 && op != namespaceDelete {
			return refusedFalse(w, err)
		}
		if err != nil {
			return err
		}
		return v.data(w, true)
	}
}

// applyNamespaceChange checks a namespace write and applies it, with Roster's quota
// parameters on a create or an edit. A create's blank id is generated.
func (a *API) applyNamespaceChange(r *http.Request, p params, c namespaceChange) error {
	if c.op == namespaceDelete {
		return a.reg.DeleteNamespace(r.Context(), c.id)
	}
	if c.op == namespaceCreate {
		if c.id != "" {
			if err := checkNewNamespaceID(c.id); err != nil {
				return err
			}
		}
		if c.id == naming.DefaultNamespace {
			return naming.ErrNamespaceExists(c.id)
		}
	}
	if c.name != nil {
		if err := naming.CheckNamespaceName(*c.name); err != nil {
			return err
		}
	}
	maxS, maxI, err := quotaParams(p)
	if err != nil {
		return err
	}
	if c.op == namespaceEdit {
		return a.reg.UpdateNamespace(r.Context(), c.id, registry.NamespaceUpdate{Name: c.name, Desc: c.desc, MaxServices: maxS, MaxInstances: maxI})
	}
	n := naming.Namespace{ID: c.id, Name: *c.name, Desc: valueOr(c.desc, "")}
	if maxS != nil && *maxS >= 0 {
		n.MaxServices = maxS
	}
	if maxI != nil && *maxI >= 0 {
		n.MaxInstances = maxI
	}
	_, err = a.reg.CreateNamespace(r.Context(), n)
	return err
}

// valueOr is *s, or def where s is nil.
func valueOr(s *string, def string) string {
	if s == nil {
		return def
	}
	return *s
}

// optional is a parameter's value when it was sent (blank included).
func optional(p params, name string) *string {
	if _, present := p[name]; !present {
		return nil
	}
	v := p.get(name)
	return &v
}

// The Open API v2 namespace endpoints.

func (a *API) namespaceList(w http.ResponseWriter, r *http.Request) error {
	list, err := a.visibleNamespaces(r)
	if err != nil {
		return err
	}
	return apiV2.data(w, list)
}

// getNamespace is GET /v2/console/namespace?namespaceId=; blank is public.
func (a *API) getNamespace(w http.ResponseWriter, r *http.Request) error {
	p, err := readParams(r)
	if err != nil {
		return err
	}
	if _, present := p["namespaceId"]; !present {
		return naming.MissingRequestParam("namespaceId", "String")
	}
	ns, err := a.namespaceDetail(p.namespace())
	if err != nil {
		return err
	}
	return apiV2.data(w, ns)
}

// namespaceExists is GET /v2/console/namespace/exist?customNamespaceId=.
func (a *API) namespaceExists(w http.ResponseWriter, r *http.Request) error {
	p, err := readParams(r)
	if err != nil {
		return err
	}
	if _, present := p["customNamespaceId"]; !present {
		return naming.MissingRequestParam("customNamespaceId", "String")
	}
	id := p.get("customNamespaceId")
	if id == "" {
		return apiV2.data(w, false)
	}
	ok, err := a.reg.NamespaceRecorded(id)
	if err != nil {
		return err
	}
	return apiV2.data(w, ok)
}
