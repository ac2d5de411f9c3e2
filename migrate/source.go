package migrate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/roster-registry/roster/client"
	"github.com/roster-registry/roster/naming"
)

// SourceError is a source's answer the import cannot use: the URL asked, and what was
// wrong (the HTTP status and body, the field of an unexpected shape, or the transport
// error). Nothing of the service it belongs to has been written.
type SourceError struct {
	URL    string
	Status int    // 0 when no answer came
	Field  string // the JSON field that is missing or of the wrong type, if that is it
	Err    string
}

func (e *SourceError) Error() string {
	var b strings.Builder
	b.WriteString("source " + e.URL + ": ")
	switch {
	case e.Field != "":
		fmt.Fprintf(&b, "unexpected answer: field %q: %s", e.Field, e.Err)
	case e.Status != 0:
		fmt.Fprintf(&b, "HTTP %d: %s", e.Status, e.Err)
	default:
		b.WriteString(e.Err)
	}
	return b.String()
}

// absent reports whether the source does not have the endpoint at all (so the walk
// falls back to an older one): 404, 405, or Nacos' 501 "no such api".
func absent(err error) bool {
	var se *SourceError
	return errors.As(err, &se) && se.Field == "" &&
		(se.Status == http.StatusNotFound || se.Status == http.StatusMethodNotAllowed || se.Status == http.StatusNotImplemented)
}

// Source reads a Nacos-protocol server through its HTTP API.
type Source struct {
	base     *url.URL
	http     *http.Client
	token    string
	pageSize int
	// Groups are listed through the plain v1 /service/list, which needs a group, on
	// servers that have neither a catalog nor /service/names.
	Groups []string
}

// maxSourceAnswer bounds one answer of the source.
const maxSourceAnswer = 64 << 20

// NewSource returns a reader of the server at addr ("http://host:8848").
func NewSource(addr string, timeout time.Duration) (*Source, error) {
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	u, err := url.Parse(addr)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--from %q: want http://host:port", addr)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawQuery, u.Fragment = "", ""
	return &Source{base: u, http: &http.Client{Timeout: timeout}, pageSize: 100, Groups: []string{naming.DefaultGroup}}, nil
}

// Addr is the source's address.
func (s *Source) Addr() string { return s.base.String() }

// Login logs in with Nacos' /nacos/v1/auth/login and sends the token with every read.
func (s *Source) Login(ctx context.Context, username, password string) error {
	v := url.Values{"username": {username}, "password": {password}}
	var out struct {
		AccessToken *string `json:"accessToken"`
	}
	if err := s.call(ctx, http.MethodPost, "/nacos/v1/auth/login", v, &out); err != nil {
		return err
	}
	if out.AccessToken == nil {
		return &SourceError{URL: s.url("/nacos/v1/auth/login", nil), Field: "accessToken", Err: "missing"}
	}
	s.token = *out.AccessToken
	return nil
}

func (s *Source) url(path string, v url.Values) string {
	u := *s.base
	u.Path = s.base.Path + path
	if len(v) > 0 {
		u.RawQuery = v.Encode()
	}
	return u.String()
}

// get reads path and decodes its JSON answer into out.
func (s *Source) get(ctx context.Context, path string, v url.Values, out any) error {
	return s.call(ctx, http.MethodGet, path, v, out)
}

func (s *Source) call(ctx context.Context, method, path string, v url.Values, out any) error {
	if v == nil {
		v = url.Values{}
	}
	if s.token != "" {
		v.Set("accessToken", s.token)
	}
	var body io.Reader
	target := s.url(path, v)
	shown := s.url(path, withoutToken(v))
	if method != http.MethodGet {
		target = s.url(path, nil)
		body = strings.NewReader(v.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return &SourceError{URL: shown, Err: err.Error()}
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("User-Agent", "roster-import/1")
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return &SourceError{URL: shown, Err: unwrapURLError(err)}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxSourceAnswer+1))
	if err != nil {
		return &SourceError{URL: shown, Status: resp.StatusCode, Err: "reading the answer: " + err.Error()}
	}
	if len(b) > maxSourceAnswer {
		return &SourceError{URL: shown, Status: resp.StatusCode, Err: fmt.Sprintf("answer larger than %d bytes", maxSourceAnswer)}
	}
	if resp.StatusCode != http.StatusOK {
		return &SourceError{URL: shown, Status: resp.StatusCode, Err: oneLine(string(b), 300)}
	}
	if err := json.Unmarshal(b, out); err != nil {
		se := &SourceError{URL: shown, Err: "not the JSON expected: " + err.Error()}
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			se.Field = te.Field
			se.Err = "is " + te.Value + ", want " + te.Type.String()
		}
		return se
	}
	return nil
}

