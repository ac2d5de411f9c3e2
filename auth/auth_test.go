package auth

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/bcrypt"
)

// fakeClock is a settable clock for token expiry.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func init() { bcryptCost = bcrypt.MinCost }

var hashes = map[string]string{}

func hash(t *testing.T, pw string) string {
	t.Helper()
	if h, ok := hashes[pw]; ok {
		return h
	}
	h, err := HashPassword(pw)
	if err != nil {
		t.Fatal(err)
	}
	hashes[pw] = h
	return h
}

func mustApply(t *testing.T, s *State, c Change) {
	t.Helper()
	if err := s.Apply(c); err != nil {
		t.Fatalf("Apply(%s): %v", c.Op, err)
	}
}

// fixture: admin "root", user "alice" with rw on namespace A, user "bob" with r on B:g1.
func fixture(t *testing.T, clock *fakeClock) (*Authority, *State) {
	t.Helper()
	s, _ := Decode(nil)
	mustApply(t, s, Change{Op: OpBootstrap, User: "root", PasswordHash: hash(t, "root-pw")})
	mustApply(t, s, Change{Op: OpCreateUser, User: "alice", PasswordHash: hash(t, "alice-pw")})
	mustApply(t, s, Change{Op: OpCreateUser, User: "bob", PasswordHash: hash(t, "bob-pw")})
	mustApply(t, s, Change{Op: OpBindRole, Role: "team-a", User: "alice"})
	mustApply(t, s, Change{Op: OpBindRole, Role: "readers", User: "bob"})
	mustApply(t, s, Change{Op: OpGrant, Grant: &Grant{Role: "team-a", Resource: "A", Action: ReadWrite}})
	mustApply(t, s, Change{Op: OpGrant, Grant: &Grant{Role: "readers", Resource: "B:g1", Action: Read}})
	k, err := NewKey(clock.now())
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, Change{Op: OpInitKey, Key: k})
	a := New(Config{Enabled: true, TokenTTL: time.Hour, Now: clock.now})
	load(t, a, s)
	return a, s
}

func load(t *testing.T, a *Authority, s *State) {
	t.Helper()
	doc, err := s.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Load(doc); err != nil {
		t.Fatal(err)
	}
}

func TestLoginAndPermissions(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	a, _ := fixture(t, clock)

	if _, err := a.Login("1.1.1.1", "alice", "wrong"); !errors.Is(err, ErrUserNotFound) {
		t.Fatalf("wrong password: %v, want %v", err, ErrUserNotFound)
	}
	if _, err := a.Login("1.1.1.1", "nobody", "x"); !errors.Is(err, ErrUserNotFound) {
		t.Fatalf("unknown user: %v", err)
	}
	tok, err := a.Login("1.1.1.1", "alice", "alice-pw")
	if err != nil {
		t.Fatal(err)
	}
	if tok.GlobalAdmin || tok.Username != "alice" || tok.TTL != time.Hour {
		t.Fatalf("token = %+v", tok)
	}
	id, err := a.Identify(Credentials{Bearer: tok.AccessToken})
	if err != nil || id.Name != "alice" {
		t.Fatalf("Identify = %v, %v", id, err)
	}
	checks := []struct {
		need      Action
		ns, group string
		want      bool
	}{
		{Read, "A", "DEFAULT_GROUP", true},
		{Write, "A", "any", true},
		{Read, "B", "g1", false},
		{Write, "B", "g1", false},
		{Read, "public", "DEFAULT_GROUP", false},
	}
	for _, c := range checks {
		if got := id.Can(c.need, c.ns, c.group); got != c.want {
			t.Errorf("alice Can(%s, %s, %s) = %v, want %v", c.need, c.ns, c.group, got, c.want)
		}
	}
	bob, err := a.Identify(Credentials{Username: "bob", Password: "bob-pw"})
	if err != nil {
		t.Fatal(err)
	}
	if !bob.Can(Read, "B", "g1") || bob.Can(Read, "B", "g2") || bob.Can(Write, "B", "g1") || bob.Can(Read, "B", "") {
		t.Error("bob's grant on B:g1 read is not applied exactly")
	}
	root, err := a.Identify(Credentials{AccessToken: mustLogin(t, a, "root", "root-pw")})
	if err != nil || !root.Admin() || !root.Can(Write, "anything", "x") {
		t.Fatalf("root: %v %v", root, err)
	}
	if _, err := a.Identify(Credentials{}); !errors.Is(err, ErrUserNotFound) {
		t.Errorf("no credentials: %v", err)
	}
}

