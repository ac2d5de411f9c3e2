package grpcapi

import (
	"net"

	"github.com/roster-registry/roster/auth"
	"github.com/roster-registry/roster/naming"
)

// access is what a request type needs. Every handler in namingHandlers declares one; a
// handler without (accessUndeclared) is refused, so a new request type is closed until
// someone decides who may send it.
type access int

const (
	accessUndeclared access = iota
	// accessPublic needs nothing (HealthCheckRequest, like Nacos).
	accessPublic
	// accessRead and accessWrite need that action on the request's namespace and group.
	accessRead
	accessWrite
)

func (s *Server) authOn() bool { return s.cfg.Auth != nil && s.cfg.Auth.Enabled() }

// authorize checks a request against its handler's access, with the credentials the
// client put in Metadata.headers: accessToken, or username and password. It returns the
// caller's name and the service the request is about.
func (s *Server) authorize(c *conn, h handlerFunc, env Envelope) (string, naming.ServiceKey, error) {
	if h.access == accessUndeclared {
		s.log.Error("request type has no declared access; refused", "type", env.Type)
		return "", naming.ServiceKey{}, auth.ErrForbidden
	}
	if h.access == accessPublic || !s.authOn() {
		return "", naming.ServiceKey{}, nil
	}
	hd := env.Headers
	id, err := s.cfg.Auth.Identify(auth.Credentials{
		AccessToken: hd["accessToken"], Username: hd["username"], Password: hd["password"], Source: c.remoteHost(),
	})
	if err != nil {
		return "", naming.ServiceKey{}, err
	}
	var req namingRequest
	if err := decodeBody(env.Body, &req); err != nil {
		return "", naming.ServiceKey{}, err
	}
	k := req.key()
	need := auth.Read
	if h.access == accessWrite {
		need = auth.Write
	}
	if !id.Can(need, k.Namespace, k.Group) {
		return id.Name, k, auth.ErrForbidden
	}
	return id.Name, k, nil
}

// audit writes one line per write request. It never logs credentials.
func (s *Server) audit(c *conn, env Envelope, user string, k naming.ServiceKey, err error) {
	result := "ok"
	if err != nil {
		result = err.Error()
	}
	s.auditLog.Info("audit", "user", user, "request", env.Type, "namespace", k.Namespace, "group", k.Group,
		"service", k.Name, "result", result, "source", c.remote, "conn", c.id)
}

// key is the request's service with Nacos' defaults, unchecked (the handler checks).
func (n namingRequest) key() naming.ServiceKey {
	k, _ := n.service()
	return k
}

// remoteHost is the client's IP, for the password rate limit.
func (c *conn) remoteHost() string {
	host, _, err := net.SplitHostPort(c.remote)
	if err != nil {
		return c.remote
	}
	return host
}
