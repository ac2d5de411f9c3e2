package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/roster-registry/roster/client"
	"github.com/roster-registry/roster/naming"
)

const instanceSynopsis = `  register     register (or overwrite) an instance
  deregister   remove an instance
  list         list the instances of a service
`

// runInstance runs "roster instance register|deregister|list".
func runInstance(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return group("instance", instanceSynopsis, args, stdout, stderr, map[string]func([]string) int{
		"register":   func(a []string) int { return instanceRegister(ctx, a, stdout, stderr) },
		"deregister": func(a []string) int { return instanceDeregister(ctx, a, stdout, stderr) },
		"list":       func(a []string) int { return instanceList(ctx, a, stdout, stderr) },
	})
}

// serviceFlags are --namespace, --group and --service.
type serviceFlags struct {
	namespace, group, service string
}

func addServiceFlags(sc *subcommand) *serviceFlags {
	f := &serviceFlags{}
	sc.fs.StringVar(&f.namespace, "namespace", "", "namespace `id` (blank: public)")
	sc.fs.StringVar(&f.group, "group", "", "`group` (blank: DEFAULT_GROUP)")
	sc.fs.StringVar(&f.service, "service", "", "service `name` (required)")
	return f
}

func (f *serviceFlags) ref() client.ServiceRef {
	return client.ServiceRef{Namespace: f.namespace, Group: f.group, Name: f.service}
}

// describe names the service as namespace/G@@S for messages.
func (f *serviceFlags) describe() string {
	ns, g := f.namespace, f.group
	if ns == "" {
		ns = naming.DefaultNamespace
	}
	if g == "" {
		g = naming.DefaultGroup
	}
	if strings.Contains(f.service, naming.GroupSeparator) {
		return ns + "/" + f.service
	}
	return ns + "/" + g + naming.GroupSeparator + f.service
}

// instanceFlags are --ip, --port and --cluster.
type instanceFlags struct {
	ip      string
	port    int
	cluster string
}

func addInstanceFlags(sc *subcommand) *instanceFlags {
	f := &instanceFlags{}
	sc.fs.StringVar(&f.ip, "ip", "", "instance `address` (required)")
	sc.fs.IntVar(&f.port, "port", 0, "instance `port` (required)")
	sc.fs.StringVar(&f.cluster, "cluster", naming.DefaultCluster, "cluster `name`")
	return f
}

// actionResult is what register and deregister print with -o json.
type actionResult struct {
	Result    string `json:"result"`
	Namespace string `json:"namespace"`
	Service   string `json:"service"`
	IP        string `json:"ip"`
	Port      int    `json:"port"`
	Cluster   string `json:"cluster"`
	Ephemeral bool   `json:"ephemeral"`
}

func (f *instanceFlags) result(action string, sf *serviceFlags, ephemeral bool) actionResult {
	ns, svc, _ := strings.Cut(sf.describe(), "/")
	return actionResult{
		Result: action, Namespace: ns, Service: svc, IP: f.ip, Port: f.port,
		Cluster: f.cluster, Ephemeral: ephemeral,
	}
}

func kind(ephemeral bool) string {
	if ephemeral {
		return "ephemeral"
	}
	return "persistent"
}