func withoutToken(v url.Values) url.Values {
	c := url.Values{}
	for k, vs := range v {
		if k != "accessToken" {
			c[k] = vs
		}
	}
	return c
}

func unwrapURLError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > max {
		s = s[:max] + "…"
	}
	return s
}

// missing is the error of a required field the answer does not have.
func missing(u, field string) error { return &SourceError{URL: u, Field: field, Err: "missing"} }

// nsWire is one namespace of the console list (v1) or the v3 admin list.
type nsWire struct {
	Namespace *string `json:"namespace"`
	ShowName  string  `json:"namespaceShowName"`
	Desc      string  `json:"namespaceDesc"`
}

// Namespaces lists the source's namespaces: the v1 console list, or the v3 admin one
// where v1 is gone. ok is false when the source has neither (then only the namespaces
// named on the command line, or public, are read).
func (s *Source) Namespaces(ctx context.Context) (list []Namespace, ok bool, err error) {
	for _, path := range []string{"/nacos/v1/console/namespaces", "/nacos/v3/admin/core/namespace/list"} {
		var out struct {
			Data *[]nsWire `json:"data"`
		}
		err := s.get(ctx, path, nil, &out)
		if absent(err) {
			continue
		}
		if err != nil {
			return nil, false, err
		}
		u := s.url(path, nil)
		if out.Data == nil {
			return nil, false, missing(u, "data")
		}
		for i, n := range *out.Data {
			if n.Namespace == nil {
				return nil, false, missing(u, fmt.Sprintf("data[%d].namespace", i))
			}
			id := *n.Namespace
			if id == "" {
				id = naming.DefaultNamespace
			}
			list = append(list, Namespace{ID: id, Name: n.ShowName, Desc: n.Desc})
		}
		return list, true, nil
	}
	return nil, false, nil
}

// ServiceName is a service's group and name.
type ServiceName struct{ Group, Name string }

// maxPages bounds a paged listing against a source whose count never adds up.
const maxPages = 100000

// ServiceNames lists a namespace's services (group and name) through the first of the
// catalog (v1/v2), the v3 admin list, /service/names (Nacos 1.x) and /service/list per
// group that the source has.
func (s *Source) ServiceNames(ctx context.Context, ns string) ([]ServiceName, error) {
	names, err := s.catalogServices(ctx, ns)
	if !absent(err) {
		return names, err
	}
	names, err = s.v3Services(ctx, ns)
	if !absent(err) {
		return names, err
	}
	names, err = s.serviceNamesV1(ctx, ns)
	if !absent(err) {
		return names, err
	}
	return s.serviceList(ctx, ns)
}

func (s *Source) catalogServices(ctx context.Context, ns string) ([]ServiceName, error) {
	const path = "/nacos/v1/ns/catalog/services"
	var names []ServiceName
	for page := 1; page <= maxPages; page++ {
		v := url.Values{"namespaceId": {ns}, "pageNo": {strconv.Itoa(page)}, "pageSize": {strconv.Itoa(s.pageSize)},
			"groupNameParam": {""}, "serviceNameParam": {""}, "hasIpCount": {"false"}}
		var out struct {
			Count *int `json:"count"`
			List  *[]struct {
				Name      *string `json:"name"`
				GroupName *string `json:"groupName"`
			} `json:"serviceList"`
		}
		if err := s.get(ctx, path, v, &out); err != nil {
			return nil, err
		}
		u := s.url(path, v)
		if out.Count == nil {
			return nil, missing(u, "count")
		}
		if out.List == nil {
			return nil, missing(u, "serviceList")
		}
		for i, e := range *out.List {
			if e.Name == nil || *e.Name == "" {
				return nil, missing(u, fmt.Sprintf("serviceList[%d].name", i))
			}
			if e.GroupName == nil || *e.GroupName == "" {
				return nil, missing(u, fmt.Sprintf("serviceList[%d].groupName", i))
			}
			g, n := splitGrouped(*e.Name, *e.GroupName)
			names = append(names, ServiceName{g, n})
		}
		if len(*out.List) < s.pageSize || len(names) >= *out.Count {
			return names, nil
		}
	}
	return names, nil
}

