package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"

	"github.com/roster-registry/roster/client"
)

const namespaceSynopsis = `  list     list the namespaces: public, created ones and ones in use
  create   create a namespace
  update   change a namespace's name, description or quotas
  delete   delete a namespace (refused while it has services)
`

// runNamespace runs "roster namespace list|create|update|delete".
func runNamespace(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return group("namespace", namespaceSynopsis, args, stdout, stderr, map[string]func([]string) int{
		"list":   func(a []string) int { return namespaceList(ctx, a, stdout, stderr) },
		"create": func(a []string) int { return namespaceWrite(ctx, "create", a, stdout, stderr) },
		"update": func(a []string) int { return namespaceWrite(ctx, "update", a, stdout, stderr) },
		"delete": func(a []string) int { return namespaceDelete(ctx, a, stdout, stderr) },
	})
}

var namespaceTypes = map[int]string{
	client.NamespacePublic:   "public",
	client.NamespaceCreated:  "created",
	client.NamespaceImplicit: "in use",
}

// quota prints a quota, "-" for unlimited.
func quota(n int) string {
	if n == 0 {
		return "-"
	}
	return strconv.Itoa(n)
}

func namespaceList(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	sc := newSubcommand("namespace list", "List the namespaces with their services, instances and quotas.", stderr)
	c, code, ok := sc.connect(args, stderr)
	if !ok {
		return code
	}
	list, err := c.ListNamespaces(ctx)
	if err != nil {
		return fail(stderr, err)
	}
	if list == nil {
		list = []client.Namespace{}
	}
	return sc.answer(stdout, stderr, list, func(w io.Writer) error {
		rows := [][]string{{"ID", "NAME", "TYPE", "SERVICES", "INSTANCES", "MAX SERVICES", "MAX INSTANCES", "DESCRIPTION"}}
		for _, n := range list {
			desc := "-"
			if n.Desc != nil && *n.Desc != "" {
				desc = *n.Desc
			}
			typ := namespaceTypes[n.Type]
			if typ == "" {
				typ = strconv.Itoa(n.Type)
			}
			rows = append(rows, []string{n.ID, n.Name, typ, strconv.Itoa(n.ServiceCount), strconv.Itoa(n.InstanceCount),
				quota(n.ServiceQuota), quota(n.InstanceQuota), desc})
		}
		return table(w, rows)
	})
}

// quotaFlag is an optional quota: unset, or a number (0 unlimited, -1 the server's
// default).
type quotaFlag struct{ v *int }

func (q *quotaFlag) String() string {
	if q.v == nil {
		return ""
	}
	return strconv.Itoa(*q.v)
}

func (q *quotaFlag) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil || n < -1 {
		return fmt.Errorf("want 0 (unlimited), a positive number, or -1 (the server's default)")
	}
	q.v = &n
	return nil
}

// namespaceWriteResult is what create and update print with -o json.
type namespaceWriteResult struct {
	Action    string `json:"action"`
	Namespace string `json:"namespace"`
}

func namespaceWrite(ctx context.Context, action string, args []string, stdout, stderr io.Writer) int {
	short := "Create a namespace."
	if action == "update" {
		short = "Change a namespace's name, description or quotas; unset flags stay as they are."
	}
	sc := newSubcommand("namespace "+action, short, stderr)
	id := sc.fs.String("id", "", "namespace `id` (letters, digits, _ and -)")
	name := sc.fs.String("name", "", "the `name` the console shows (create: default the id)")
	desc := sc.fs.String("desc", "", "`description`")
	var maxServices, maxInstances quotaFlag
	sc.fs.Var(&maxServices, "max-services", "services the namespace may hold: 0 unlimited, -1 the server's default (--namespace-max-services)")
	sc.fs.Var(&maxInstances, "max-instances", "instances the namespace may hold: 0 unlimited, -1 the server's default (--namespace-max-instances)")
	c, code, ok := sc.connect(args, stderr, "id")
	if !ok {
		return code
	}
	set := map[string]bool{}
	sc.fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	spec := client.NamespaceSpec{ID: *id, Name: *name, Desc: *desc, DescSet: set["desc"],
		MaxServices: maxServices.v, MaxInstances: maxInstances.v}
	switch action {
	case "create":
		if spec.Name == "" {
			spec.Name = spec.ID
		}
		err = c.CreateNamespace(ctx, spec)
	default:
		if !set["name"] {
			// The API needs the name with every update: keep the current one.
			cur, err := c.GetNamespace(ctx, spec.ID)
			if err != nil {
				return fail(stderr, err)
			}
			spec.Name = cur.Name
		}
		err = c.UpdateNamespace(ctx, spec)
	}
	if err != nil {
		return fail(stderr, err)
	}
	return sc.answerNamespaceWrite(stdout, stderr, action, spec.ID)
}

// answerNamespaceWrite prints that action (create, update, delete) was done to the
// namespace id.
func (sc *subcommand) answerNamespaceWrite(stdout, stderr io.Writer, action, id string) int {
	return sc.answer(stdout, stderr, namespaceWriteResult{Action: action, Namespace: id}, func(w io.Writer) error {
		_, err := fmt.Fprintf(w, "namespace %s: %sd\n", id, action)
		return err
	})
}

func namespaceDelete(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	sc := newSubcommand("namespace delete", "Delete a namespace; the server refuses one that still has services.", stderr)
	id := sc.fs.String("id", "", "namespace `id`")
	c, code, ok := sc.connect(args, stderr, "id")
	if !ok {
		return code
	}
	if err := c.DeleteNamespace(ctx, *id); err != nil {
		return fail(stderr, err)
	}
	return sc.answerNamespaceWrite(stdout, stderr, "delete", *id)
}
