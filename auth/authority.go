package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/time/rate"
)

// Failures of Identify and Login. Their texts are Nacos' (core/auth/AuthFilter.java),
// which clients show to users; callers answer 403 (HTTP) or errorCode 403 (gRPC), and
// 429 for ErrTooManyAttempts.
var (
	ErrTokenInvalid    error = failure("token invalid!")
	ErrTokenExpired    error = failure("token expired!")
	ErrUserNotFound    error = failure("user not found!")
	ErrForbidden       error = failure("authorization failed!")
	ErrNoKey           error = failure("no token signing key yet: the cluster is still starting")
	ErrTooManyAttempts error = failure("too many login attempts from this address, try again later")
)

// failure is an auth failure whose text is sent to the client as it is.
type failure string

func (f failure) Error() string { return string(f) }

// Defaults of Config.
const (
	DefaultTokenTTL   = 18000 * time.Second // Nacos' nacos.core.auth.default.token.expire.seconds
	DefaultLoginRate  = 5                   // password checks per second and source address
	DefaultLoginBurst = 20
	// credentialTTL is how long a checked username and password are remembered, so
	// that clients sending them on every request (Node.js) do not pay bcrypt each time.
	credentialTTL   = time.Minute
	maxCachedCreds  = 10000
	maxLoginSources = 10000
	tokenIssuer     = "roster"
)

// bcryptCost is the work factor of stored password hashes; tests lower it.
var bcryptCost = bcrypt.DefaultCost