func (s *Source) v3Services(ctx context.Context, ns string) ([]ServiceName, error) {
	const path = "/nacos/v3/admin/ns/service/list"
	var names []ServiceName
	for page := 1; page <= maxPages; page++ {
		v := url.Values{"namespaceId": {ns}, "pageNo": {strconv.Itoa(page)}, "pageSize": {strconv.Itoa(s.pageSize)},
			"withInstances": {"false"}, "ignoreEmptyService": {"false"}}
		var out struct {
			Data *struct {
				TotalCount *int `json:"totalCount"`
				PageItems  *[]struct {
					Name      *string `json:"name"`
					GroupName *string `json:"groupName"`
				} `json:"pageItems"`
			} `json:"data"`
		}
		if err := s.get(ctx, path, v, &out); err != nil {
			return nil, err
		}
		u := s.url(path, v)
		if out.Data == nil || out.Data.TotalCount == nil || out.Data.PageItems == nil {
			return nil, missing(u, "data.totalCount/data.pageItems")
		}
		for i, e := range *out.Data.PageItems {
			if e.Name == nil || e.GroupName == nil {
				return nil, missing(u, fmt.Sprintf("data.pageItems[%d].name/groupName", i))
			}
			g, n := splitGrouped(*e.Name, *e.GroupName)
			names = append(names, ServiceName{g, n})
		}
		if len(*out.Data.PageItems) < s.pageSize || len(names) >= *out.Data.TotalCount {
			return names, nil
		}
	}
	return names, nil
}

func (s *Source) serviceNamesV1(ctx context.Context, ns string) ([]ServiceName, error) {
	const path = "/nacos/v1/ns/service/names"
	v := url.Values{"namespaceId": {ns}}
	var out struct {
		Services *map[string][]string `json:"services"`
	}
	if err := s.get(ctx, path, v, &out); err != nil {
		return nil, err
	}
	if out.Services == nil {
		return nil, missing(s.url(path, v), "services")
	}
	var names []ServiceName
	for _, grouped := range (*out.Services)[ns] {
		g, n := splitGrouped(grouped, naming.DefaultGroup)
		names = append(names, ServiceName{g, n})
	}
	return names, nil
}

func (s *Source) serviceList(ctx context.Context, ns string) ([]ServiceName, error) {
	const path = "/nacos/v1/ns/service/list"
	var names []ServiceName
	for _, group := range s.Groups {
		got := 0
		for page := 1; page <= maxPages; page++ {
			v := url.Values{"namespaceId": {ns}, "groupName": {group}, "pageNo": {strconv.Itoa(page)}, "pageSize": {strconv.Itoa(s.pageSize)}}
			var out struct {
				Count *int      `json:"count"`
				Doms  *[]string `json:"doms"`
			}
			if err := s.get(ctx, path, v, &out); err != nil {
				return nil, err
			}
			u := s.url(path, v)
			if out.Count == nil {
				return nil, missing(u, "count")
			}
			if out.Doms == nil {
				return nil, missing(u, "doms")
			}
			for _, d := range *out.Doms {
				g, n := splitGrouped(d, group)
				names = append(names, ServiceName{g, n})
			}
			got += len(*out.Doms)
			if len(*out.Doms) < s.pageSize || got >= *out.Count {
				break
			}
		}
	}
	return names, nil
}

// splitGrouped splits "G@@S" (some servers answer the grouped name) or keeps group.
func splitGrouped(name, group string) (string, string) {
	if g, n, ok := strings.Cut(name, naming.GroupSeparator); ok {
		return g, n
	}
	return group, name
}

func serviceQuery(ns, group, name string) url.Values {
	return url.Values{"namespaceId": {ns}, "groupName": {group}, "serviceName": {group + naming.GroupSeparator + name}}
}

// checkerWire is a health checker as sources answer it; extra fields are ignored.
type checkerWire struct {
	Type                 string `json:"type"`
	Path                 string `json:"path"`
	Headers              string `json:"headers"`
	ExpectedResponseCode int    `json:"expectedResponseCode"`
	Service              string `json:"service"`
}

func (c checkerWire) checker() client.HealthChecker {
	h := client.HealthChecker{Type: strings.ToUpper(c.Type)}
	if h.Type == "" {
		h.Type = naming.CheckerTCP
	}
	switch h.Type {
	case naming.CheckerHTTP:
		h.Path, h.Headers, h.ExpectedResponseCode = c.Path, c.Headers, c.ExpectedResponseCode
	case "GRPC":
		h.Service = c.Service
	}
	return h
}

