package api

import (
	"net/http"
	"slices"
	"sort"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/roster-registry/roster/auth"
	"github.com/roster-registry/roster/naming"
)

// The console's user, role and permission pages (Nacos' UserController,
// RoleController and PermissionController under /nacos/v1/auth), mapped onto Roster's
// access-control state (package auth), whose changes go through Raft as the
// /roster/v1/acl routes' do:
//   - a Nacos user is an auth user; its password is hashed here, its hash never shown;
//   - a Nacos role binding (role, username) is a member of an auth role; a role exists
//     while it has members, so a role without users cannot be created;
//   - a Nacos permission (role, resource "namespace:group:*", action r/w/rw) is an auth
//     grant: resource "ns:*:*" is the namespace ns, "ns:g:*" its group g, "*:*:*" every
//     namespace, and a blank namespace is public. Nacos' third part (the resource type)
//     has no counterpart: only "*" is taken.
func (a *API) nacosAuthRoutes(r chi.Router) {
	a.mount(r,
		route{http.MethodPost, "/v1/auth/users/admin", a.nacosCreateAdmin},
		route{http.MethodGet, "/v1/auth/users", a.nacosAuthRead(nacosUsers)},
		route{http.MethodPost, "/v1/auth/users", a.nacosAuthWrite(a.nacosCreateUser, "username", "password")},
		route{http.MethodPut, "/v1/auth/users", a.nacosAuthWrite(nacosUpdateUser, "username", "newPassword")},
		route{http.MethodDelete, "/v1/auth/users", a.nacosAuthWrite(nacosDeleteUser, "username")},
		route{http.MethodGet, "/v1/auth/users/search", a.nacosAuthRead(nacosSearchUsers)},
		route{http.MethodGet, "/v1/auth/roles", a.nacosAuthRead(nacosRoles)},
		route{http.MethodPost, "/v1/auth/roles", a.nacosAuthWrite(nacosAddRole, "role", "username")},
		route{http.MethodDelete, "/v1/auth/roles", a.nacosAuthWrite(nacosDeleteRole, "role")},
		route{http.MethodGet, "/v1/auth/roles/search", a.nacosAuthRead(nacosSearchRoles)},
		route{http.MethodGet, "/v1/auth/permissions", a.nacosAuthRead(nacosPermissions)},
		route{http.MethodPost, "/v1/auth/permissions", a.nacosAuthWrite(nacosPermissionChange(auth.OpGrant, "add permission ok!"), permissionParams...)},
		route{http.MethodDelete, "/v1/auth/permissions", a.nacosAuthWrite(nacosPermissionChange(auth.OpRevoke, "delete permission ok!"), permissionParams...)},
	)
}

// page is Nacos' Page: one page of items and how many there are in all.
type page[T any] struct {
	TotalCount     int `json:"totalCount"`
	PageNumber     int `json:"pageNumber"`
	PagesAvailable int `json:"pagesAvailable"`
	PageItems      []T `json:"pageItems"`
}

// pageOf cuts page pageNo (from 1, default 1) of size pageSize (default 10) out of items.
func pageOf[T any](p params, items []T) (page[T], error) {
	pageNo, pageSize, err := pageRequest(p)
	if err != nil {
		return page[T]{}, err
	}
	if pageNo < 1 {
		pageNo = 1
	}
	if pageSize < 1 {
		pageSize = 10
	}
	start, end := pageBounds(pageNo, pageSize, len(items))
	out := page[T]{TotalCount: len(items), PageNumber: pageNo, PagesAvailable: (len(items) + pageSize - 1) / pageSize, PageItems: []T{}}
	out.PageItems = append(out.PageItems, items[start:end]...)
	return out, nil
}

// matches is Nacos' search: "blur" a substring, anything else the exact text; a blank
// filter matches everything.
func matches(p params, filter, value string) bool {
	if filter == "" {
		return true
	}
	if p.get("search") == "blur" {
		return strings.Contains(value, filter)
	}
	return value == filter
}

// authRequest is where every console user, role and permission request starts: the
// access-control state (501 where auth is not configured) and the request's parameters.
func (a *API) authRequest(r *http.Request) (*auth.State, params, error) {
	au, err := a.authority()
	if err != nil {
		return nil, nil, err
	}
	p, err := readParams(r)
	if err != nil {
		return nil, nil, err
	}
	return au.State(), p, nil
}

// nacosAuthRead serves one of the console's user, role and permission reads: answer
// makes the JSON answer of the state and the parameters.
func (a *API) nacosAuthRead(answer func(st *auth.State, p params) (any, error)) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		st, p, err := a.authRequest(r)
		if err != nil {
			return err
		}
		out, err := answer(st, p)
		if err != nil {
			return err
		}
		return writeJSON(w, out)
	}
}

