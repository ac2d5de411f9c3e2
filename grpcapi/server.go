// Package grpcapi is Roster's Nacos 2.x client front: a gRPC server (HTTP port + 1000,
// 9848 by default) serving /Request/request and /BiRequestStream/requestBiStream with
// Nacos' Payload envelope (PROTOCOL.md §6). It tracks one connection per TCP connection,
// answers the naming requests through the same registry calls as the HTTP API, keeps the
// instances a connection registers for as long as the connection lives, and pushes every
// change of a subscribed service to its subscribers on their streams.
//
// Errors follow Nacos' GrpcRequestAcceptor: a server that is not ready answers 300, an
// unknown type 302, a connection that has not sent ConnectionSetupRequest 301, a body that
// cannot be read 502; a parameter check failure is the handler's own response type with
// resultCode 500, errorCode 400 and "Param check invalid:<text>"; other business errors
// are ErrorResponse with resultCode 500 and errorCode = the error's code.
package grpcapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/roster-registry/roster/auth"
	nacospb "github.com/roster-registry/roster/grpcapi/proto"
	"github.com/roster-registry/roster/naming"
	"github.com/roster-registry/roster/registry"
)

// Defaults of Config.
const (
	DefaultMaxRecvMsgSize = 10 << 20 // Nacos' inbound limit
	DefaultMaxConnections = 20000
	DefaultDetectIdle     = 20 * time.Second // NacosRuntimeConnectionEjector
	DefaultDetectTimeout  = 5 * time.Second
	DefaultPushTimeout    = 5 * time.Second // Nacos PushConstants
	DefaultPushDelay      = 20 * time.Millisecond
	DefaultSendQueue      = 1024

	// staticWindow is each connection's and each stream's HTTP/2 receive window.
	staticWindow = 1 << 20
)

