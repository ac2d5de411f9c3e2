package client

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

const aclPath = "/roster/v1/acl"

// Credential is a user name with the password the server generated or was given. It is
// shown once: the server keeps only a hash.
type Credential struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// User is a user and its roles.
type User struct {
	Username string   `json:"username"`
	Roles    []string `json:"roles"`
}

// Grant gives a role an action ("r", "w" or "rw") on a resource ("*", "namespace" or
// "namespace:group").
type Grant struct {
	Role     string `json:"role"`
	Resource string `json:"resource"`
	Action   string `json:"action"`
}

// KeyInfo describes a new token signing key.
type KeyInfo struct {
	KeyID   string    `json:"keyId"`
	Created time.Time `json:"created"`
}

// WhoAmI is the identity a request is served as.
type WhoAmI struct {
	Username    string `json:"username"`
	GlobalAdmin bool   `json:"globalAdmin"`
	AuthEnabled bool   `json:"authEnabled"`
}

func credentialValues(username, password string) url.Values {
	v := url.Values{}
	if username != "" {
		v.Set("username", username)
	}
	if password != "" {
		v.Set("password", password)
	}
	return v
}

func (c *Client) credential(ctx context.Context, method, path string, v url.Values) (*Credential, error) {
	b, err := c.doPath(ctx, method, aclPath+path, v)
	if err != nil {
		return nil, err
	}
	var out Credential
	return &out, decode(b, &out)
}

// ACLBootstrap creates the first administrator (default name "admin"; a blank password
// is generated). The server refuses it once any user exists.
func (c *Client) ACLBootstrap(ctx context.Context, username, password string) (*Credential, error) {
	return c.credential(ctx, http.MethodPost, "/bootstrap", credentialValues(username, password))
}

// CreateUser creates a user; a blank password is generated.
func (c *Client) CreateUser(ctx context.Context, username, password string) (*Credential, error) {
	return c.credential(ctx, http.MethodPost, "/users", credentialValues(username, password))
}

// SetPassword changes a user's password; a blank one is generated.
func (c *Client) SetPassword(ctx context.Context, username, password string) (*Credential, error) {
	return c.credential(ctx, http.MethodPut, "/users", credentialValues(username, password))
}

// DeleteUser deletes a user.
func (c *Client) DeleteUser(ctx context.Context, username string) error {
	_, err := c.doPath(ctx, http.MethodDelete, aclPath+"/users", credentialValues(username, ""))
	return err
}

// ListUsers lists users and their roles.
func (c *Client) ListUsers(ctx context.Context) ([]User, error) {
	b, err := c.doPath(ctx, http.MethodGet, aclPath+"/users", nil)
	if err != nil {
		return nil, err
	}
	var out struct {
		Users []User `json:"users"`
	}
	return out.Users, decode(b, &out)
}

// BindRole gives a user a role; UnbindRole takes it away.
func (c *Client) BindRole(ctx context.Context, role, username string) error {
	return c.roleChange(ctx, http.MethodPost, role, username)
}

// UnbindRole takes a role from a user.
func (c *Client) UnbindRole(ctx context.Context, role, username string) error {
	return c.roleChange(ctx, http.MethodDelete, role, username)
}

func (c *Client) roleChange(ctx context.Context, method, role, username string) error {
	v := credentialValues(username, "")
	v.Set("role", role)
	_, err := c.doPath(ctx, method, aclPath+"/roles", v)
	return err
}

// ListRoles maps each role to its users.
func (c *Client) ListRoles(ctx context.Context) (map[string][]string, error) {
	b, err := c.doPath(ctx, http.MethodGet, aclPath+"/roles", nil)
	if err != nil {
		return nil, err
	}
	var out struct {
		Roles map[string][]string `json:"roles"`
	}
	return out.Roles, decode(b, &out)
}

// AddGrant gives a role an action on a resource; RemoveGrant revokes it.
func (c *Client) AddGrant(ctx context.Context, g Grant) error {
	return c.grantChange(ctx, http.MethodPost, g)
}

// RemoveGrant revokes a grant.
func (c *Client) RemoveGrant(ctx context.Context, g Grant) error {
	return c.grantChange(ctx, http.MethodDelete, g)
}

func (c *Client) grantChange(ctx context.Context, method string, g Grant) error {
	v := url.Values{}
	v.Set("role", g.Role)
	v.Set("resource", g.Resource)
	v.Set("action", g.Action)
	_, err := c.doPath(ctx, method, aclPath+"/grants", v)
	return err
}

// ListGrants lists every grant.
func (c *Client) ListGrants(ctx context.Context) ([]Grant, error) {
	b, err := c.doPath(ctx, http.MethodGet, aclPath+"/grants", nil)
	if err != nil {
		return nil, err
	}
	var out struct {
		Grants []Grant `json:"grants"`
	}
	return out.Grants, decode(b, &out)
}

// RotateKey makes a new token signing key current; tokens signed with the old one stay
// valid until they expire.
func (c *Client) RotateKey(ctx context.Context) (*KeyInfo, error) {
	b, err := c.doPath(ctx, http.MethodPost, aclPath+"/rotate-key", nil)
	if err != nil {
		return nil, err
	}
	var out KeyInfo
	return &out, decode(b, &out)
}

// WhoAmI tells who the server takes the client for.
func (c *Client) WhoAmI(ctx context.Context) (*WhoAmI, error) {
	b, err := c.doPath(ctx, http.MethodGet, aclPath+"/whoami", nil)
	if err != nil {
		return nil, err
	}
	var out WhoAmI
	return &out, decode(b, &out)
}
