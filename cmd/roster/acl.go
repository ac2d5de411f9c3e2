package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/roster-registry/roster/client"
)

const aclSynopsis = `  bootstrap            create the first administrator, once, and print its password
  login                log in (--username, --password) and print an access token
  whoami               show who the server takes you for
  user list|create|delete|passwd
  role list|add|remove
  grant list|add|remove
  rotate-key           make a new token signing key current (old tokens stay valid until they expire)
`

// runACL runs "roster acl ...": users, roles, grants and signing keys of a server with
// auth on.
func runACL(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return group("acl", aclSynopsis, args, stdout, stderr, map[string]func([]string) int{
		"bootstrap":  func(a []string) int { return aclBootstrap(ctx, a, stdout, stderr) },
		"login":      func(a []string) int { return aclLogin(ctx, a, stdout, stderr) },
		"whoami":     func(a []string) int { return aclWhoAmI(ctx, a, stdout, stderr) },
		"rotate-key": func(a []string) int { return aclRotateKey(ctx, a, stdout, stderr) },
		"user": func(a []string) int {
			return group("acl user", "  list\n  create --name N [--user-password P]\n  delete --name N\n  passwd --name N [--user-password P]\n", a, stdout, stderr, map[string]func([]string) int{
				"list":   func(a []string) int { return aclUserList(ctx, a, stdout, stderr) },
				"create": func(a []string) int { return aclUserSet(ctx, "create", a, stdout, stderr) },
				"passwd": func(a []string) int { return aclUserSet(ctx, "passwd", a, stdout, stderr) },
				"delete": func(a []string) int { return aclUserDelete(ctx, a, stdout, stderr) },
			})
		},
		"role": func(a []string) int {
			return group("acl role", "  list\n  add --role R --name USER\n  remove --role R --name USER\n", a, stdout, stderr, map[string]func([]string) int{
				"list":   func(a []string) int { return aclRoleList(ctx, a, stdout, stderr) },
				"add":    func(a []string) int { return aclRoleChange(ctx, "add", a, stdout, stderr) },
				"remove": func(a []string) int { return aclRoleChange(ctx, "remove", a, stdout, stderr) },
			})
		},
		"grant": func(a []string) int {
			return group("acl grant", "  list\n  add --role R --resource NS[:GROUP]|* --action r|w|rw\n  remove --role R --resource … --action …\n", a, stdout, stderr, map[string]func([]string) int{
				"list":   func(a []string) int { return aclGrantList(ctx, a, stdout, stderr) },
				"add":    func(a []string) int { return aclGrantChange(ctx, "add", a, stdout, stderr) },
				"remove": func(a []string) int { return aclGrantChange(ctx, "remove", a, stdout, stderr) },
			})
		},
	})
}

// start is connect for the acl commands, which answer a client that cannot be made
// (a failed log-in, most often) as a failed request.
func (sc *subcommand) start(args []string, stderr io.Writer, required ...string) (c *client.Client, code int, ok bool) {
	return sc.connectOr(args, stderr, func(err error) int { return fail(stderr, err) }, required...)
}

func printCredential(sc *subcommand, stdout, stderr io.Writer, cred *client.Credential) int {
	if code, done := sc.printJSON(stdout, stderr, cred); done {
		return code
	}
	fmt.Fprintf(stdout, "username: %s\npassword: %s\n", cred.Username, cred.Password)
	return exitOK
}

func aclBootstrap(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	sc := newSubcommand("acl bootstrap", "Create the first administrator and print its name and password. Refused once any user exists.", stderr)
	name := sc.fs.String("name", "admin", "the administrator's user `name`")
	pw := sc.fs.String("user-password", "", "its `password` (default: generated)")
	c, code, ok := sc.start(args, stderr)
	if !ok {
		return code
	}
	cred, err := c.ACLBootstrap(ctx, *name, *pw)
	if err != nil {
		return fail(stderr, err)
	}
	return printCredential(sc, stdout, stderr, cred)
}

func aclLogin(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	sc := newSubcommand("acl login", "Log in and print an access token (export it as ROSTER_TOKEN).", stderr)
	c, code, ok := sc.start(args, stderr)
	if !ok {
		return code
	}
	if sc.cf.username == "" {
		return sc.usageError(stderr, "--username (or ROSTER_USERNAME) is required")
	}
	res, err := c.Login(ctx, sc.cf.username, sc.cf.password)
	if err != nil {
		return fail(stderr, err)
	}
	if code, done := sc.printJSON(stdout, stderr, res); done {
		return code
	}
	fmt.Fprintln(stdout, res.AccessToken)
	return exitOK
}

func aclWhoAmI(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	sc := newSubcommand("acl whoami", "Show who the server takes you for.", stderr)
	c, code, ok := sc.start(args, stderr)
	if !ok {
		return code
	}
	me, err := c.WhoAmI(ctx)
	if err != nil {
		return fail(stderr, err)
	}
	if code, done := sc.printJSON(stdout, stderr, me); done {
		return code
	}
	if !me.AuthEnabled {
		fmt.Fprintln(stdout, "auth is off on this server: every request is allowed")
		return exitOK
	}
	fmt.Fprintf(stdout, "%s (global admin: %v)\n", me.Username, me.GlobalAdmin)
	return exitOK
}

