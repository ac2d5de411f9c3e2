package api

import (
	"net/http"
	"slices"
	"sort"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/roster-registry/roster/auth"
	"github.com/roster-registry/roster/naming"
)

// ACL management under /roster/v1/acl. Every change goes through Raft (the registry's
// applier forwards it to the leader), so all nodes agree. Passwords are hashed on the
// node that receives them; only the hash enters the log.
func (a *API) aclRoutes(r chi.Router) {
	a.mount(r,
		route{http.MethodPost, "/roster/v1/acl/bootstrap", a.aclBootstrap},
		route{http.MethodGet, "/roster/v1/acl/users", a.aclListUsers},
		route{http.MethodPost, "/roster/v1/acl/users", a.aclSetUser(auth.OpCreateUser)},
		route{http.MethodPut, "/roster/v1/acl/users", a.aclSetUser(auth.OpSetPassword)},
		route{http.MethodDelete, "/roster/v1/acl/users", a.aclDeleteUser},
		route{http.MethodGet, "/roster/v1/acl/roles", a.aclListRoles},
		route{http.MethodPost, "/roster/v1/acl/roles", a.aclRole(auth.OpBindRole)},
		route{http.MethodDelete, "/roster/v1/acl/roles", a.aclRole(auth.OpUnbindRole)},
		route{http.MethodGet, "/roster/v1/acl/grants", a.aclListGrants},
		route{http.MethodPost, "/roster/v1/acl/grants", a.aclGrant(auth.OpGrant)},
		route{http.MethodDelete, "/roster/v1/acl/grants", a.aclGrant(auth.OpRevoke)},
		route{http.MethodPost, "/roster/v1/acl/rotate-key", a.aclRotateKey},
		route{http.MethodGet, "/roster/v1/acl/whoami", a.aclWhoAmI},
	)
}

func (a *API) authority() (*auth.Authority, error) {
	if a.cfg.Auth == nil {
		return nil, naming.Errorf(http.StatusNotImplemented, "auth is not configured on this node")
	}
	return a.cfg.Auth, nil
}

// credentialAnswer is what bootstrap and user creation print: the password is shown
// once, here, and stored only as a hash.
type credentialAnswer struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

func (a *API) newCredential(p params, defaultUser string) (credentialAnswer, string, error) {
	user := p.get("username")
	if user == "" {
		user = defaultUser
	}
	if err := auth.CheckName("user", user); err != nil {
		return credentialAnswer{}, "", err
	}
	pw := p.get("password")
	if pw == "" {
		var err error
		if pw, err = auth.NewPassword(); err != nil {
			return credentialAnswer{}, "", err
		}
	}
	hash, err := auth.HashPassword(pw)
	if err != nil {
		return credentialAnswer{}, "", err
	}
	return credentialAnswer{Username: user, Password: pw}, hash, nil
}

// aclBootstrap creates the first administrator, once. It is public because no user
// exists yet; the FSM refuses it as soon as any user does.
func (a *API) aclBootstrap(w http.ResponseWriter, r *http.Request) error {
	if _, err := a.authority(); err != nil {
		return err
	}
	p, err := readParams(r)
	if err != nil {
		return err
	}
	if len(a.cfg.Auth.State().Users) > 0 {
		return naming.Errorf(http.StatusConflict, "ACL bootstrap already done: users exist")
	}
	cred, hash, err := a.newCredential(p, "admin")
	if err != nil {
		return err
	}
	if err := a.reg.ApplyAuth(r.Context(), auth.Change{Op: auth.OpBootstrap, User: cred.Username, PasswordHash: hash}); err != nil {
		return err
	}
	a.audit(r, "/roster/v1/acl/bootstrap", cred.Username, "", "", http.StatusOK)
	return writeJSON(w, cred)
}

type userJSON struct {
	Username string   `json:"username"`
	Roles    []string `json:"roles"`
}

func (a *API) aclListUsers(w http.ResponseWriter, r *http.Request) error {
	au, err := a.authority()
	if err != nil {
		return err
	}
	st := au.State()
	users := make([]userJSON, 0, len(st.Users))
	for name := range st.Users {
		u := userJSON{Username: name, Roles: []string{}}
		for role, members := range st.Roles {
			if slices.Contains(members, name) {
				u.Roles = append(u.Roles, role)
			}
		}
		sort.Strings(u.Roles)
		users = append(users, u)
	}
	sort.Slice(users, func(i, j int) bool { return users[i].Username < users[j].Username })
	return writeJSON(w, map[string]any{"users": users})
}

