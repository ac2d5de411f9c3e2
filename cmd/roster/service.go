package main

import (
	"context"
	"io"
	"strconv"
	"strings"

	"github.com/roster-registry/roster/client"
	"github.com/roster-registry/roster/naming"
)

const serviceSynopsis = `  list   list the services of a group
  get    show one service
`

// servicePageSize is how many names "service list" asks for per request.
const servicePageSize = 500

// maxServicePages bounds "service list" against a server whose count never matches.
const maxServicePages = 10000

// runService runs "roster service list|get".
func runService(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return group("service", serviceSynopsis, args, stdout, stderr, map[string]func([]string) int{
		"list": func(a []string) int { return serviceList(ctx, a, stdout, stderr) },
		"get":  func(a []string) int { return serviceGet(ctx, a, stdout, stderr) },
	})
}

// serviceListResult is what "service list -o json" prints.
type serviceListResult struct {
	Namespace string   `json:"namespace"`
	Group     string   `json:"group"`
	Count     int      `json:"count"`
	Services  []string `json:"services"`
}

func serviceList(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	sc := newSubcommand("service list", "List the services of one group, all pages.", stderr)
	namespace := sc.fs.String("namespace", "", "namespace `id` (blank: public)")
	grp := sc.fs.String("group", "", "`group` (blank: DEFAULT_GROUP)")
	c, code, ok := sc.connect(args, stderr)
	if !ok {
		return code
	}
	res := serviceListResult{Namespace: *namespace, Group: *grp, Services: []string{}}
	if res.Namespace == "" {
		res.Namespace = naming.DefaultNamespace
	}
	if res.Group == "" {
		res.Group = naming.DefaultGroup
	}
	// The server counts the whole group and pages by name; stop at the count or at the
	// first short page, whichever comes first.
	for page := 1; page <= maxServicePages; page++ {
		list, err := c.ListServices(ctx, client.ServiceQuery{
			Namespace: *namespace, Group: *grp, PageNo: page, PageSize: servicePageSize,
		})
		if err != nil {
			return fail(stderr, err)
		}
		res.Count = list.Count
		res.Services = append(res.Services, list.Names...)
		if len(list.Names) < servicePageSize || len(res.Services) >= list.Count {
			break
		}
	}
	if code, done := sc.printJSON(stdout, stderr, res); done {
		return code
	}
	rows := [][]string{{"NAMESPACE", "GROUP", "NAME"}}
	for _, name := range res.Services {
		rows = append(rows, []string{res.Namespace, res.Group, name})
	}
	if err := table(stdout, rows); err != nil {
		return fail(stderr, err)
	}
	return exitOK
}

func serviceGet(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	sc := newSubcommand("service get", "Show a service: protect threshold, metadata, selector and clusters.", stderr)
	sf := addServiceFlags(sc)
	c, code, ok := sc.connect(args, stderr, "service")
	if !ok {
		return code
	}
	d, err := c.GetService(ctx, sf.ref())
	if err != nil {
		return fail(stderr, err)
	}
	if code, done := sc.printJSON(stdout, stderr, d); done {
		return code
	}
	selector := d.Selector.Type
	if d.Selector.Expression != "" {
		selector += " " + d.Selector.Expression
	}
	var clusters []string
	for _, cl := range d.Clusters {
		s := cl.Name
		if c := describeChecker(cl.HealthChecker); c != "" {
			s += " (" + c + ")"
		}
		clusters = append(clusters, s)
	}
	cl := strings.Join(clusters, ", ")
	if cl == "" {
		cl = "-"
	}
	rows := [][]string{
		{"NAMESPACE:", d.NamespaceID},
		{"GROUP:", d.GroupName},
		{"NAME:", d.Name},
		{"PROTECT THRESHOLD:", strconv.FormatFloat(d.ProtectThreshold, 'f', -1, 64)},
		{"SELECTOR:", selector},
		{"METADATA:", formatMetadata(d.Metadata)},
		{"CLUSTERS:", cl},
	}
	if err := table(stdout, rows); err != nil {
		return fail(stderr, err)
	}
	return exitOK
}

// describeChecker is a cluster's health check on one line: its type and, for HTTP and
// GRPC, what is asked for ("HTTP /health expect 200", "GRPC pkg.Orders").
func describeChecker(h client.HealthChecker) string {
	parts := []string{h.Type}
	switch h.Type {
	case naming.CheckerHTTP:
		path := h.Path
		if path == "" {
			path = "/"
		}
		parts = append(parts, path)
		if h.Headers != "" {
			parts = append(parts, "headers "+h.Headers)
		}
		if h.ExpectedResponseCode != 0 {
			parts = append(parts, "expect "+strconv.Itoa(h.ExpectedResponseCode))
		}
	case naming.CheckerGRPC:
		if h.Service != "" {
			parts = append(parts, h.Service)
		}
	}
	return strings.TrimSpace(strings.Join(parts, " "))
}