func mustLogin(t *testing.T, a *Authority, user, pw string) string {
	t.Helper()
	tok, err := a.Login("127.0.0.1", user, pw)
	if err != nil {
		t.Fatal(err)
	}
	return tok.AccessToken
}

func TestBadTokens(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	a, s := fixture(t, clock)
	good := mustLogin(t, a, "alice", "alice-pw")

	forged := func() string {
		claims := jwt.RegisteredClaims{Issuer: tokenIssuer, Subject: "root", ExpiresAt: jwt.NewNumericDate(clock.now().Add(time.Hour))}
		tk := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
		tk.Header["kid"] = s.CurrentKey().ID
		out, _ := tk.SignedString([]byte(strings.Repeat("k", 32)))
		return out
	}()
	none := func() string {
		claims := jwt.RegisteredClaims{Issuer: tokenIssuer, Subject: "root", ExpiresAt: jwt.NewNumericDate(clock.now().Add(time.Hour))}
		out, _ := jwt.NewWithClaims(jwt.SigningMethodNone, claims).SignedString(jwt.UnsafeAllowNoneSignatureType)
		return out
	}()
	parts := strings.Split(good, ".")
	tampered := parts[0] + "." + strings.TrimRight(parts[1], "=") + "x." + parts[2]
	for name, tok := range map[string]string{
		"forged with another key": forged,
		"alg none":                none,
		"malformed":               "not-a-token",
		"tampered claims":         tampered,
		"empty signature":         parts[0] + "." + parts[1] + ".",
	} {
		if _, err := a.Identify(Credentials{Bearer: tok}); !errors.Is(err, ErrTokenInvalid) {
			t.Errorf("%s: Identify = %v, want %v", name, err, ErrTokenInvalid)
		}
	}
	clock.add(time.Hour + time.Second)
	if _, err := a.Identify(Credentials{Bearer: good}); !errors.Is(err, ErrTokenExpired) {
		t.Errorf("expired: Identify = %v, want %v", err, ErrTokenExpired)
	}
}

func TestRotatedKeyKeepsOldTokensUntilExpiry(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	a, s := fixture(t, clock)
	old := mustLogin(t, a, "alice", "alice-pw")
	oldKey := s.CurrentKey().ID

	clock.add(10 * time.Minute)
	k, _ := NewKey(clock.now())
	mustApply(t, s, Change{Op: OpRotateKey, Key: k})
	load(t, a, s)
	if s.CurrentKey().ID == oldKey {
		t.Fatal("rotation kept the old key current")
	}
	fresh := mustLogin(t, a, "alice", "alice-pw")
	for _, tok := range []string{old, fresh} {
		if _, err := a.Identify(Credentials{Bearer: tok}); err != nil {
			t.Fatalf("token after rotation: %v", err)
		}
	}
	clock.add(51 * time.Minute) // the old token's hour is over; the fresh one has 9 min left
	if _, err := a.Identify(Credentials{Bearer: old}); !errors.Is(err, ErrTokenExpired) {
		t.Errorf("old token after its expiry: %v", err)
	}
	if _, err := a.Identify(Credentials{Bearer: fresh}); err != nil {
		t.Errorf("fresh token: %v", err)
	}
	// A rotation MaxTokenTTL after the first retires the old key for good.
	clock.add(MaxTokenTTL)
	k2, _ := NewKey(clock.now())
	mustApply(t, s, Change{Op: OpRotateKey, Key: k2})
	for _, key := range s.Keys {
		if key.ID == oldKey {
			t.Error("a key retired longer than MaxTokenTTL ago was kept")
		}
	}
}