// aclSetUser creates a user (OpCreateUser) or changes its password (OpSetPassword); a
// blank password is generated and answered once.
func (a *API) aclSetUser(op auth.Op) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if _, err := a.authority(); err != nil {
			return err
		}
		p, err := readParams(r)
		if err != nil {
			return err
		}
		if p.get("username") == "" {
			return naming.RequiredParam("username")
		}
		cred, hash, err := a.newCredential(p, "")
		if err != nil {
			return err
		}
		if err := a.reg.ApplyAuth(r.Context(), auth.Change{Op: op, User: cred.Username, PasswordHash: hash}); err != nil {
			return err
		}
		return writeJSON(w, cred)
	}
}

func (a *API) aclDeleteUser(w http.ResponseWriter, r *http.Request) error {
	p, err := readParams(r)
	if err != nil {
		return err
	}
	user, err := p.required("username")
	if err != nil {
		return err
	}
	if err := a.reg.ApplyAuth(r.Context(), auth.Change{Op: auth.OpDeleteUser, User: user}); err != nil {
		return err
	}
	writeText(w, http.StatusOK, "ok")
	return nil
}

func (a *API) aclListRoles(w http.ResponseWriter, r *http.Request) error {
	au, err := a.authority()
	if err != nil {
		return err
	}
	return writeJSON(w, map[string]any{"roles": au.State().Roles})
}

func (a *API) aclRole(op auth.Op) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
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
		if err := a.reg.ApplyAuth(r.Context(), auth.Change{Op: op, Role: role, User: user}); err != nil {
			return err
		}
		writeText(w, http.StatusOK, "ok")
		return nil
	}
}

func (a *API) aclListGrants(w http.ResponseWriter, r *http.Request) error {
	au, err := a.authority()
	if err != nil {
		return err
	}
	grants := au.State().Grants
	if grants == nil {
		grants = []auth.Grant{}
	}
	return writeJSON(w, map[string]any{"grants": grants})
}

func (a *API) aclGrant(op auth.Op) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		p, err := readParams(r)
		if err != nil {
			return err
		}
		g := auth.Grant{Role: p.get("role"), Resource: p.get("resource"), Action: auth.Action(p.get("action"))}
		if err := auth.CheckGrant(g); err != nil {
			return err
		}
		if err := a.reg.ApplyAuth(r.Context(), auth.Change{Op: op, Grant: &g}); err != nil {
			return err
		}
		writeText(w, http.StatusOK, "ok")
		return nil
	}
}

// aclRotateKey makes a new token signing key current. Tokens signed with the old key
// stay valid until they expire.
func (a *API) aclRotateKey(w http.ResponseWriter, r *http.Request) error {
	if _, err := a.authority(); err != nil {
		return err
	}
	k, err := auth.NewKey(time.Now())
	if err != nil {
		return err
	}
	if err := a.reg.ApplyAuth(r.Context(), auth.Change{Op: auth.OpRotateKey, Key: k}); err != nil {
		return err
	}
	return writeJSON(w, map[string]any{"keyId": k.ID, "created": k.Created})
}

func (a *API) aclWhoAmI(w http.ResponseWriter, r *http.Request) error {
	id := identityFrom(r.Context())
	if id == nil {
		return writeJSON(w, map[string]any{"username": "", "globalAdmin": true, "authEnabled": false})
	}
	return writeJSON(w, map[string]any{"username": id.Name, "globalAdmin": id.Admin(), "authEnabled": true, "grants": a.grantsOf(id.Name)})
}

// grantsOf lists the grants a user holds through its roles, so that a user (the web
// console, for one) can tell which namespaces it may work in.
func (a *API) grantsOf(user string) []auth.Grant {
	st := a.cfg.Auth.State()
	out := []auth.Grant{}
	for _, g := range st.Grants {
		if slices.Contains(st.Roles[g.Role], user) {
			out = append(out, g)
		}
	}
	return out
}