type clusterWire struct {
	Name             *string           `json:"name"`
	HealthChecker    *checkerWire      `json:"healthChecker"`
	DefaultCheckPort *int              `json:"defaultCheckPort"`
	UseIPPort4Check  *bool             `json:"useIPPort4Check"`
	Metadata         map[string]string `json:"metadata"`
}

type selectorWire struct {
	Type       string `json:"type"`
	Expression string `json:"expression"`
}

type serviceWire struct {
	ProtectThreshold *float64          `json:"protectThreshold"`
	Metadata         map[string]string `json:"metadata"`
	Selector         *selectorWire     `json:"selector"`
	Ephemeral        *bool             `json:"ephemeral"`
}

// Nacos' defaults for a cluster that does not say how it is checked.
const (
	defaultCheckPort       = 80
	defaultUseInstancePort = true
)

// Service reads one service whole: its detail (the catalog's, which has the check
// ports, else GET /service) and every instance (the catalog's per cluster, which lists
// disabled ones too, and /instance/list, which finds clusters the detail leaves out).
// Nothing is returned unless all of it was read and has the expected shape.
func (s *Source) Service(ctx context.Context, ns, group, name string) (*Service, error) {
	svc := &Service{Namespace: ns, Group: group, Name: name}
	var clusters []clusterWire
	var detailURL string
	var wire serviceWire

	q := serviceQuery(ns, group, name)
	var cat struct {
		Service  *serviceWire   `json:"service"`
		Clusters *[]clusterWire `json:"clusters"`
	}
	err := s.get(ctx, "/nacos/v1/ns/catalog/service", q, &cat)
	switch {
	case err == nil:
		detailURL = s.url("/nacos/v1/ns/catalog/service", q)
		if cat.Service == nil {
			return nil, missing(detailURL, "service")
		}
		if cat.Clusters == nil {
			return nil, missing(detailURL, "clusters")
		}
		wire, clusters = *cat.Service, *cat.Clusters
	case absent(err):
		var d struct {
			serviceWire
			Clusters *[]clusterWire `json:"clusters"`
		}
		err := s.get(ctx, "/nacos/v1/ns/service", q, &d)
		if absent(err) {
			if wire, clusters, detailURL, err = s.v3Detail(ctx, q); err != nil {
				return nil, err
			}
			break
		}
		if err != nil {
			return nil, err
		}
		detailURL = s.url("/nacos/v1/ns/service", q)
		if d.Clusters == nil {
			return nil, missing(detailURL, "clusters")
		}
		wire, clusters = d.serviceWire, *d.Clusters
	default:
		return nil, err
	}
	if wire.ProtectThreshold == nil {
		return nil, missing(detailURL, "protectThreshold")
	}
	svc.ProtectThreshold = roundFloat32(*wire.ProtectThreshold)
	svc.Metadata = nonEmpty(wire.Metadata)
	if wire.Selector != nil {
		svc.Selector = client.Selector{Type: strings.ToLower(wire.Selector.Type), Expression: wire.Selector.Expression}
	}
	if svc.Selector.Type == "" {
		svc.Selector.Type = "none"
	}
	for i, c := range clusters {
		if c.Name == nil || *c.Name == "" {
			return nil, missing(detailURL, fmt.Sprintf("clusters[%d].name", i))
		}
		cl := Cluster{Name: *c.Name, CheckPort: defaultCheckPort, UseInstancePort: defaultUseInstancePort, Metadata: nonEmpty(c.Metadata)}
		if c.HealthChecker != nil {
			cl.HealthChecker = c.HealthChecker.checker()
		} else {
			cl.HealthChecker = client.HealthChecker{Type: naming.CheckerTCP}
		}
		if c.DefaultCheckPort != nil {
			cl.CheckPort = *c.DefaultCheckPort
		}
		if c.UseIPPort4Check != nil {
			cl.UseInstancePort = *c.UseIPPort4Check
		}
		svc.Clusters = append(svc.Clusters, cl)
	}

	all, err := s.instances(ctx, ns, group, name, svc.Clusters)
	if err != nil {
		return nil, err
	}
	persistent := 0
	for _, in := range all {
		if in.ephemeral {
			svc.EphemeralInstances++
			continue
		}
		persistent++
		svc.Instances = append(svc.Instances, in.Instance)
	}
	kind := wire.Ephemeral
	if kind == nil {
		if kind, err = s.serviceKind(ctx, q); err != nil {
			return nil, err
		}
	}
	switch {
	case kind != nil:
		svc.Ephemeral = *kind
	default:
		// A v1 detail does not say the kind: a service with ephemeral instances only is
		// ephemeral, anything else persistent (what v1's POST /service makes).
		svc.Ephemeral = svc.EphemeralInstances > 0 && persistent == 0
	}
	svc.normalize()
	return svc, svc.validate()
}

