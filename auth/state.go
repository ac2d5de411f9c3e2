// Package auth owns Roster's access control: users with bcrypt-hashed passwords,
// roles, grants of read or write on a namespace (or one group of it), and the keys that
// sign access tokens.
//
// The state is one small JSON document kept in the Raft FSM, so every node holds the
// same users and keys and they survive restarts and snapshots. Changes to it are
// Change values carried through the Raft log; State.Apply is deterministic (it reads no
// clock and no randomness: times, hashes and key bytes travel inside the Change).
// Authority (authority.go) serves logins and checks requests against the current state.
package auth

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/roster-registry/roster/naming"
)

// AdminRole is Nacos' global administrator role: it may do everything, including
// managing users, roles, grants and keys.
const AdminRole = "ROLE_ADMIN"

// MaxTokenTTL bounds the token lifetime a server may be configured with. A rotated key
// is kept this long after its retirement so that every token it signed can expire
// naturally.
const MaxTokenTTL = 24 * time.Hour

// MinKeyBytes is the least secret length of a signing key.
const MinKeyBytes = 32

// Limits on the size of the state, so that the document stays small enough to decode
// on every change.
const (
	MaxUsers  = 10000
	MaxGrants = 10000
	maxName   = 64
	maxRes    = 257 // namespace:group
)

// Action is what a grant allows: read, write or both.
type Action string

// Actions. Write does not imply read, as in Nacos.
const (
	Read      Action = "r"
	Write     Action = "w"
	ReadWrite Action = "rw"
)

// Allows reports whether a grant of a covers need (Read or Write).
func (a Action) Allows(need Action) bool {
	return a == ReadWrite || a == need
}

// User is a stored user.
type User struct {
	PasswordHash string `json:"passwordHash"` // bcrypt
}

// Grant gives a role an action on a resource: "*" (every namespace), "namespace", or
// "namespace:group".
type Grant struct {
	Role     string `json:"role"`
	Resource string `json:"resource"`
	Action   Action `json:"action"`
}

// SigningKey signs access tokens. The last key of State.Keys is the current one; older
// keys only verify tokens until they are pruned, MaxTokenTTL after their retirement.
type SigningKey struct {
	ID      string    `json:"id"`
	Secret  []byte    `json:"secret"`
	Created time.Time `json:"created"`
	Retired time.Time `json:"retired,omitzero"`
}

// State is the whole access-control document.
type State struct {
	Users  map[string]User     `json:"users"`
	Roles  map[string][]string `json:"roles"`  // role → user names, sorted
	Grants []Grant             `json:"grants"` // sorted, no duplicates
	Keys   []SigningKey        `json:"keys"`   // oldest first
}

// Decode reads a state document; nil or empty is the empty state.
func Decode(doc []byte) (*State, error) {
	s := &State{}
	if len(doc) > 0 {
		if err := json.Unmarshal(doc, s); err != nil {
			return nil, fmt.Errorf("auth: decode state: %w", err)
		}
	}
	if s.Users == nil {
		s.Users = map[string]User{}
	}
	if s.Roles == nil {
		s.Roles = map[string][]string{}
	}
	return s, nil
}

// Encode writes the state document.
func (s *State) Encode() ([]byte, error) { return json.Marshal(s) }

// Op names a change.
type Op string

// Changes.
const (
	OpBootstrap   Op = "bootstrap"    // the first user, bound to AdminRole; refused once any user exists
	OpCreateUser  Op = "create-user"  // User, PasswordHash
	OpDeleteUser  Op = "delete-user"  // User
	OpSetPassword Op = "set-password" // User, PasswordHash
	OpBindRole    Op = "bind-role"    // Role, User
	OpUnbindRole  Op = "unbind-role"  // Role, User
	OpGrant       Op = "grant"        // Grant
	OpRevoke      Op = "revoke"       // Grant
	OpInitKey     Op = "init-key"     // Key; ignored when a key exists (every node may propose it at start)
	OpRotateKey   Op = "rotate-key"   // Key; the current key retires at Key.Created
)

// Change is one state change, carried through the Raft log.
type Change struct {
	Op           Op          `json:"op"`
	User         string      `json:"user,omitempty"`
	PasswordHash string      `json:"passwordHash,omitempty"`
	Role         string      `json:"role,omitempty"`
	Grant        *Grant      `json:"grant,omitempty"`
	Key          *SigningKey `json:"key,omitempty"`
}

func badRequest(format string, args ...any) *naming.Error {
	return naming.Errorf(http.StatusBadRequest, format, args...)
}

// CheckName checks a user or role name.
func CheckName(kind, name string) error {
	if name == "" {
		return badRequest("%s name is empty", kind)
	}
	if len(name) > maxName {
		return badRequest("%s name is longer than %d characters", kind, maxName)
	}
	for _, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._@-", r)
		if !ok {
			return badRequest("%s name %q may hold only letters, digits and . _ @ -", kind, name)
		}
	}
	return nil
}

// CheckGrant checks a grant's fields.
func CheckGrant(g Grant) error {
	if err := CheckName("role", g.Role); err != nil {
		return err
	}
	switch g.Action {
	case Read, Write, ReadWrite:
	default:
		return badRequest("action %q is not r, w or rw", g.Action)
	}
	if g.Resource == "*" {
		return nil
	}
	if g.Resource == "" || len(g.Resource) > maxRes {
		return badRequest("resource must be *, a namespace, or namespace:group")
	}
	ns, group, hasGroup := strings.Cut(g.Resource, ":")
	if ns == "" || hasGroup && group == "" || strings.ContainsAny(g.Resource, " \t\r\n*") {
		return badRequest("resource %q must be *, a namespace, or namespace:group", g.Resource)
	}
	return nil
}

