package healthcheck

import (
	"context"
	"net/http"
	"strconv"
	"strings"

	"github.com/roster-registry/roster/naming"
)

// Type is a cluster's kind of health check, spelt as in Nacos' healthChecker JSON.
type Type string

const (
	// TypeTCP connects to the instance's port and closes at once, with a reset: Nacos'
	// default for a persistent cluster.
	TypeTCP Type = "TCP"
	// TypeHTTP sends GET http://ip:port/path and expects a status in ExpectedCodes.
	TypeHTTP Type = "HTTP"
	// TypeGRPC calls grpc.health.v1.Health/Check; SERVING is healthy. Beyond Nacos, as
	// in Consul.
	TypeGRPC Type = "GRPC"
	// TypeNone is never probed: health is set by hand (PUT /health/instance).
	TypeNone Type = "NONE"
)

// Probed reports whether a checker of this type is probed. NONE and any type this
// package does not know are not.
func (t Type) Probed() bool {
	return t == TypeTCP || t == TypeHTTP || t == TypeGRPC
}

// metricLabel is the type as the metrics name it; only probed types reach a metric.
func (t Type) metricLabel() string { return strings.ToLower(string(t)) }

// DefaultExpectedCode is the HTTP status an HTTP checker expects when ExpectedCodes is
// empty, as Nacos' expectedResponseCode.
const DefaultExpectedCode = http.StatusOK

// Checker is a cluster's health checker as the prober needs it. The stored form (Nacos'
// healthChecker JSON, checkPort, useInstancePort4Check) is translated into it by the
// caller; nothing here is validated beyond what keeps a probe safe.
type Checker struct {
	Type Type
	// Path is the HTTP path, with an optional query; "" is "/". A path that does not
	// start with "/" gets one, so that it can never name another host.
	Path string
	// Headers are extra HTTP request headers in Nacos' form, "name:value|name:value"
	// (ParseHeaders). A Host header sets the request's Host, never the address dialed.
	Headers string
	// ExpectedCodes are the HTTP statuses that count as healthy; empty means 200. Any
	// other status, a 3xx included (redirects are never followed), is a failure.
	ExpectedCodes []int
	// GRPCService is the service name sent in grpc.health.v1 HealthCheckRequest; "" asks
	// about the server as a whole.
	GRPCService string
	// UseInstancePort probes the instance's own port; when false, CheckPort is probed
	// on the instance's ip. Nacos' useInstancePort4Check defaults to true: the caller must
	// carry that default, as the zero value here means "use CheckPort".
	UseInstancePort bool
	// CheckPort is the port probed when UseInstancePort is false. A port outside
	// 1..65535 makes every probe fail without dialing.
	CheckPort int
}

// ParseHeaders reads Nacos' header form, "name:value|name:value", as Nacos'
// AbstractHealthChecker.Http.getCustomHeaders does: items are split on "|", each item
// on ":", both sides trimmed, and an item that does not split into exactly two parts
// (no colon, or a colon in the value) is skipped. An empty string yields no headers.
func ParseHeaders(s string) http.Header {
	h := http.Header{}
	if strings.TrimSpace(s) == "" {
		return h
	}
	for _, item := range strings.Split(s, "|") {
		parts := strings.Split(item, ":")
		if len(parts) != 2 {
			continue
		}
		name, value := strings.TrimSpace(parts[0]), strings.TrimSpace(parts[1])
		if name == "" {
			continue
		}
		h.Set(name, value)
	}
	return h
}

// Target is one persistent instance to probe, as the Source sees it at the start of a
// round.
type Target struct {
	Service naming.ServiceKey
	Cluster string
	// IP must be a literal IPv4 or IPv6 address. Anything else (a host name) is never
	// probed, so that no user data is ever looked up in DNS.
	IP   string
	Port int
	// Healthy is the stored health. The prober starts from it, and starts again from it
	// whenever Revision changes.
	Healthy bool
	// Revision changes whenever the stored instance, its health or its cluster's checker
	// changes. A change resets the count of repeated results: a result seen before the
	// change never counts towards a flip after it.
	Revision uint64
	// Checker is the cluster's checker, shared by every target of the cluster (a round
	// lists every persistent instance, so a copy per target would be most of its
	// memory); the prober never modifies it. Nil is never probed, as TypeNone.
	Checker *Checker
}

// DialPort is the port a probe of t dials: the instance's own, or the checker's
// CheckPort when UseInstancePort is off.
func (t *Target) DialPort() int {
	if t.Checker == nil || t.Checker.UseInstancePort {
		return t.Port
	}
	return t.Checker.CheckPort
}

// checkerType is the type of t's checker; TypeNone without one.
func (t *Target) checkerType() Type {
	if t.Checker == nil {
		return TypeNone
	}
	return t.Checker.Type
}

// Key identifies the target across members and rounds: namespace##G@@S#ip#port#cluster.
// Ownership hashes it, so every member derives the same key from the same stored data.
func (t Target) Key() string {
	return string(t.appendKey(nil))
}

// appendKey appends Key to b, so that a round can look its states up without
// allocating a key per target.
func (t *Target) appendKey(b []byte) []byte {
	b = append(b, t.Service.String()...)
	b = append(b, '#')
	b = append(b, t.IP...)
	b = append(b, '#')
	b = strconv.AppendInt(b, int64(t.Port), 10)
	b = append(b, '#')
	return append(b, t.Cluster...)
}

// Source lists the targets to probe. The prober calls Targets once at the start of every
// round, from one goroutine, and keeps nothing of the slice beyond the round. It should
// list every persistent instance whose checker is probed; the prober picks out its own
// share. It must not block for long: it delays the round, not any probe in flight.
type Source interface {
	Targets() []Target
}

// Members tells the prober who is alive, once per round. self is this member's id; live
// lists the live members' ids (self included while this member counts itself live), in
// any order; epoch identifies that view of the membership and is handed to Flip, so that
// a flip decided under an old view can be refused. Every member must see the same ids.
type Members interface {
	Live() (self string, live []string, epoch uint64)
}

// Flipper records a change of health the prober has seen repeated CheckTimes times in a
// row: healthy is the new health, target is the target as the round's Source listed it
// (its Revision is the one the results were seen under) and epoch is the membership view
// of that round. Flip is called from a probe worker and may block (a Raft commit), up to
// Config.FlipTimeout, which ctx carries; ctx is also cancelled by Stop. A nil error means
// the flip is recorded; after an error the prober still believes the old health and
// calls Flip again on the next result that repeats it.
type Flipper interface {
	Flip(ctx context.Context, target Target, healthy bool, epoch uint64) error
}