// serviceKind asks the v2 Open API whether a service is ephemeral (v1's detail does not
// say); nil when the source does not answer it.
func (s *Source) serviceKind(ctx context.Context, q url.Values) (*bool, error) {
	var out struct {
		Code *int `json:"code"`
		Data *struct {
			Ephemeral *bool `json:"ephemeral"`
		} `json:"data"`
	}
	err := s.get(ctx, "/nacos/v2/ns/service", q, &out)
	var se *SourceError
	if errors.As(err, &se) && (se.Status != 0 || se.Field != "") {
		return nil, nil // an answer, but not this one: the kind is inferred instead
	}
	if err != nil {
		return nil, err
	}
	if out.Code == nil || *out.Code != 0 || out.Data == nil {
		return nil, nil
	}
	return out.Data.Ephemeral, nil
}

// roundFloat32 undoes the float32 widening of servers that keep a number as a float
// (r-nacos' threshold and weight): 0.30000001192092896 reads back as 0.3. A number that
// is not exactly a float32 did not come from one and is kept as it is.
func roundFloat32(f float64) float64 {
	if float64(float32(f)) != f {
		return f
	}
	g, err := strconv.ParseFloat(strconv.FormatFloat(f, 'g', -1, 32), 64)
	if err != nil {
		return f
	}
	return g
}

func nonEmpty(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return m
}

type instanceWire struct {
	IP          *string           `json:"ip"`
	Port        *int              `json:"port"`
	ClusterName string            `json:"clusterName"`
	Weight      *float64          `json:"weight"`
	Healthy     *bool             `json:"healthy"`
	Enabled     *bool             `json:"enabled"`
	Ephemeral   *bool             `json:"ephemeral"`
	Metadata    map[string]string `json:"metadata"`
}

type sourceInstance struct {
	Instance
	ephemeral bool
}

func (w instanceWire) read(u, at string) (sourceInstance, error) {
	switch {
	case w.IP == nil:
		return sourceInstance{}, missing(u, at+".ip")
	case w.Port == nil:
		return sourceInstance{}, missing(u, at+".port")
	case w.Ephemeral == nil:
		// Without it an import cannot tell what to copy: refuse rather than guess.
		return sourceInstance{}, missing(u, at+".ephemeral")
	}
	in := sourceInstance{Instance: Instance{IP: *w.IP, Port: *w.Port, Cluster: w.ClusterName, Weight: 1, Healthy: true, Enabled: true,
		Metadata: nonEmpty(w.Metadata)}, ephemeral: *w.Ephemeral}
	if in.Cluster == "" {
		in.Cluster = naming.DefaultCluster
	}
	if w.Weight != nil {
		in.Weight = roundFloat32(*w.Weight)
	}
	if w.Healthy != nil {
		in.Healthy = *w.Healthy
	}
	if w.Enabled != nil {
		in.Enabled = *w.Enabled
	}
	return in, nil
}

