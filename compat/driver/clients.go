package main

// Client is one row of the matrix: a client program that follows the contract in
// compat/README.md.
type Client struct {
	Name      string   // row name, used by --only and for log file names
	Language  string   // shown in RESULTS.md
	Version   string   // client and version text, unless the program reports {"version":...}
	Namespace string   // ROSTER_NAMESPACE
	Group     string   // ROSTER_GROUP
	Argv      []string // the command, relative to the repository root
}

// clients is the matrix, in the order of RESULTS.md's rows.
var clients = []Client{
	{"go-v1", "Go", "nacos-sdk-go v1.1.4", "public", "DEFAULT_GROUP", []string{"compat/go/bin/gov1"}},
	{"go-v2", "Go", "nacos-sdk-go v2.x", "compat-ns", "compat-group", []string{"compat/go/bin/gov2"}},
	{"java-1", "Java", "nacos-client 1.4.x", "compat-ns", "compat-group", []string{"compat/java/run.sh", "java1"}},
	{"java-2", "Java", "nacos-client 2.x", "public", "DEFAULT_GROUP", []string{"compat/java/run.sh", "java2"}},
	{"java-3", "Java", "nacos-client 3.x", "compat-ns", "compat-group", []string{"compat/java/run.sh", "java3"}},
	{"spring-cloud-alibaba", "Java", "spring-cloud-starter-alibaba-nacos-discovery", "compat-ns", "DEFAULT_GROUP", []string{"compat/java/run.sh", "sca"}},
	{"spring-cloud-alibaba-2025", "Java", "spring-cloud-starter-alibaba-nacos-discovery 2025", "public", "DEFAULT_GROUP", []string{"compat/java/run.sh", "sca2025"}},
	{"dubbo", "Java", "Apache Dubbo 3.x (dubbo-registry-nacos)", "compat-ns", "compat-group", []string{"compat/java/run.sh", "dubbo"}},
	{"maintainer", "Java", "nacos-maintainer-client 3.1.0 (admin API v3)", "compat-ns", "compat-group", []string{"compat/java/run.sh", "maintainer"}},
	{"python-0.1", "Python", "nacos-sdk-python 0.1.x", "compat-ns", "compat-group", []string{"compat/python/run.sh", "v01"}},
	{"python-new", "Python", "nacos-sdk-python newest", "public", "DEFAULT_GROUP", []string{"compat/python/run.sh", "new"}},
	{"node", "JavaScript", "nacos (npm)", "compat-ns", "compat-group", []string{"compat/node/run.sh"}},
}

// The contract's instances.
const (
	ephemeralIP   = "10.9.0.1"
	ephemeralPort = 8080
)

// cells are the matrix columns, in the contract's order. The client reports the steps;
// the driver fills keepalive, restart and stop.
var cells = []string{
	"register_ephemeral", "keepalive", "register_persistent", "list_select",
	"subscribe", "update", "deregister", "restart", "stop",
}

// authCells are the columns of the auth matrix: the scenario's, then refused, which
// the driver fills from a second run of the program without credentials.
var authCells = append(append([]string(nil), cells...), "refused")

// driverCells are the cells the driver fills: in answer to a wait, or refused.
var driverCells = map[string]bool{"keepalive": true, "restart": true, "stop": true, "refused": true}

// namespaceResource is the ACL resource of a client's namespace: the namespace id it
// uses, public when it uses the default.
func namespaceResource(c Client) string {
	if c.Namespace == "" {
		return "public"
	}
	return c.Namespace
}
