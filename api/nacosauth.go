package api

import (
	"net/http"
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
	r.Post("/v1/auth/users/admin", a.wrap(a.nacosCreateAdmin))
	r.Get("/v1/auth/users", a.wrap(a.nacosUsers))
	r.Post("/v1/auth/users", a.wrap(a.nacosCreateUser))
	r.Put("/v1/auth/users", a.wrap(a.nacosUpdateUser))
	r.Delete("/v1/auth/users", a.wrap(a.nacosDeleteUser))
	r.Get("/v1/auth/users/search", a.wrap(a.nacosSearchUsers))
	r.Get("/v1/auth/roles", a.wrap(a.nacosRoles))
	r.Post("/v1/auth/roles", a.wrap(a.nacosAddRole))
	r.Delete("/v1/auth/roles", a.wrap(a.nacosDeleteRole))
	r.Get("/v1/auth/roles/search", a.wrap(a.nacosSearchRoles))
	r.Get("/v1/auth/permissions", a.wrap(a.nacosPermissions))
	r.Post("/v1/auth/permissions", a.wrap(a.nacosAddPermission))
	r.Delete("/v1/auth/permissions", a.wrap(a.nacosDeletePermission))
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
	pageNo, err := pageParam(p, "pageNo", 1)
	if err != nil {
		return page[T]{}, err
	}
	pageSize, err := pageParam(p, "pageSize", 10)
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

func restOK(w http.ResponseWriter, message string) error {
	return writeJSON(w, restResult(http.StatusOK, &message, nil))
}

type nacosUser struct {
	Username string `json:"username"`
}

func (a *API) nacosUsers(w http.ResponseWriter, r *http.Request) error {
	au, err := a.authority()
	if err != nil {
		return err
	}
	p, err := readParams(r)
	if err != nil {
		return err
	}
	filter := p.get("username")
	users := []nacosUser{}
	for name := range au.State().Users {
		if matches(p, filter, name) {
			users = append(users, nacosUser{Username: name})
		}
	}
	sort.Slice(users, func(i, j int) bool { return users[i].Username < users[j].Username })
	pg, err := pageOf(p, users)
	if err != nil {
		return err
	}
	return writeJSON(w, pg)
}

// nacosSearchUsers is GET /v1/auth/users/search?username=: the names that contain it.
func (a *API) nacosSearchUsers(w http.ResponseWriter, r *http.Request) error {
	au, err := a.authority()
	if err != nil {
		return err
	}
	p, err := readParams(r)
	if err != nil {
		return err
	}
	out := []string{}
	for name := range au.State().Users {
		if strings.Contains(name, p.get("username")) {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return writeJSON(w, out)
}

func (a *API) nacosCreateUser(w http.ResponseWriter, r *http.Request) error {
	if _, err := a.authority(); err != nil {
		return err
	}
	p, err := readParams(r)
	if err != nil {
		return err
	}
	user, err := p.required("username")
	if err != nil {
		return err
	}
	if _, err := p.required("password"); err != nil {
		return err
	}
	_, hash, err := a.newCredential(p, user)
	if err != nil {
		return err
	}
	if err := a.reg.ApplyAuth(r.Context(), auth.Change{Op: auth.OpCreateUser, User: user, PasswordHash: hash}); err != nil {
		return err
	}
	return restOK(w, "create user ok!")
}

// nacosCreateAdmin is Nacos 2.4's POST /v1/auth/users/admin: the first administrator,
// "nacos", once, while no user exists (Roster's ACL bootstrap).
func (a *API) nacosCreateAdmin(w http.ResponseWriter, r *http.Request) error {
	au, err := a.authority()
	if err != nil {
		return err
	}
	p, err := readParams(r)
	if err != nil {
		return err
	}
	if len(au.State().Users) > 0 {
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
func (a *API) nacosUpdateUser(w http.ResponseWriter, r *http.Request) error {
	if _, err := a.authority(); err != nil {
		return err
	}
	p, err := readParams(r)
	if err != nil {
		return err
	}
	user, err := p.required("username")
	if err != nil {
		return err
	}
	pw, err := p.required("newPassword")
	if err != nil {
		return err
	}
	if id := identityFrom(r.Context()); id != nil && !id.Admin() && id.Name != user {
		deny(w, r, http.StatusForbidden, auth.ErrForbidden.Error())
		return nil
	}
	hash, err := auth.HashPassword(pw)
	if err != nil {
		return err
	}
	if err := a.reg.ApplyAuth(r.Context(), auth.Change{Op: auth.OpSetPassword, User: user, PasswordHash: hash}); err != nil {
		return err
	}
	return restOK(w, "update user ok!")
}

func (a *API) nacosDeleteUser(w http.ResponseWriter, r *http.Request) error {
	au, err := a.authority()
	if err != nil {
		return err
	}
	p, err := readParams(r)
	if err != nil {
		return err
	}
	user, err := p.required("username")
	if err != nil {
		return err
	}
	for _, u := range au.State().Roles[auth.AdminRole] {
		if u == user {
			return naming.BadRequest("cannot delete admin: " + user)
		}
	}
	if err := a.reg.ApplyAuth(r.Context(), auth.Change{Op: auth.OpDeleteUser, User: user}); err != nil {
		return err
	}
	return restOK(w, "delete user ok!")
}

// nacosRole is Nacos' RoleInfo: one user's membership of a role.
type nacosRole struct {
	Role     string `json:"role"`
	Username string `json:"username"`
}

func (a *API) nacosRoles(w http.ResponseWriter, r *http.Request) error {
	au, err := a.authority()
	if err != nil {
		return err
	}
	p, err := readParams(r)
	if err != nil {
		return err
	}
	out := []nacosRole{}
	for role, users := range au.State().Roles {
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
	pg, err := pageOf(p, out)
	if err != nil {
		return err
	}
	return writeJSON(w, pg)
}

// nacosSearchRoles is GET /v1/auth/roles/search?role=: the role names that contain it.
func (a *API) nacosSearchRoles(w http.ResponseWriter, r *http.Request) error {
	au, err := a.authority()
	if err != nil {
		return err
	}
	p, err := readParams(r)
	if err != nil {
		return err
	}
	out := []string{}
	for role := range au.State().Roles {
		if strings.Contains(role, p.get("role")) {
			out = append(out, role)
		}
	}
	sort.Strings(out)
	return writeJSON(w, out)
}

func (a *API) nacosAddRole(w http.ResponseWriter, r *http.Request) error {
	p, err := readParams(r)
	if err != nil {
		return err
	}
	role, err := p.required("role")
	if err != nil {
		return err
	}
	user, err := p.required("username")
	if err != nil {
		return err
	}
	if err := a.reg.ApplyAuth(r.Context(), auth.Change{Op: auth.OpBindRole, Role: role, User: user}); err != nil {
		return err
	}
	return restOK(w, "add role ok!")
}

// nacosDeleteRole is DELETE /v1/auth/roles?role=&username=: one user's membership, or
// without username every member's (the role is gone with its last member). The role's
// grants stay, as Nacos keeps its permissions.
func (a *API) nacosDeleteRole(w http.ResponseWriter, r *http.Request) error {
	au, err := a.authority()
	if err != nil {
		return err
	}
	p, err := readParams(r)
	if err != nil {
		return err
	}
	role, err := p.required("role")
	if err != nil {
		return err
	}
	users := []string{p.get("username")}
	if users[0] == "" {
		users = append([]string(nil), au.State().Roles[role]...)
	}
	for _, u := range users {
		if err := a.reg.ApplyAuth(r.Context(), auth.Change{Op: auth.OpUnbindRole, Role: role, User: u}); err != nil {
			return err
		}
	}
	if p.get("username") == "" {
		return restOK(w, "delete role ok!")
	}
	return restOK(w, "delete role of user "+p.get("username")+" ok!")
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

func (a *API) nacosPermissions(w http.ResponseWriter, r *http.Request) error {
	au, err := a.authority()
	if err != nil {
		return err
	}
	p, err := readParams(r)
	if err != nil {
		return err
	}
	out := []nacosPermission{}
	for _, g := range au.State().Grants {
		if matches(p, p.get("role"), g.Role) {
			out = append(out, nacosPermission{Role: g.Role, Resource: nacosResource(g.Resource), Action: string(g.Action)})
		}
	}
	pg, err := pageOf(p, out)
	if err != nil {
		return err
	}
	return writeJSON(w, pg)
}

func (a *API) permissionChange(r *http.Request, op auth.Op) error {
	p, err := readParams(r)
	if err != nil {
		return err
	}
	role, err := p.required("role")
	if err != nil {
		return err
	}
	res, err := p.required("resource")
	if err != nil {
		return err
	}
	action, err := p.required("action")
	if err != nil {
		return err
	}
	resource, err := grantResource(res)
	if err != nil {
		return err
	}
	g := auth.Grant{Role: role, Resource: resource, Action: auth.Action(action)}
	if err := auth.CheckGrant(g); err != nil {
		return err
	}
	return a.reg.ApplyAuth(r.Context(), auth.Change{Op: op, Grant: &g})
}

func (a *API) nacosAddPermission(w http.ResponseWriter, r *http.Request) error {
	if err := a.permissionChange(r, auth.OpGrant); err != nil {
		return err
	}
	return restOK(w, "add permission ok!")
}

func (a *API) nacosDeletePermission(w http.ResponseWriter, r *http.Request) error {
	if err := a.permissionChange(r, auth.OpRevoke); err != nil {
		return err
	}
	return restOK(w, "delete permission ok!")
}