// Validate checks a change before it enters the log.
func (c Change) Validate() error {
	switch c.Op {
	case OpBootstrap, OpCreateUser, OpSetPassword:
		if err := CheckName("user", c.User); err != nil {
			return err
		}
		if !strings.HasPrefix(c.PasswordHash, "$2") || len(c.PasswordHash) != 60 {
			return badRequest("password hash is not a bcrypt hash")
		}
	case OpDeleteUser:
		return CheckName("user", c.User)
	case OpBindRole, OpUnbindRole:
		if err := CheckName("role", c.Role); err != nil {
			return err
		}
		return CheckName("user", c.User)
	case OpGrant, OpRevoke:
		if c.Grant == nil {
			return badRequest("grant is missing")
		}
		return CheckGrant(*c.Grant)
	case OpInitKey, OpRotateKey:
		if c.Key == nil || c.Key.ID == "" || len(c.Key.Secret) < MinKeyBytes || c.Key.Created.IsZero() {
			return badRequest("signing key needs an id, %d secret bytes and a creation time", MinKeyBytes)
		}
	default:
		return badRequest("unknown auth change %q", c.Op)
	}
	return nil
}

// Apply applies c to s. A change the state refuses (a second bootstrap, a user that
// exists already) returns a *naming.Error and leaves s unchanged.
func (s *State) Apply(c Change) error {
	if err := c.Validate(); err != nil {
		return err
	}
	switch c.Op {
	case OpBootstrap:
		if len(s.Users) > 0 {
			return naming.Errorf(http.StatusConflict, "ACL bootstrap already done: users exist")
		}
		s.Users[c.User] = User{PasswordHash: c.PasswordHash}
		s.Roles[AdminRole] = []string{c.User}
	case OpCreateUser:
		if _, ok := s.Users[c.User]; ok {
			return badRequest("user '%s' already exist!", c.User)
		}
		if len(s.Users) >= MaxUsers {
			return badRequest("too many users (limit %d)", MaxUsers)
		}
		s.Users[c.User] = User{PasswordHash: c.PasswordHash}
	case OpDeleteUser:
		if _, ok := s.Users[c.User]; !ok {
			return badRequest("user '%s' not exist!", c.User)
		}
		if s.lastAdmin(c.User) {
			return badRequest("user '%s' is the last %s and cannot be deleted", c.User, AdminRole)
		}
		delete(s.Users, c.User)
		for role, users := range s.Roles {
			s.setRole(role, slices.DeleteFunc(users, func(u string) bool { return u == c.User }))
		}
	case OpSetPassword:
		if _, ok := s.Users[c.User]; !ok {
			return badRequest("user '%s' not exist!", c.User)
		}
		s.Users[c.User] = User{PasswordHash: c.PasswordHash}
	case OpBindRole:
		if _, ok := s.Users[c.User]; !ok {
			return badRequest("user '%s' not exist!", c.User)
		}
		users := s.Roles[c.Role]
		if i, found := slices.BinarySearch(users, c.User); !found {
			s.Roles[c.Role] = slices.Insert(users, i, c.User)
		}
	case OpUnbindRole:
		if c.Role == AdminRole && s.lastAdmin(c.User) {
			return badRequest("user '%s' is the last %s", c.User, AdminRole)
		}
		s.setRole(c.Role, slices.DeleteFunc(s.Roles[c.Role], func(u string) bool { return u == c.User }))
	case OpGrant:
		i, found := slices.BinarySearchFunc(s.Grants, *c.Grant, compareGrants)
		if !found {
			if len(s.Grants) >= MaxGrants {
				return badRequest("too many grants (limit %d)", MaxGrants)
			}
			s.Grants = slices.Insert(s.Grants, i, *c.Grant)
		}
	case OpRevoke:
		if i, found := slices.BinarySearchFunc(s.Grants, *c.Grant, compareGrants); found {
			s.Grants = slices.Delete(s.Grants, i, i+1)
		}
	case OpInitKey:
		if len(s.Keys) == 0 {
			s.Keys = []SigningKey{*c.Key}
		}
	case OpRotateKey:
		for _, k := range s.Keys {
			if k.ID == c.Key.ID {
				return badRequest("signing key %s exists already", c.Key.ID)
			}
		}
		at := c.Key.Created
		if n := len(s.Keys); n > 0 && s.Keys[n-1].Retired.IsZero() {
			s.Keys[n-1].Retired = at
		}
		// Keys retired longer ago than any token can live verify nothing any more.
		s.Keys = slices.DeleteFunc(s.Keys, func(k SigningKey) bool {
			return !k.Retired.IsZero() && k.Retired.Add(MaxTokenTTL).Before(at)
		})
		s.Keys = append(s.Keys, *c.Key)
	}
	return nil
}

func (s *State) setRole(role string, users []string) {
	if len(users) == 0 {
		delete(s.Roles, role)
		return
	}
	s.Roles[role] = users
}

// lastAdmin reports whether user is the only member of AdminRole.
func (s *State) lastAdmin(user string) bool {
	admins := s.Roles[AdminRole]
	return len(admins) == 1 && admins[0] == user
}

func compareGrants(a, b Grant) int {
	if c := strings.Compare(a.Role, b.Role); c != 0 {
		return c
	}
	if c := strings.Compare(a.Resource, b.Resource); c != 0 {
		return c
	}
	return strings.Compare(string(a.Action), string(b.Action))
}

// CurrentKey is the key new tokens are signed with, or nil before the first key.
func (s *State) CurrentKey() *SigningKey {
	if len(s.Keys) == 0 {
		return nil
	}
	return &s.Keys[len(s.Keys)-1]
}