// instances reads every instance of a service.
func (s *Source) instances(ctx context.Context, ns, group, name string, clusters []Cluster) ([]sourceInstance, error) {
	const listPath = "/nacos/v1/ns/instance/list"
	q := serviceQuery(ns, group, name)
	q.Set("healthyOnly", "false")
	var list struct {
		Hosts *[]instanceWire `json:"hosts"`
	}
	err := s.get(ctx, listPath, q, &list)
	if absent(err) {
		return s.v3Instances(ctx, ns, group, name)
	}
	if err != nil {
		return nil, err
	}
	lu := s.url(listPath, q)
	if list.Hosts == nil {
		return nil, missing(lu, "hosts")
	}
	byKey := map[string]sourceInstance{}
	var order []string
	add := func(in sourceInstance) {
		k := in.key()
		if _, ok := byKey[k]; !ok {
			order = append(order, k)
		}
		byKey[k] = in
	}
	clusterNames := map[string]bool{}
	for _, c := range clusters {
		clusterNames[c.Name] = true
	}
	for i, w := range *list.Hosts {
		in, err := w.read(lu, fmt.Sprintf("hosts[%d]", i))
		if err != nil {
			return nil, err
		}
		add(in)
		clusterNames[in.Cluster] = true
	}
	// The catalog lists disabled instances too, which /instance/list leaves out.
	const catPath = "/nacos/v1/ns/catalog/instances"
	for cl := range clusterNames {
		got := 0
		for page := 1; page <= maxPages; page++ {
			v := serviceQuery(ns, group, name)
			v.Set("clusterName", cl)
			v.Set("pageNo", strconv.Itoa(page))
			v.Set("pageSize", strconv.Itoa(s.pageSize))
			var out struct {
				Count *int            `json:"count"`
				List  *[]instanceWire `json:"list"`
			}
			err := s.get(ctx, catPath, v, &out)
			if absent(err) {
				return mergeOrder(order, byKey), nil
			}
			if err != nil {
				return nil, err
			}
			u := s.url(catPath, v)
			if out.Count == nil {
				return nil, missing(u, "count")
			}
			if out.List == nil {
				return nil, missing(u, "list")
			}
			for i, w := range *out.List {
				if w.ClusterName == "" {
					w.ClusterName = cl
				}
				in, err := w.read(u, fmt.Sprintf("list[%d]", i))
				if err != nil {
					return nil, err
				}
				add(in)
			}
			got += len(*out.List)
			if len(*out.List) < s.pageSize || got >= *out.Count {
				break
			}
		}
	}
	return mergeOrder(order, byKey), nil
}

func mergeOrder(order []string, byKey map[string]sourceInstance) []sourceInstance {
	out := make([]sourceInstance, 0, len(order))
	for _, k := range order {
		out = append(out, byKey[k])
	}
	return out
}

// SetToken sends an access token with every read (one the caller logged in for).
func (s *Source) SetToken(token string) { s.token = token }

// v3Detail reads a service's detail from Nacos 3's admin API, for a server without the
// v1 one: {"code":0,"data":{…,"clusterMap":{name:{healthChecker,healthyCheckPort,
// useInstancePortForCheck,metadata}}}}.
func (s *Source) v3Detail(ctx context.Context, q url.Values) (serviceWire, []clusterWire, string, error) {
	const path = "/nacos/v3/admin/ns/service"
	var out struct {
		Code *int `json:"code"`
		Data *struct {
			serviceWire
			ClusterMap *map[string]struct {
				HealthChecker   *checkerWire      `json:"healthChecker"`
				CheckPort       *int              `json:"healthyCheckPort"`
				UseInstancePort *bool             `json:"useInstancePortForCheck"`
				Metadata        map[string]string `json:"metadata"`
			} `json:"clusterMap"`
		} `json:"data"`
	}
	v := url.Values{"namespaceId": q["namespaceId"], "groupName": q["groupName"]}
	_, plain := splitGrouped(q.Get("serviceName"), "")
	v.Set("serviceName", plain)
	u := s.url(path, v)
	if err := s.get(ctx, path, v, &out); err != nil {
		return serviceWire{}, nil, u, err
	}
	if out.Code == nil || *out.Code != 0 {
		return serviceWire{}, nil, u, missing(u, "code (0)")
	}
	if out.Data == nil || out.Data.ClusterMap == nil {
		return serviceWire{}, nil, u, missing(u, "data.clusterMap")
	}
	var clusters []clusterWire
	for name, c := range *out.Data.ClusterMap {
		name := name
		clusters = append(clusters, clusterWire{Name: &name, HealthChecker: c.HealthChecker, DefaultCheckPort: c.CheckPort,
			UseIPPort4Check: c.UseInstancePort, Metadata: c.Metadata})
	}
	return out.Data.serviceWire, clusters, u, nil
}

// v3Instances lists a service's instances through Nacos 3's admin API.
func (s *Source) v3Instances(ctx context.Context, ns, group, name string) ([]sourceInstance, error) {
	const path = "/nacos/v3/admin/ns/instance/list"
	q := serviceQuery(ns, group, name)
	q.Set("serviceName", name)
	q.Set("healthyOnly", "false")
	var out struct {
		Code *int            `json:"code"`
		Data *[]instanceWire `json:"data"`
	}
	if err := s.get(ctx, path, q, &out); err != nil {
		return nil, err
	}
	u := s.url(path, q)
	if out.Code == nil || *out.Code != 0 || out.Data == nil {
		return nil, missing(u, "data")
	}
	var all []sourceInstance
	for i, w := range *out.Data {
		in, err := w.read(u, fmt.Sprintf("data[%d]", i))
		if err != nil {
			return nil, err
		}
		all = append(all, in)
	}
	return all, nil
}