func instanceRegister(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	sc := newSubcommand("instance register", "Register an instance, or overwrite the one at the same ip, port and cluster.\n"+
		"An ephemeral instance (the default) expires unless something sends heartbeats for it;\n"+
		"use --ephemeral=false for an instance that stays until it is deregistered.", stderr)
	sf := addServiceFlags(sc)
	inf := addInstanceFlags(sc)
	weight := sc.fs.Float64("weight", 1, "`weight` (0 to 10000)")
	ephemeral := sc.fs.Bool("ephemeral", true, "ephemeral (kept alive by heartbeats) or persistent")
	metadata := sc.fs.String("metadata", "", "metadata as `k=v,k=v` (or a JSON object)")
	if code, ok := sc.parse(args, stderr); !ok {
		return code
	}
	if code, ok := sc.require(stderr, "service", "ip", "port"); !ok {
		return code
	}
	md, err := parseMetadata(*metadata)
	if err != nil {
		return sc.usageError(stderr, err.Error())
	}
	c, err := sc.client()
	if err != nil {
		return sc.usageError(stderr, "--addr: "+err.Error())
	}
	inst := client.NewInstance(inf.ip, inf.port)
	inst.ClusterName = inf.cluster
	inst.Weight = *weight
	inst.Ephemeral = *ephemeral
	inst.Metadata = md
	if err := c.RegisterInstance(ctx, sf.ref(), inst); err != nil {
		return fail(stderr, err)
	}
	if code, done := sc.printJSON(stdout, stderr, inf.result("registered", sf, *ephemeral)); done {
		return code
	}
	fmt.Fprintf(stdout, "registered %s instance %s:%d (cluster %s) in %s\n",
		kind(*ephemeral), inf.ip, inf.port, inf.cluster, sf.describe())
	return exitOK
}

func instanceDeregister(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	sc := newSubcommand("instance deregister", "Remove an instance. The server answers ok even when no such instance exists.", stderr)
	sf := addServiceFlags(sc)
	inf := addInstanceFlags(sc)
	ephemeral := sc.fs.Bool("ephemeral", true, "remove from the ephemeral (true) or persistent (false) store")
	c, code, ok := sc.connect(args, stderr, "service", "ip", "port")
	if !ok {
		return code
	}
	inst := client.Instance{IP: inf.ip, Port: inf.port, ClusterName: inf.cluster, Ephemeral: *ephemeral}
	if err := c.DeregisterInstance(ctx, sf.ref(), inst); err != nil {
		return fail(stderr, err)
	}
	if code, done := sc.printJSON(stdout, stderr, inf.result("deregistered", sf, *ephemeral)); done {
		return code
	}
	fmt.Fprintf(stdout, "deregistered %s instance %s:%d (cluster %s) from %s\n",
		kind(*ephemeral), inf.ip, inf.port, inf.cluster, sf.describe())
	return exitOK
}

func instanceList(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	sc := newSubcommand("instance list", "List the enabled instances of a service.", stderr)
	sf := addServiceFlags(sc)
	cluster := sc.fs.String("cluster", "", "only these clusters, `a,b` (blank: all)")
	healthyOnly := sc.fs.Bool("healthy-only", false, "only healthy instances")
	c, code, ok := sc.connect(args, stderr, "service")
	if !ok {
		return code
	}
	var clusters []string
	if s := strings.TrimSpace(*cluster); s != "" {
		clusters = strings.Split(s, ",")
	}
	info, err := c.ListInstances(ctx, sf.ref(), client.ListOptions{Clusters: clusters, HealthyOnly: *healthyOnly})
	if err != nil {
		return fail(stderr, err)
	}
	if sc.json() {
		if info.Hosts == nil {
			info.Hosts = []client.Instance{}
		}
		if err := writeJSON(stdout, info); err != nil {
			return fail(stderr, err)
		}
		return exitOK
	}
	rows := [][]string{{"IP", "PORT", "CLUSTER", "WEIGHT", "HEALTHY", "ENABLED", "EPHEMERAL", "METADATA"}}
	for _, h := range info.Hosts {
		rows = append(rows, []string{
			h.IP, strconv.Itoa(h.Port), h.ClusterName, strconv.FormatFloat(h.Weight, 'f', -1, 64),
			strconv.FormatBool(h.Healthy), strconv.FormatBool(h.Enabled), strconv.FormatBool(h.Ephemeral),
			formatMetadata(h.Metadata),
		})
	}
	if err := table(stdout, rows); err != nil {
		return fail(stderr, err)
	}
	if info.ReachProtectionThreshold {
		fmt.Fprintln(stdout, "(protect threshold reached: the server answers unhealthy instances as healthy)")
	}
	return exitOK
}