// Config configures a Server. Zero values take the defaults above.
type Config struct {
	// MaxRecvMsgSize bounds an inbound message (the gRPC transport refuses bigger ones).
	MaxRecvMsgSize int
	// MaxBody bounds a request's JSON body; bigger ones get an ErrorResponse. Zero
	// means MaxRecvMsgSize.
	MaxBody int
	// MaxMetadata bounds an instance's metadata (summed key and value lengths); zero
	// means naming.DefaultMaxMetadata.
	MaxMetadata int
	// MaxConnections bounds the registered connections; a set-up beyond it is refused
	// (its stream is closed, so the client tries again later).
	MaxConnections int
	// DetectIdle: a connection silent this long is sent a ClientDetectionRequest.
	DetectIdle time.Duration
	// DetectTimeout: a connection that does not answer a detection within it is dropped.
	DetectTimeout time.Duration
	// PushTimeout: a push not acked within it is sent once more (with the latest data),
	// then given up (clients also poll). A connection whose stream write stays blocked
	// this long (the client stopped reading) is dropped, as Nacos drops a connection
	// whose push fails.
	PushTimeout time.Duration
	// PushDelay coalesces a burst of changes to one service into one push.
	PushDelay time.Duration
	// SendQueue bounds each connection's queue of server requests; a connection whose
	// queue overflows is dropped (it reconnects and resubscribes).
	SendQueue int
	// Ready reports whether the node serves traffic; until then every request is
	// answered 300. Nil means always ready.
	Ready func() bool
	// Auth checks every request's credentials (Metadata.headers) and permissions; nil
	// or disabled lets every request in.
	Auth *auth.Authority
	// AuditLogger receives one line per write; default Logger.
	AuditLogger *slog.Logger
	Logger      *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.MaxRecvMsgSize <= 0 {
		c.MaxRecvMsgSize = DefaultMaxRecvMsgSize
	}
	if c.MaxBody <= 0 || c.MaxBody > c.MaxRecvMsgSize {
		c.MaxBody = c.MaxRecvMsgSize
	}
	if c.MaxConnections <= 0 {
		c.MaxConnections = DefaultMaxConnections
	}
	if c.DetectIdle <= 0 {
		c.DetectIdle = DefaultDetectIdle
	}
	if c.DetectTimeout <= 0 {
		c.DetectTimeout = DefaultDetectTimeout
	}
	if c.PushTimeout <= 0 {
		c.PushTimeout = DefaultPushTimeout
	}
	if c.PushDelay <= 0 {
		c.PushDelay = DefaultPushDelay
	}
	if c.SendQueue <= 0 {
		c.SendQueue = DefaultSendQueue
	}
	if c.Ready == nil {
		c.Ready = func() bool { return true }
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Server is the gRPC front of one node.
type Server struct {
	nacospb.UnimplementedRequestServer
	nacospb.UnimplementedBiRequestStreamServer

	cfg      Config
	log      *slog.Logger
	reg      *registry.Registry
	grpc     *grpc.Server
	conns    connSet
	hub      *hub
	metrics  *metrics
	handlers map[string]handlerFunc
	auditLog *slog.Logger

	registered atomic.Int64
	draining   atomic.Bool
	// requestIDs numbers the requests the server sends on streams, across all
	// connections, so one push can carry the same id to every subscriber.
	requestIDs atomic.Uint64
	now        func() time.Time

	runMu   sync.Mutex
	started bool
	stopped bool
	stopc   chan struct{}
	wg      sync.WaitGroup
}

// New builds the server over reg. Serve starts it.
func New(cfg Config, reg *registry.Registry) *Server {
	cfg = cfg.withDefaults()
	s := &Server{
		cfg:   cfg,
		log:   cfg.Logger.With("component", "grpc"),
		reg:   reg,
		now:   time.Now,
		stopc: make(chan struct{}),
	}
	s.auditLog = s.log.With("component", "audit")
	if cfg.AuditLogger != nil {
		s.auditLog = cfg.AuditLogger.With("component", "audit")
	}
	s.metrics = newMetrics(s)
	s.hub = newHub(s)
	s.handlers = s.namingHandlers()
	s.grpc = grpc.NewServer(
		grpc.MaxRecvMsgSize(cfg.MaxRecvMsgSize),
		// Fixed receive windows: with grpc-go's dynamic ones the server pings the client
		// after every message it reads (to estimate the bandwidth-delay product), so
		// every push ack cost a ping and its answer on each side. 1 MiB is below the
		// 16 MiB the dynamic window may grow to, and far more than acks and
		// registrations need.
		grpc.StaticStreamWindowSize(staticWindow),
		grpc.StaticConnWindowSize(staticWindow),
		// Clients ping every 60 s (Go) or 6 min (Java), with or without a stream:
		// grpc-go's default enforcement (5 min) would answer GOAWAY too_many_pings.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		grpc.StatsHandler(statsHandler{s: s}),
		grpc.ChainUnaryInterceptor(s.recoverUnary),
		grpc.ChainStreamInterceptor(s.recoverStream),
	)
	nacospb.RegisterRequestServer(s.grpc, s)
	nacospb.RegisterBiRequestStreamServer(s.grpc, s)
	reg.Watch(s.hub.changed)
	reg.SetConnDirectory(s)
	return s
}

// Serve accepts connections on ln until Stop. It starts the push and detection loops.
func (s *Server) Serve(ln net.Listener) error {
	s.runMu.Lock()
	if s.stopped {
		s.runMu.Unlock()
		return grpc.ErrServerStopped
	}
	if !s.started {
		s.started = true
		s.wg.Add(2)
		go s.hub.loop()
		go s.janitor()
	}
	s.runMu.Unlock()
	return s.grpc.Serve(ln)
}

// Drain moves clients off this node before it stops: it refuses new connections (300 to
// ServerCheckRequest), sends every registered connection a ConnectResetRequest, and
// waits until they have gone or ctx ends.
func (s *Server) Drain(ctx context.Context) {
	s.draining.Store(true)
	rest := []byte(`{"module":"internal"}`)
	n := 0
	for _, c := range s.conns.snapshot() {
		if c.enqueue(&outMsg{typ: "ConnectResetRequest", rest: rest}) {
			n++
		}
	}
	if n == 0 {
		return
	}
	s.log.Info("draining gRPC clients", "connections", n)
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for s.registered.Load() > 0 {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Stop closes every stream and connection, then the loops. It is idempotent.
func (s *Server) Stop() {
	s.runMu.Lock()
	if !s.stopped {
		s.stopped = true
		close(s.stopc)
	}
	s.runMu.Unlock()
	for _, c := range s.conns.snapshot() {
		s.drop(c, "server stopping")
	}
	done := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(500 * time.Millisecond):
		// Clients keep a connection open after its streams end until they have
		// another one; do not wait for them.
		s.grpc.Stop()
		<-done
	}
	s.wg.Wait()
}

// Connections reports the open TCP connections and the registered ones.
func (s *Server) Connections() (open, registered int) {
	return s.conns.len(), int(s.registered.Load())
}

// Request serves /Request/request.
func (s *Server) Request(ctx context.Context, p *nacospb.Payload) (*nacospb.Payload, error) {
	start := time.Now()
	rep := s.handleUnary(ctx, p)
	s.metrics.observeRequest(p.GetMetadata().GetType(), rep, time.Since(start))
	return EncodePayload(rep.typ, rep.body), nil
}

func (s *Server) handleUnary(ctx context.Context, p *nacospb.Payload) reply {
	c := connFrom(ctx)
	if c == nil {
		return errorReply("", codeFail, "connection unknown")
	}
	c.touch(s.now())
	env, _ := DecodeEnvelope(p) // a missing type finds no handler below
	if !s.cfg.Ready() {
		return errorReply("", codeServerStarting, "Server is starting,please try later.")
	}
	if env.Type == "ServerCheckRequest" {
		if s.draining.Load() {
			return errorReply("", codeServerStarting, "Server is starting,please try later.")
		}
		return mustReply("ServerCheckResponse", serverCheckResponse{
			ResponseHead: okHead(""), ConnectionID: c.id, responseTail: responseTail{Success: true},
		})
	}
	h, ok := s.handlers[env.Type]
	if !ok {
		return errorReply("", codeNoHandler, "RequestHandler Not Found")
	}
	if !c.isRegistered() {
		return errorReply("", codeUnregistered, "Connection is unregistered.")
	}
	if len(env.Body) > s.cfg.MaxBody {
		return errorReply("", codeBadRequest, fmt.Sprintf("request body exceeds the limit of %d bytes", s.cfg.MaxBody))
	}
	var head requestHead
	if err := decodeBody(env.Body, &head); err != nil {
		return errorReply("", codeBadGateway, err.Error())
	}
	user, svc, err := s.authorize(c, h, env)
	if err != nil {
		// Nacos' RemoteRequestAuthFilter: the handler's response type, errorCode 403.
		return mustReply(h.respType, newPlain(failHead(head.RequestID, codeForbidden, err.Error())))
	}
	res, err := h.fn(ctx, c, env, head.RequestID)
	if h.access == accessWrite && s.authOn() {
		s.audit(c, env, user, svc, err)
	}
	if err != nil {
		return s.fail(h.respType, head.RequestID, err)
	}
	return mustReply(h.respType, res)
}

// serverCheckResponse answers ServerCheckRequest. Abilities are not negotiated: with
// true, Java 2.3+ waits for a SetupAckRequest Roster never sends.
type serverCheckResponse struct {
	ResponseHead
	ConnectionID              string `json:"connectionId"`
	SupportAbilityNegotiation bool   `json:"supportAbilityNegotiation"`
	responseTail
}

// RequestBiStream serves /BiRequestStream/requestBiStream: the connection's set-up, the
// server's requests to the client (pushes, detection, reset) and their answers.
func (s *Server) RequestBiStream(stream nacospb.BiRequestStream_RequestBiStreamServer) error {
	ctx := stream.Context()
	c := connFrom(ctx)
	if c == nil {
		return status.Error(codes.Internal, "connection unknown")
	}
	out := make(chan *outMsg, s.cfg.SendQueue)
	c.mu.Lock()
	switch {
	case c.dropped:
		c.mu.Unlock()
		return status.Error(codes.Unavailable, "connection closed")
	case c.out != nil:
		c.mu.Unlock()
		return status.Error(codes.AlreadyExists, "connection already has a stream")
	}
	c.out = out
	c.mu.Unlock()

	recvDone := make(chan error, 1)
	go func() { recvDone <- s.recvLoop(stream, c) }()
	// The sender has its own goroutine so that a Send blocked by a client that stopped
	// reading cannot keep this handler from returning once the connection is dropped.
	quit := make(chan struct{})
	sendDone := make(chan error, 1)
	go func() { sendDone <- s.sendLoop(stream, c, out, quit) }()
	end := func(err error) error {
		close(quit)
		select {
		case <-sendDone:
		case <-c.stuck:
		}
		return err
	}

	select {
	case err := <-sendDone:
		close(quit)
		s.drop(c, "send failed: "+err.Error())
		return nil
	case <-c.closed:
		return end(s.streamEnd())
	case err := <-recvDone:
		reason := "stream closed by client"
		if err != nil {
			reason = "stream failed: " + err.Error()
		}
		s.drop(c, reason)
		return end(nil)
	case <-ctx.Done():
		s.drop(c, "stream context done")
		return end(nil)
	case <-s.stopc:
		s.drop(c, "server stopping")
		return end(s.streamEnd())
	}
}

// sendLoop writes the connection's queued requests until quit or a failed Send.
func (s *Server) sendLoop(stream nacospb.BiRequestStream_RequestBiStreamServer, c *conn, out <-chan *outMsg, quit <-chan struct{}) error {
	for {
		select {
		case m := <-out:
			if err := s.send(stream, c, m); err != nil {
				return err
			}
		case <-quit:
			return nil
		}
	}
}

// streamEnd is how a stream ends once the server dropped its connection: cleanly, or
// UNAVAILABLE while the server stops, as Nacos' shutdownNow cancels every call. Some
// clients (nacos-sdk-python 3.x) reconnect when their stream fails, not when it ends.
func (s *Server) streamEnd() error {
	select {
	case <-s.stopc:
		return status.Error(codes.Unavailable, "server stopping")
	default:
		return nil
	}
}

// send writes one server request. Stream.Send may block on a slow client: only this
// connection's sender waits; the janitor drops it when the Send stays blocked past
// PushTimeout.
func (s *Server) send(stream nacospb.BiRequestStream_RequestBiStreamServer, c *conn, m *outMsg) error {
	now := s.now()
	c.mu.Lock()
	rest, shared := m.rest, m.shared
	var id string
	if shared != nil {
		id = shared.id
	} else {
		id = s.newRequestID()
	}
	if m.push != nil {
		if c.queued[m.push.key] == m {
			delete(c.queued, m.push.key)
		}
		if c.pending != nil {
			m.push.sentAt = now
			c.pending[id] = m.push
		}
	}
	if m.probe {
		c.probeID = id
	}
	c.mu.Unlock()
	c.sendStarted()
	defer c.sendEnded()
	if shared != nil {
		msg, err := shared.prepared(stream)
		if err != nil {
			// Not expected (the codec is proto's); the connection still gets its push.
			return stream.Send(shared.payload)
		}
		return stream.SendMsg(msg)
	}
	return stream.Send(EncodePayload(m.typ, serverRequestBody(id, rest)))
}

func (s *Server) newRequestID() string { return strconv.FormatUint(s.requestIDs.Add(1), 10) }

// maxGarbage bounds consecutive undecodable frames on one stream.
const maxGarbage = 100

// recvLoop reads the client's messages until the stream ends. Undecodable frames are
// logged and skipped, as Nacos skips payloads it cannot parse.
func (s *Server) recvLoop(stream nacospb.BiRequestStream_RequestBiStreamServer, c *conn) error {
	garbage := 0
	for {
		p, err := stream.Recv()
		if err != nil {
			if status.Code(err) == codes.Internal && strings.Contains(err.Error(), "unmarshal") && garbage < maxGarbage {
				garbage++
				s.metrics.streamGarbage.Inc()
				s.log.Warn("undecodable message on stream", "conn", c.id, "err", err)
				continue
			}
			if errors.Is(err, context.Canceled) || status.Code(err) == codes.Canceled {
				return nil
			}
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		garbage = 0
		c.touch(s.now())
		s.handleStreamMessage(c, p)
	}
}

// handleStreamMessage handles one client message on the stream; a panic here is
// logged and the connection goes on (this is the edge, like chi's Recoverer).
func (s *Server) handleStreamMessage(c *conn, p *nacospb.Payload) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("panic handling a stream message", "conn", c.id, "panic", r, "stack", string(debug.Stack()))
		}
	}()
	env, err := DecodeEnvelope(p)
	if err != nil {
		s.metrics.streamGarbage.Inc()
		s.log.Warn("stream message without a type", "conn", c.id, "err", err)
		return
	}
	switch env.Type {
	case "ConnectionSetupRequest":
		s.setup(c, env)
	case "NotifySubscriberResponse", "ClientDetectionResponse", "ConnectResetResponse":
		var head struct {
			RequestID  string `json:"requestId"`
			ResultCode int    `json:"resultCode"`
		}
		var ok bool
		if head.RequestID, head.ResultCode, ok = scanResponseHead(env.Body); !ok {
			if err := decodeBody(env.Body, &head); err != nil {
				s.metrics.streamGarbage.Inc()
				s.log.Warn("undecodable response on stream", "conn", c.id, "type", env.Type, "err", err)
				return
			}
		}
		switch env.Type {
		case "NotifySubscriberResponse":
			s.hub.ack(c, head.RequestID, head.ResultCode)
		case "ClientDetectionResponse":
			c.mu.Lock()
			if head.ResultCode == codeSuccess && head.RequestID == c.probeID {
				c.probeID, c.probeSent = "", time.Time{}
			}
			c.mu.Unlock()
		}
	default:
		s.metrics.streamGarbage.Inc()
		s.log.Warn("unexpected message on stream", "conn", c.id, "type", env.Type)
	}
}

// connectionSetup is ConnectionSetupRequest's body; abilities are ignored.
type connectionSetup struct {
	ClientVersion string            `json:"clientVersion"`
	Tenant        string            `json:"tenant"`
	Labels        map[string]string `json:"labels"`
}

// setup registers the connection: it may now make requests. There is no answer.
func (s *Server) setup(c *conn, env Envelope) {
	var req connectionSetup
	if err := decodeBody(env.Body, &req); err != nil {
		s.log.Warn("undecodable ConnectionSetupRequest", "conn", c.id, "err", err)
		return
	}
	if !s.cfg.Ready() || s.draining.Load() {
		s.drop(c, "set-up while not serving")
		return
	}
	if int(s.registered.Load()) >= s.cfg.MaxConnections {
		s.log.Warn("connection limit reached; set-up refused", "conn", c.id, "limit", s.cfg.MaxConnections)
		s.drop(c, "connection limit reached")
		return
	}
	c.mu.Lock()
	if c.registered || c.dropped {
		c.mu.Unlock()
		return
	}
	c.registered = true
	c.clientVersion = req.ClientVersion
	c.clientIP = env.ClientIP
	c.labels = req.Labels
	c.mu.Unlock()
	s.registered.Add(1)
	s.log.Debug("connection registered", "conn", c.id, "client", req.ClientVersion, "remote", c.remote)
}

// drop ends a connection's registration: its stream closes, its subscriptions go and
// its instances are removed. It is idempotent.
func (s *Server) drop(c *conn, reason string) {
	c.opMu.Lock()
	defer c.opMu.Unlock()
	c.mu.Lock()
	if c.dropped {
		c.mu.Unlock()
		return
	}
	wasRegistered := c.registered
	c.dropped, c.registered = true, false
	close(c.closed)
	subs := c.subs
	c.subs = nil
	unacked := len(c.pending)
	c.pending = nil
	c.mu.Unlock()

	s.hub.removeAll(c, subs)
	s.metrics.pushFailures.Add(float64(unacked))
	if !wasRegistered {
		return
	}
	s.registered.Add(-1)
	removed := s.reg.DropConn(c.id)
	s.log.Info("connection dropped", "conn", c.id, "reason", reason, "instances_removed", removed, "subscriptions", len(subs))
}

// janitor probes idle connections, drops those that do not answer, and retries pushes
// that were not acked in time.
func (s *Server) janitor() {
	defer s.wg.Done()
	tick := min(s.cfg.DetectIdle, s.cfg.DetectTimeout, s.cfg.PushTimeout) / 4
	tick = max(min(tick, time.Second), 10*time.Millisecond)
	t := time.NewTicker(tick)
	defer t.Stop()
	probe := []byte(`{"module":"internal"}`)
	for {
		select {
		case <-s.stopc:
			return
		case <-t.C:
		}
		now := s.now()
		for _, c := range s.conns.snapshot() {
			// Before the registered check: a connection dropped for another reason
			// while its Send was blocked still needs its handler released.
			if c.sendBlockedFor(time.Now()) >= s.cfg.PushTimeout {
				c.markStuck()
				s.drop(c, "send blocked: the client stopped reading")
				continue
			}
			if !c.isRegistered() {
				continue
			}
			s.hub.expire(c, now)
			c.mu.Lock()
			probing := !c.probeSent.IsZero()
			late := probing && now.Sub(c.probeSent) >= s.cfg.DetectTimeout
			due := !probing && c.idle(now) >= s.cfg.DetectIdle
			if due {
				c.probeSent = now
			}
			c.mu.Unlock()
			switch {
			case late:
				s.drop(c, "client detection not answered")
			case due:
				if !c.enqueue(&outMsg{typ: "ClientDetectionRequest", rest: probe, probe: true}) {
					s.drop(c, "send queue full")
				}
			}
		}
	}
}

// recoverUnary turns a handler panic into an ErrorResponse: no panic leaves the edge.
func (s *Server) recoverUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("panic serving a request", "method", info.FullMethod, "panic", r, "stack", string(debug.Stack()))
			rep := errorReply("", codeFail, "internal error")
			resp, err = EncodePayload(rep.typ, rep.body), nil
		}
	}()
	return handler(ctx, req)
}

func (s *Server) recoverStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("panic serving a stream", "method", info.FullMethod, "panic", r, "stack", string(debug.Stack()))
			err = status.Error(codes.Internal, "internal error")
		}
	}()
	return handler(srv, ss)
}

// fail turns a handler's error into Nacos' answer: respType is the handler's response
// type, used for parameter check failures.
func (s *Server) fail(respType, requestID string, err error) reply {
	var bad *badBodyError
	var ne *naming.Error
	switch {
	case errors.As(err, &bad):
		return errorReply(requestID, codeBadGateway, bad.msg)
	case errors.As(err, &ne) && strings.HasPrefix(ne.Message, "Param '"):
		return mustReply(respType, newPlain(failHead(requestID, codeBadRequest, "Param check invalid:"+ne.Message)))
	case errors.As(err, &ne):
		return errorReply(requestID, ne.Status, ne.Message)
	default:
		s.log.Error("request failed", "err", err)
		return errorReply(requestID, codeFail, "internal error")
	}
}