// Config configures an Authority.
type Config struct {
	// Enabled turns checks on. When false every request is allowed and logins still work.
	Enabled bool
	// TokenTTL is the lifetime of issued tokens (at most MaxTokenTTL).
	TokenTTL time.Duration
	// LoginRate and LoginBurst limit password checks per source address.
	LoginRate  rate.Limit
	LoginBurst int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Authority checks credentials against the replicated state. It is safe for concurrent
// use; Load swaps the state atomically.
type Authority struct {
	cfg   Config
	state atomic.Pointer[view]

	credMu sync.Mutex
	creds  map[[32]byte]cachedCred

	// tokens remembers verified tokens: parsing a JWT costs more than the rest of a list
	// request's access check. An entry is used only while its key and user still exist
	// and before its expiry.
	tokMu  sync.RWMutex
	tokens map[string]verifiedToken

	limitMu  sync.Mutex
	limiters map[string]*rate.Limiter
}

type verifiedToken struct {
	user    string
	kid     string
	expires time.Time
}

const maxCachedTokens = 10000

type cachedCred struct {
	user    string
	hash    string // the hash it was checked against; a changed password misses
	expires time.Time
}

// view is a loaded State with the indexes checks need.
type view struct {
	st        *State
	userRoles map[string][]string
	roleGrant map[string][]Grant
	keys      map[string]SigningKey
}

func newView(st *State) *view {
	v := &view{st: st, userRoles: map[string][]string{}, roleGrant: map[string][]Grant{}, keys: map[string]SigningKey{}}
	for role, users := range st.Roles {
		for _, u := range users {
			v.userRoles[u] = append(v.userRoles[u], role)
		}
	}
	for _, g := range st.Grants {
		v.roleGrant[g.Role] = append(v.roleGrant[g.Role], g)
	}
	for _, k := range st.Keys {
		v.keys[k.ID] = k
	}
	return v
}

// New returns an Authority with an empty state; Load fills it.
func New(cfg Config) *Authority {
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = DefaultTokenTTL
	}
	if cfg.TokenTTL > MaxTokenTTL {
		cfg.TokenTTL = MaxTokenTTL
	}
	if cfg.LoginRate <= 0 {
		cfg.LoginRate = DefaultLoginRate
	}
	if cfg.LoginBurst <= 0 {
		cfg.LoginBurst = DefaultLoginBurst
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	a := &Authority{cfg: cfg, creds: map[[32]byte]cachedCred{}, tokens: map[string]verifiedToken{}, limiters: map[string]*rate.Limiter{}}
	st, _ := Decode(nil)
	a.state.Store(newView(st))
	return a
}

// Enabled reports whether requests are checked.
func (a *Authority) Enabled() bool { return a.cfg.Enabled }

// TokenTTL is the lifetime of issued tokens.
func (a *Authority) TokenTTL() time.Duration { return a.cfg.TokenTTL }

// Load replaces the state with a stored document (nil: empty).
func (a *Authority) Load(doc []byte) error {
	st, err := Decode(doc)
	if err != nil {
		return err
	}
	a.state.Store(newView(st))
	return nil
}

// State returns the current state. Callers must not modify it.
func (a *Authority) State() *State { return a.state.Load().st }

// HasKey reports whether a signing key exists.
func (a *Authority) HasKey() bool { return a.State().CurrentKey() != nil }

// NewKey makes a fresh signing key for an init-key or rotate-key change.
func NewKey(now time.Time) (*SigningKey, error) {
	secret := make([]byte, MinKeyBytes)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	id := make([]byte, 8)
	if _, err := rand.Read(id); err != nil {
		return nil, err
	}
	return &SigningKey{ID: hex.EncodeToString(id), Secret: secret, Created: now.UTC()}, nil
}

// NewPassword makes a random password for bootstrap and for users created without one.
func NewPassword() (string, error) {
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// HashPassword hashes a password for a create-user, set-password or bootstrap change.
func HashPassword(password string) (string, error) {
	if password == "" {
		return "", badRequest("password is empty")
	}
	if len(password) > 72 {
		return "", badRequest("password is longer than 72 bytes")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcryptCost)
	if err != nil {
		return "", err
	}
	return string(h), nil
}

// Token is a login's answer, as Nacos' /v1/auth/login returns it.
type Token struct {
	AccessToken string
	TTL         time.Duration
	GlobalAdmin bool
	Username    string
}

// Login checks a username and password from source (the client's address, for the
// rate limit) and issues a token.
func (a *Authority) Login(source, user, password string) (Token, error) {
	v := a.state.Load()
	if err := a.checkPassword(v, source, user, password); err != nil {
		return Token{}, err
	}
	tok, err := a.issue(v, user)
	if err != nil {
		return Token{}, err
	}
	return Token{AccessToken: tok, TTL: a.cfg.TokenTTL, GlobalAdmin: v.isAdmin(user), Username: user}, nil
}

func (a *Authority) issue(v *view, user string) (string, error) {
	key := v.st.CurrentKey()
	if key == nil {
		return "", ErrNoKey
	}
	now := a.cfg.Now()
	claims := jwt.RegisteredClaims{
		Issuer:    tokenIssuer,
		Subject:   user,
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(a.cfg.TokenTTL)),
	}
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	t.Header["kid"] = key.ID
	return t.SignedString(key.Secret)
}

// checkPassword compares a password with the stored hash, through the short-lived cache
// of recent successes. Misses are rate-limited per source, since each costs a bcrypt.
func (a *Authority) checkPassword(v *view, source, user, password string) error {
	u, ok := v.st.Users[user]
	ck := credKey(user, password)
	if ok {
		a.credMu.Lock()
		c, hit := a.creds[ck]
		a.credMu.Unlock()
		if hit && c.user == user && c.hash == u.PasswordHash && a.cfg.Now().Before(c.expires) {
			return nil
		}
	}
	if !a.allow(source) {
		return ErrTooManyAttempts
	}
	if !ok {
		return ErrUserNotFound
	}
	if bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(password)) != nil {
		return ErrUserNotFound // Nacos answers the same text for a wrong password
	}
	a.credMu.Lock()
	if len(a.creds) >= maxCachedCreds {
		clear(a.creds)
	}
	a.creds[ck] = cachedCred{user: user, hash: u.PasswordHash, expires: a.cfg.Now().Add(credentialTTL)}
	a.credMu.Unlock()
	return nil
}

func credKey(user, password string) [32]byte {
	return sha256.Sum256([]byte(user + "\x00" + password))
}