// nacosAuthInput is what a console user, role or permission write is decided from.
type nacosAuthInput struct {
	r     *http.Request
	state *auth.State
	p     params
	args  []string // the required parameters' values, in the order nacosAuthWrite names them
}

// nacosAuthChange decides a write: the changes to apply through Raft, one after
// another, and the message the RestResult answers once all are applied.
type nacosAuthChange func(in nacosAuthInput) ([]auth.Change, string, error)

// nacosAuthWrite serves one of the console's user, role and permission writes: the
// required parameters must be present (Nacos' text for the first one missing, in the
// order named), decide makes the changes, and Nacos' RestResult answers.
func (a *API) nacosAuthWrite(decide nacosAuthChange, required ...string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		st, p, err := a.authRequest(r)
		if err != nil {
			return err
		}
		in := nacosAuthInput{r: r, state: st, p: p, args: make([]string, len(required))}
		for i, name := range required {
			if in.args[i], err = p.required(name); err != nil {
				return err
			}
		}
		changes, message, err := decide(in)
		if err != nil {
			return err
		}
		for _, c := range changes {
			if err := a.reg.ApplyAuth(r.Context(), c); err != nil {
				return err
			}
		}
		return writeJSON(w, restResult(http.StatusOK, &message, nil))
	}
}

type nacosUser struct {
	Username string `json:"username"`
}

func nacosUsers(st *auth.State, p params) (any, error) {
	filter := p.get("username")
	users := []nacosUser{}
	for name := range st.Users {
		if matches(p, filter, name) {
			users = append(users, nacosUser{Username: name})
		}
	}
	sort.Slice(users, func(i, j int) bool { return users[i].Username < users[j].Username })
	return pageOf(p, users)
}