func aclRotateKey(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	sc := newSubcommand("acl rotate-key", "Make a new token signing key current. Tokens signed with the old key stay valid until they expire.", stderr)
	c, code, ok := sc.start(args, stderr)
	if !ok {
		return code
	}
	k, err := c.RotateKey(ctx)
	if err != nil {
		return fail(stderr, err)
	}
	if code, done := sc.printJSON(stdout, stderr, k); done {
		return code
	}
	fmt.Fprintf(stdout, "new signing key %s\n", k.KeyID)
	return exitOK
}

func aclUserList(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	sc := newSubcommand("acl user list", "List users and their roles.", stderr)
	c, code, ok := sc.start(args, stderr)
	if !ok {
		return code
	}
	users, err := c.ListUsers(ctx)
	if err != nil {
		return fail(stderr, err)
	}
	if code, done := sc.printJSON(stdout, stderr, users); done {
		return code
	}
	rows := [][]string{{"USER", "ROLES"}}
	for _, u := range users {
		rows = append(rows, []string{u.Username, dash(strings.Join(u.Roles, ","))})
	}
	if err := table(stdout, rows); err != nil {
		return fail(stderr, err)
	}
	return exitOK
}

func aclUserSet(ctx context.Context, verb string, args []string, stdout, stderr io.Writer) int {
	short := "Create a user and print its password."
	if verb == "passwd" {
		short = "Change a user's password and print it."
	}
	sc := newSubcommand("acl user "+verb, short, stderr)
	name := sc.fs.String("name", "", "user `name`")
	pw := sc.fs.String("user-password", "", "the user's `password` (default: generated)")
	c, code, ok := sc.start(args, stderr, "name")
	if !ok {
		return code
	}
	set := c.CreateUser
	if verb == "passwd" {
		set = c.SetPassword
	}
	cred, err := set(ctx, *name, *pw)
	if err != nil {
		return fail(stderr, err)
	}
	return printCredential(sc, stdout, stderr, cred)
}

func aclUserDelete(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	sc := newSubcommand("acl user delete", "Delete a user.", stderr)
	name := sc.fs.String("name", "", "user `name`")
	c, code, ok := sc.start(args, stderr, "name")
	if !ok {
		return code
	}
	if err := c.DeleteUser(ctx, *name); err != nil {
		return fail(stderr, err)
	}
	fmt.Fprintf(stdout, "deleted user %s\n", *name)
	return exitOK
}

func aclRoleList(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	sc := newSubcommand("acl role list", "List roles and their users.", stderr)
	c, code, ok := sc.start(args, stderr)
	if !ok {
		return code
	}
	roles, err := c.ListRoles(ctx)
	if err != nil {
		return fail(stderr, err)
	}
	if code, done := sc.printJSON(stdout, stderr, roles); done {
		return code
	}
	names := make([]string, 0, len(roles))
	for r := range roles {
		names = append(names, r)
	}
	sort.Strings(names)
	rows := [][]string{{"ROLE", "USERS"}}
	for _, r := range names {
		rows = append(rows, []string{r, strings.Join(roles[r], ",")})
	}
	if err := table(stdout, rows); err != nil {
		return fail(stderr, err)
	}
	return exitOK
}

func aclRoleChange(ctx context.Context, verb string, args []string, stdout, stderr io.Writer) int {
	sc := newSubcommand("acl role "+verb, "Give a user a role, or take it away.", stderr)
	role := sc.fs.String("role", "", "role `name` (ROLE_ADMIN is the global administrator)")
	name := sc.fs.String("name", "", "user `name`")
	c, code, ok := sc.start(args, stderr, "role", "name")
	if !ok {
		return code
	}
	change := c.BindRole
	if verb == "remove" {
		change = c.UnbindRole
	}
	if err := change(ctx, *role, *name); err != nil {
		return fail(stderr, err)
	}
	fmt.Fprintf(stdout, "%s role %s for %s: ok\n", verb, *role, *name)
	return exitOK
}

func aclGrantList(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	sc := newSubcommand("acl grant list", "List grants.", stderr)
	c, code, ok := sc.start(args, stderr)
	if !ok {
		return code
	}
	grants, err := c.ListGrants(ctx)
	if err != nil {
		return fail(stderr, err)
	}
	if code, done := sc.printJSON(stdout, stderr, grants); done {
		return code
	}
	rows := [][]string{{"ROLE", "RESOURCE", "ACTION"}}
	for _, g := range grants {
		rows = append(rows, []string{g.Role, g.Resource, g.Action})
	}
	if err := table(stdout, rows); err != nil {
		return fail(stderr, err)
	}
	return exitOK
}

func aclGrantChange(ctx context.Context, verb string, args []string, stdout, stderr io.Writer) int {
	sc := newSubcommand("acl grant "+verb, "Give a role read (r), write (w) or both (rw) on a namespace, one group of it (ns:group), or every namespace (*); or revoke it.", stderr)
	g := client.Grant{}
	sc.fs.StringVar(&g.Role, "role", "", "role `name`")
	sc.fs.StringVar(&g.Resource, "resource", "", "`namespace`, namespace:group, or *")
	sc.fs.StringVar(&g.Action, "action", "", "r, w or rw")
	c, code, ok := sc.start(args, stderr, "role", "resource", "action")
	if !ok {
		return code
	}
	change := c.AddGrant
	if verb == "remove" {
		change = c.RemoveGrant
	}
	if err := change(ctx, g); err != nil {
		return fail(stderr, err)
	}
	fmt.Fprintf(stdout, "%s grant %s %s on %s: ok\n", verb, g.Role, g.Action, g.Resource)
	return exitOK
}
