package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/anypb"

	nacospb "github.com/roster-registry/roster/grpcapi/proto"
)

// A Subscriber is a Nacos 2.x naming client reduced to what the R scenarios check: it
// connects to one node over raw gRPC (ServerCheckRequest, the stream and
// ConnectionSetupRequest, as the SDKs do), subscribes to one service, acks every push
// and records each host list the node sent it: the subscription's answer and every
// NotifySubscriberRequest.
type Subscriber struct {
	Node *Node
	Svc  string

	cc     *grpc.ClientConn
	stream nacospb.BiRequestStream_RequestBiStreamClient
	sendMu sync.Mutex

	mu       sync.Mutex
	accepted time.Time // when the node accepted the subscription
	lists    []HostList
	closed   bool
	ended    error // why the stream ended; nil while it runs
}

// HostList is one host list the node sent: when it arrived, whether it was a push (or
// the subscription's answer), and the ports it listed.
type HostList struct {
	At    time.Time
	Push  bool
	Ports []int
}

func (n *Node) grpcAddr() string { return "127.0.0.1:" + strconv.Itoa(n.Port+1000) }

// ErrNotServing: the node answered that it is starting (Nacos' errorCode 300) or dropped
// the connection's set-up.
var ErrNotServing = fmt.Errorf("node not serving yet")

// Subscribe connects and subscribes once. A node that is not serving yet refuses with
// ErrNotServing (or a connection error), and the caller tries again.
func Subscribe(n *Node, svc string, timeout time.Duration) (*Subscriber, error) {
	// R7's full size pushes 10 000 hosts (about 3.5 MB), near gRPC's default 4 MiB limit.
	cc, err := grpc.NewClient(n.grpcAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		return nil, err
	}
	s := &Subscriber{Node: n, Svc: svc, cc: cc}
	if err := s.connect(timeout); err != nil {
		_ = cc.Close()
		return nil, err
	}
	return s, nil
}

func (s *Subscriber) call(typ string, body any, timeout time.Duration) (string, []byte, error) {
	raw, err := json.Marshal(body)
	if err != nil {
		return "", nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	p, err := nacospb.NewRequestClient(s.cc).Request(ctx, payload(typ, raw))
	if err != nil {
		return "", nil, err
	}
	return p.GetMetadata().GetType(), p.GetBody().GetValue(), nil
}

func payload(typ string, body []byte) *nacospb.Payload {
	return &nacospb.Payload{Metadata: &nacospb.Metadata{Type: typ}, Body: &anypb.Any{Value: body}}
}

// answer is the part of every Nacos response the subscriber reads.
type answer struct {
	ResultCode  int  `json:"resultCode"`
	ErrorCode   int  `json:"errorCode"`
	Success     bool `json:"success"`
	ServiceInfo *struct {
		Hosts []struct {
			Port int `json:"port"`
		} `json:"hosts"`
	} `json:"serviceInfo"`
}

func (a answer) ports() []int {
	var out []int
	if a.ServiceInfo != nil {
		for _, h := range a.ServiceInfo.Hosts {
			out = append(out, h.Port)
		}
	}
	sortInts(out)
	return out
}

func (s *Subscriber) connect(timeout time.Duration) error {
	typ, body, err := s.call("ServerCheckRequest", map[string]any{"module": "internal"}, timeout)
	if err != nil {
		return err
	}
	if typ != "ServerCheckResponse" {
		return fmt.Errorf("%w: ServerCheckRequest answered %s %s", ErrNotServing, typ, body)
	}
	st, err := nacospb.NewBiRequestStreamClient(s.cc).RequestBiStream(context.Background())
	if err != nil {
		return err
	}
	s.stream = st
	s.send("ConnectionSetupRequest", `{"clientVersion":"Nacos-Go-Client:v2.3.2","tenant":"","labels":{"source":"sdk","module":"naming"},"clientAbilities":{},"module":"internal"}`)
	go s.read()
	// The set-up has no answer: requests are accepted once it is registered.
	deadline := time.Now().Add(timeout)
	for {
		typ, body, err = s.call("SubscribeServiceRequest", map[string]any{
			"namespace": "public", "groupName": "DEFAULT_GROUP", "serviceName": s.Svc,
			"clusters": "", "subscribe": true, "module": "naming",
		}, timeout)
		if err != nil {
			return err
		}
		var a answer
		_ = json.Unmarshal(body, &a)
		if typ == "SubscribeServiceResponse" && a.Success {
			now := time.Now()
			s.mu.Lock()
			s.accepted = now
			s.lists = append(s.lists, HostList{At: now, Ports: a.ports()})
			s.mu.Unlock()
			return nil
		}
		if a.ErrorCode == 300 || time.Now().After(deadline) {
			return fmt.Errorf("%w: SubscribeServiceRequest answered %s %s", ErrNotServing, typ, body)
		}
		time.Sleep(20 * time.Millisecond) // set-up not registered yet
	}
}

func (s *Subscriber) send(typ, body string) {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	_ = s.stream.Send(payload(typ, []byte(body)))
}

func (s *Subscriber) read() {
	for {
		p, err := s.stream.Recv()
		if err != nil {
			s.mu.Lock()
			s.ended = err
			s.mu.Unlock()
			return
		}
		at := time.Now()
		var head struct {
			RequestID string `json:"requestId"`
			answer
		}
		_ = json.Unmarshal(p.GetBody().GetValue(), &head)
		switch p.GetMetadata().GetType() {
		case "NotifySubscriberRequest":
			s.mu.Lock()
			s.lists = append(s.lists, HostList{At: at, Push: true, Ports: head.ports()})
			s.mu.Unlock()
			s.send("NotifySubscriberResponse", `{"resultCode":200,"errorCode":0,"success":true,"requestId":"`+head.RequestID+`"}`)
		case "ClientDetectionRequest":
			s.send("ClientDetectionResponse", `{"resultCode":200,"errorCode":0,"success":false,"requestId":"`+head.RequestID+`"}`)
		}
	}
}

// Accepted is when the node accepted the subscription.
func (s *Subscriber) Accepted() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted
}

// Lists returns every host list received so far, in order.
func (s *Subscriber) Lists() []HostList {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]HostList(nil), s.lists...)
}

// Ended reports why the node's stream ended (nil while it runs): a subscriber that
// stopped hearing from a running node would hide what it pushes.
func (s *Subscriber) Ended() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ended
}

// Close drops the connection.
func (s *Subscriber) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		_ = s.cc.Close()
	}
}

// short reports the ports of want a host list lacks.
func (h HostList) short(want map[int]bool) []int {
	have := map[int]bool{}
	for _, p := range h.Ports {
		have[p] = true
	}
	var out []int
	for p := range want {
		if !have[p] {
			out = append(out, p)
		}
	}
	sortInts(out)
	return out
}