// containing is what the search routes answer: the sorted names that contain part.
func containing[V any](names map[string]V, part string) []string {
	out := []string{}
	for name := range names {
		if strings.Contains(name, part) {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// nacosSearchUsers is GET /v1/auth/users/search?username=: the names that contain it.
func nacosSearchUsers(st *auth.State, p params) (any, error) {
	return containing(st.Users, p.get("username")), nil
}

// nacosCreateUser is POST /v1/auth/users (username, password).
func (a *API) nacosCreateUser(in nacosAuthInput) ([]auth.Change, string, error) {
	user := in.args[0]
	_, hash, err := a.newCredential(in.p, user)
	if err != nil {
		return nil, "", err
	}
	return []auth.Change{{Op: auth.OpCreateUser, User: user, PasswordHash: hash}}, "create user ok!", nil
}

// nacosCreateAdmin is Nacos 2.4's POST /v1/auth/users/admin: the first administrator,
// "nacos", once, while no user exists (Roster's ACL bootstrap).
func (a *API) nacosCreateAdmin(w http.ResponseWriter, r *http.Request) error {
	st, p, err := a.authRequest(r)
	if err != nil {
		return err
	}
	if len(st.Users) > 0 {
		return naming.Errorf(http.StatusConflict, "have admin user cannot use it")
	}
	p["username"] = []string{"nacos"}
	cred, hash, err := a.newCredential(p, "nacos")
	if err != nil {
		return err
	}
	if err := a.reg.ApplyAuth(r.Context(), auth.Change{Op: auth.OpBootstrap, User: cred.Username, PasswordHash: hash}); err != nil {
		return err
	}
	return writeJSON(w, cred)
}

// nacosUpdateUser is PUT /v1/auth/users (username, newPassword): an administrator may
// change any password, a user only their own.
func nacosUpdateUser(in nacosAuthInput) ([]auth.Change, string, error) {
	user, pw := in.args[0], in.args[1]
	if id := identityFrom(in.r.Context()); id != nil && !id.Admin() && id.Name != user {
		return nil, "", naming.Errorf(http.StatusForbidden, "%s", auth.ErrForbidden.Error())
	}
	hash, err := auth.HashPassword(pw)
	if err != nil {
		return nil, "", err
	}
	return []auth.Change{{Op: auth.OpSetPassword, User: user, PasswordHash: hash}}, "update user ok!", nil
}

// nacosDeleteUser is DELETE /v1/auth/users?username=; an administrator stays.
func nacosDeleteUser(in nacosAuthInput) ([]auth.Change, string, error) {
	user := in.args[0]
	if slices.Contains(in.state.Roles[auth.AdminRole], user) {
		return nil, "", naming.BadRequest("cannot delete admin: " + user)
	}
	return []auth.Change{{Op: auth.OpDeleteUser, User: user}}, "delete user ok!", nil
}

// nacosRole is Nacos' RoleInfo: one user's membership of a role.
type nacosRole struct {
	Role     string `json:"role"`
	Username string `json:"username"`
}

func nacosRoles(st *auth.State, p params) (any, error) {
	out := []nacosRole{}
	for role, users := range st.Roles {
		if !matches(p, p.get("role"), role) {
			continue
		}
		for _, u := range users {
			if matches(p, p.get("username"), u) {
				out = append(out, nacosRole{Role: role, Username: u})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Role != out[j].Role {
			return out[i].Role < out[j].Role
		}
		return out[i].Username < out[j].Username
	})
	return pageOf(p, out)
}

// nacosSearchRoles is GET /v1/auth/roles/search?role=: the role names that contain it.
func nacosSearchRoles(st *auth.State, p params) (any, error) {
	return containing(st.Roles, p.get("role")), nil
}

// nacosAddRole is POST /v1/auth/roles (role, username).
func nacosAddRole(in nacosAuthInput) ([]auth.Change, string, error) {
	return []auth.Change{{Op: auth.OpBindRole, Role: in.args[0], User: in.args[1]}}, "add role ok!", nil
}

// nacosDeleteRole is DELETE /v1/auth/roles?role=&username=: one user's membership, or
// without username every member's (the role is gone with its last member). The role's
// grants stay, as Nacos keeps its permissions.
func nacosDeleteRole(in nacosAuthInput) ([]auth.Change, string, error) {
	role, user := in.args[0], in.p.get("username")
	if user != "" {
		return []auth.Change{{Op: auth.OpUnbindRole, Role: role, User: user}}, "delete role of user " + user + " ok!", nil
	}
	var changes []auth.Change
	for _, u := range in.state.Roles[role] {
		changes = append(changes, auth.Change{Op: auth.OpUnbindRole, Role: role, User: u})
	}
	return changes, "delete role ok!", nil
}

// nacosPermission is Nacos' PermissionInfo.
type nacosPermission struct {
	Role     string `json:"role"`
	Resource string `json:"resource"`
	Action   string `json:"action"`
}

// nacosResource renders a grant's resource as Nacos writes a permission's.
func nacosResource(res string) string {
	if res == "*" {
		return "*:*:*"
	}
	ns, group, hasGroup := strings.Cut(res, ":")
	if !hasGroup {
		group = "*"
	}
	return ns + ":" + group + ":*"
}

// grantResource reads a Nacos permission resource ("ns:group:*", blank ns = public)
// as a grant's resource.
func grantResource(res string) (string, error) {
	parts := strings.Split(res, ":")
	if len(parts) == 1 {
		// Roster's own form: "*", "ns" or (with two parts, below) "ns:group".
		return res, nil
	}
	if len(parts) == 2 {
		return res, nil
	}
	if len(parts) != 3 || parts[2] != "*" && parts[2] != "naming/*" {
		return "", naming.BadRequest("resource " + res + " must be namespace:group:* (Roster grants cover whole namespaces or groups, not single resources)")
	}
	ns, group := parts[0], parts[1]
	if ns == "" {
		ns = naming.DefaultNamespace
	}
	switch {
	case ns == "*" && group == "*":
		return "*", nil
	case ns == "*":
		return "", naming.BadRequest("resource " + res + ": a group in every namespace cannot be granted; grant it per namespace")
	case group == "*":
		return ns, nil
	}
	return ns + ":" + group, nil
}

func nacosPermissions(st *auth.State, p params) (any, error) {
	out := []nacosPermission{}
	for _, g := range st.Grants {
		if matches(p, p.get("role"), g.Role) {
			out = append(out, nacosPermission{Role: g.Role, Resource: nacosResource(g.Resource), Action: string(g.Action)})
		}
	}
	return pageOf(p, out)
}

// permissionParams are what a permission write requires, in nacosPermissionChange's order.
var permissionParams = []string{"role", "resource", "action"}

// nacosPermissionChange grants (OpGrant) or revokes (OpRevoke) a Nacos permission and
// answers message.
func nacosPermissionChange(op auth.Op, message string) nacosAuthChange {
	return func(in nacosAuthInput) ([]auth.Change, string, error) {
		resource, err := grantResource(in.args[1])
		if err != nil {
			return nil, "", err
		}
		g := auth.Grant{Role: in.args[0], Resource: resource, Action: auth.Action(in.args[2])}
		if err := auth.CheckGrant(g); err != nil {
			return nil, "", err
		}
		return []auth.Change{{Op: op, Grant: &g}}, message, nil
	}
}
