package e2e

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/roster-registry/roster/client"
)

// TestAuthAcrossCluster: users, grants and the signing key are replicated, so the
// admin is bootstrapped through one node, a user is created through another, a token
// from one node is honoured by every other, and a key rotated through one keeps old
// tokens valid on all.
func TestAuthAcrossCluster(t *testing.T) {
	nodes := make([]*Server, 3)
	var join []string
	for i := range nodes {
		nodes[i] = NewServer(t, fmt.Sprintf("n%d", i+1))
		join = append(join, "127.0.0.1:"+strconv.Itoa(nodes[i].Port))
	}
	for _, s := range nodes {
		s.Extra = []string{"--bootstrap-expect", "3", "--join", strings.Join(join, ","), "--auth"}
		s.Launch()
	}
	for _, s := range nodes {
		s.WaitReady()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := func(i int) *client.Client { return rosterClient(t, nodes[i]) }

	// The signing key is made once the cluster is up; bootstrap may race it.
	var admin *client.Credential
	eventually(t, 20*time.Second, func() (err error) {
		admin, err = c(1).ACLBootstrap(ctx, "", "")
		return err
	})
	var tokens [3]string
	for i := range nodes {
		cl := c(i)
		eventually(t, 20*time.Second, func() error {
			res, err := cl.Login(ctx, admin.Username, admin.Password)
			if err == nil {
				tokens[i] = res.AccessToken
			}
			return err
		})
	}
	adminOn := func(i int) *client.Client {
		cl := c(i)
		cl.SetToken(tokens[0]) // a token from node 1, used everywhere
		return cl
	}
	if _, err := adminOn(2).CreateUser(ctx, "app", "app-password-1"); err != nil {
		t.Fatal(err)
	}
	if err := adminOn(1).BindRole(ctx, "apps", "app"); err != nil {
		t.Fatal(err)
	}
	if err := adminOn(0).AddGrant(ctx, client.Grant{Role: "apps", Resource: "ns-a", Action: "rw"}); err != nil {
		t.Fatal(err)
	}
	svcA := client.ServiceRef{Namespace: "ns-a", Group: "DEFAULT_GROUP", Name: "db"}
	svcB := client.ServiceRef{Namespace: "ns-b", Group: "DEFAULT_GROUP", Name: "db"}
	inst := client.NewInstance("10.2.0.1", 5432)
	inst.Ephemeral = false
	for i := range nodes {
		app := c(i)
		eventually(t, 10*time.Second, func() error { _, err := app.Login(ctx, "app", "app-password-1"); return err })
		if err := app.RegisterInstance(ctx, svcA, inst); err != nil {
			t.Fatalf("app registers in ns-a through n%d: %v", i+1, err)
		}
		if err := app.RegisterInstance(ctx, svcB, inst); !client.IsStatus(err, 403) {
			t.Fatalf("app registers in ns-b through n%d: %v, want 403", i+1, err)
		}
	}
	oldAdmin := tokens[2]
	if _, err := adminOn(1).RotateKey(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range nodes {
		cl := c(i)
		cl.SetToken(oldAdmin)
		eventually(t, 10*time.Second, func() error { _, err := cl.ListUsers(ctx); return err })
		fresh := c(i)
		if _, err := fresh.Login(ctx, admin.Username, admin.Password); err != nil {
			t.Fatal(err)
		}
		if _, err := fresh.ListUsers(ctx); err != nil {
			t.Fatalf("token signed with the new key on n%d: %v", i+1, err)
		}
	}
	anon := c(0)
	if _, err := anon.ListInstances(ctx, svcA, client.ListOptions{}); !client.IsStatus(err, 403) {
		t.Fatalf("anonymous read = %v, want 403", err)
	}
}