func (a *Authority) allow(source string) bool {
	a.limitMu.Lock()
	defer a.limitMu.Unlock()
	l, ok := a.limiters[source]
	if !ok {
		if len(a.limiters) >= maxLoginSources {
			clear(a.limiters)
		}
		l = rate.NewLimiter(a.cfg.LoginRate, a.cfg.LoginBurst)
		a.limiters[source] = l
	}
	return l.AllowN(a.cfg.Now(), 1)
}

// Credentials are what a request carries, in Nacos' order of precedence.
type Credentials struct {
	Bearer      string // Authorization: Bearer <token>
	AccessToken string // accessToken parameter or gRPC header
	Username    string
	Password    string
	Source      string // remote address, for the password rate limit
}

// Identity is an authenticated caller.
type Identity struct {
	Name string
	v    *view
}

// Identify authenticates credentials: a token (header first, then parameter), else
// username and password. With no credential at all it answers ErrUserNotFound, as
// Nacos does.
func (a *Authority) Identify(c Credentials) (*Identity, error) {
	v := a.state.Load()
	tok := c.Bearer
	if tok == "" {
		tok = c.AccessToken
	}
	if tok != "" {
		user, err := a.verify(v, tok)
		if err != nil {
			return nil, err
		}
		return &Identity{Name: user, v: v}, nil
	}
	if c.Username == "" {
		return nil, ErrUserNotFound
	}
	if err := a.checkPassword(v, c.Source, c.Username, c.Password); err != nil {
		return nil, err
	}
	return &Identity{Name: c.Username, v: v}, nil
}

func (a *Authority) verify(v *view, tok string) (string, error) {
	a.tokMu.RLock()
	vt, hit := a.tokens[tok]
	a.tokMu.RUnlock()
	if hit {
		_, keyLive := v.keys[vt.kid]
		_, userLive := v.st.Users[vt.user]
		switch {
		case !a.cfg.Now().Before(vt.expires):
			return "", ErrTokenExpired
		case keyLive && userLive:
			return vt.user, nil
		}
	}
	var claims jwt.RegisteredClaims
	var kid string
	_, err := jwt.ParseWithClaims(tok, &claims, func(t *jwt.Token) (any, error) {
		kid, _ = t.Header["kid"].(string)
		k, ok := v.keys[kid]
		if !ok {
			return nil, fmt.Errorf("unknown key %q", kid)
		}
		return k.Secret, nil
	},
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuer(tokenIssuer),
		jwt.WithTimeFunc(a.cfg.Now),
	)
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return "", ErrTokenExpired
	case err != nil:
		return "", ErrTokenInvalid
	}
	if _, ok := v.st.Users[claims.Subject]; !ok {
		return "", ErrUserNotFound
	}
	a.tokMu.Lock()
	if len(a.tokens) >= maxCachedTokens {
		clear(a.tokens)
	}
	a.tokens[tok] = verifiedToken{user: claims.Subject, kid: kid, expires: claims.ExpiresAt.Time}
	a.tokMu.Unlock()
	return claims.Subject, nil
}

func (v *view) isAdmin(user string) bool {
	for _, r := range v.userRoles[user] {
		if r == AdminRole {
			return true
		}
	}
	return false
}

// Admin reports whether the identity holds AdminRole.
func (id *Identity) Admin() bool { return id.v.isAdmin(id.Name) }

// Can reports whether the identity may do need (Read or Write) on a group of a
// namespace. An empty group asks about the namespace as a whole: only a grant on the
// namespace (or "*") covers it.
func (id *Identity) Can(need Action, namespace, group string) bool {
	if id.Admin() {
		return true
	}
	for _, role := range id.v.userRoles[id.Name] {
		for _, g := range id.v.roleGrant[role] {
			if g.Action.Allows(need) && covers(g.Resource, namespace, group) {
				return true
			}
		}
	}
	return false
}

func covers(resource, namespace, group string) bool {
	if resource == "*" {
		return true
	}
	ns, g, hasGroup := strings.Cut(resource, ":")
	if ns != namespace {
		return false
	}
	return !hasGroup || group != "" && g == group
}