func TestStateRules(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	_, s := fixture(t, clock)
	refused := []Change{
		{Op: OpBootstrap, User: "again", PasswordHash: hash(t, "x")},
		{Op: OpCreateUser, User: "alice", PasswordHash: hash(t, "x")},
		{Op: OpDeleteUser, User: "root"}, // the last admin
		{Op: OpUnbindRole, Role: AdminRole, User: "root"},
		{Op: OpDeleteUser, User: "ghost"},
		{Op: OpCreateUser, User: "bad name", PasswordHash: hash(t, "x")},
		{Op: OpCreateUser, User: "carol", PasswordHash: "plain"},
		{Op: OpGrant, Grant: &Grant{Role: "r", Resource: "A:", Action: Read}},
		{Op: OpGrant, Grant: &Grant{Role: "r", Resource: "A", Action: "x"}},
		{Op: OpInitKey, Key: &SigningKey{ID: "k", Secret: []byte("short"), Created: clock.now()}},
		{Op: "drop-everything"},
	}
	before, _ := s.Encode()
	for _, c := range refused {
		if err := s.Apply(c); err == nil {
			t.Errorf("Apply(%+v) succeeded", c)
		}
	}
	if after, _ := s.Encode(); string(after) != string(before) {
		t.Errorf("refused changes changed the state:\n%s\n%s", before, after)
	}
	// init-key is ignored once a key exists: every node may propose it at start.
	k, _ := NewKey(clock.now())
	mustApply(t, s, Change{Op: OpInitKey, Key: k})
	if s.CurrentKey().ID == k.ID {
		t.Error("init-key replaced an existing key")
	}
	mustApply(t, s, Change{Op: OpDeleteUser, User: "alice"})
	if _, ok := s.Roles["team-a"]; ok {
		t.Error("deleting the only member left an empty role")
	}
}

func TestPasswordChecksAreRateLimitedPerSource(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	s, _ := Decode(nil)
	mustApply(t, s, Change{Op: OpBootstrap, User: "root", PasswordHash: hash(t, "root-pw")})
	a := New(Config{Enabled: true, LoginRate: 1, LoginBurst: 3, Now: clock.now})
	load(t, a, s)
	for i := 0; i < 3; i++ {
		if _, err := a.Identify(Credentials{Username: "root", Password: "bad", Source: "10.0.0.1"}); !errors.Is(err, ErrUserNotFound) {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	if _, err := a.Identify(Credentials{Username: "root", Password: "bad", Source: "10.0.0.1"}); !errors.Is(err, ErrTooManyAttempts) {
		t.Fatalf("fourth attempt: %v, want %v", err, ErrTooManyAttempts)
	}
	if _, err := a.Identify(Credentials{Username: "root", Password: "root-pw", Source: "10.0.0.2"}); err != nil {
		t.Fatalf("another source is limited too: %v", err)
	}
	// A remembered success costs no bcrypt and is not limited.
	for i := 0; i < 10; i++ {
		if _, err := a.Identify(Credentials{Username: "root", Password: "root-pw", Source: "10.0.0.2"}); err != nil {
			t.Fatalf("cached success %d: %v", i, err)
		}
	}
	// A changed password invalidates the remembered one.
	mustApply(t, s, Change{Op: OpSetPassword, User: "root", PasswordHash: hash(t, "new-pw")})
	load(t, a, s)
	if _, err := a.Identify(Credentials{Username: "root", Password: "root-pw", Source: "10.0.0.3"}); !errors.Is(err, ErrUserNotFound) {
		t.Fatalf("old password after a change: %v", err)
	}
}

func TestCachedTokenFollowsState(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	a, s := fixture(t, clock)
	tok := mustLogin(t, a, "alice", "alice-pw")
	for i := 0; i < 2; i++ { // the second check is served from the cache
		if _, err := a.Identify(Credentials{Bearer: tok}); err != nil {
			t.Fatal(err)
		}
	}
	mustApply(t, s, Change{Op: OpDeleteUser, User: "alice"})
	load(t, a, s)
	if _, err := a.Identify(Credentials{Bearer: tok}); !errors.Is(err, ErrUserNotFound) {
		t.Fatalf("token of a deleted user: %v", err)
	}
	bobTok := mustLogin(t, a, "bob", "bob-pw")
	if _, err := a.Identify(Credentials{Bearer: bobTok}); err != nil {
		t.Fatal(err)
	}
	clock.add(time.Hour)
	if _, err := a.Identify(Credentials{Bearer: bobTok}); !errors.Is(err, ErrTokenExpired) {
		t.Fatalf("cached token after expiry: %v", err)
	}
}
