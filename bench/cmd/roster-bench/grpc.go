package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/anypb"

	nacospb "github.com/roster-registry/roster/grpcapi/proto"
)

// gconn is one Nacos 2.x client connection, set up as nacos-sdk-go v2 does:
// ServerCheck, the bi-directional stream, ConnectionSetupRequest, then requests.
type gconn struct {
	cc     *grpc.ClientConn
	req    nacospb.RequestClient
	stream nacospb.BiRequestStream_RequestBiStreamClient
	sendMu sync.Mutex
	// onPush, when set, sees every NotifySubscriberRequest with its arrival time.
	onPush func(body []byte, at time.Time)
}

func gpayload(typ, body string) *nacospb.Payload {
	return &nacospb.Payload{Metadata: &nacospb.Metadata{Type: typ}, Body: &anypb.Any{Value: []byte(body)}}
}

func (c *gconn) call(ctx context.Context, typ, body string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	p, err := c.req.Request(ctx, gpayload(typ, body))
	if err != nil {
		return "", err
	}
	b := string(p.GetBody().GetValue())
	if !strings.Contains(b, `"resultCode":200`) {
		return b, fmt.Errorf("%s answered %s %s", typ, p.GetMetadata().GetType(), b)
	}
	return b, nil
}

func (c *gconn) send(typ, body string) error {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	return c.stream.Send(gpayload(typ, body))
}

func (c *gconn) close() { _ = c.cc.Close() }

func gdial(ctx context.Context, addr string, onPush func([]byte, time.Time)) (*gconn, error) {
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	c := &gconn{cc: cc, req: nacospb.NewRequestClient(cc), onPush: onPush}
	if _, err := c.call(ctx, "ServerCheckRequest", `{"module":"internal"}`); err != nil {
		cc.Close()
		return nil, err
	}
	if c.stream, err = nacospb.NewBiRequestStreamClient(cc).RequestBiStream(context.WithoutCancel(ctx)); err != nil {
		cc.Close()
		return nil, err
	}
	if err := c.send("ConnectionSetupRequest", `{"clientVersion":"Nacos-Go-Client:v2.2.7","labels":{"source":"sdk","module":"naming"},"module":"internal"}`); err != nil {
		cc.Close()
		return nil, err
	}
	go c.recv()
	for i := 0; ; i++ {
		if _, err := c.call(ctx, "HealthCheckRequest", `{"module":"internal"}`); err == nil {
			return c, nil
		} else if i == 200 {
			cc.Close()
			return nil, err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// recv answers the server's requests on the stream, as a client does.
func (c *gconn) recv() {
	for {
		p, err := c.stream.Recv()
		if err != nil {
			return
		}
		now := time.Now()
		var m struct {
			RequestID string `json:"requestId"`
		}
		body := p.GetBody().GetValue()
		_ = json.Unmarshal(body, &m)
		switch p.GetMetadata().GetType() {
		case "NotifySubscriberRequest":
			if c.onPush != nil {
				c.onPush(body, now)
			}
			_ = c.send("NotifySubscriberResponse", `{"resultCode":200,"errorCode":0,"success":true,"requestId":"`+m.RequestID+`"}`)
		case "ClientDetectionRequest":
			_ = c.send("ClientDetectionResponse", `{"resultCode":200,"errorCode":0,"requestId":"`+m.RequestID+`"}`)
		case "ConnectResetRequest":
			_ = c.send("ConnectResetResponse", `{"resultCode":200,"errorCode":0,"requestId":"`+m.RequestID+`"}`)
		}
	}
}

func instanceRequest(service, ip string, port int, seq int) string {
	return fmt.Sprintf(`{"serviceName":%q,"groupName":"DEFAULT_GROUP","namespace":"public","module":"naming","type":"registerInstance",`+
		`"instance":{"ip":%q,"port":%d,"weight":1,"healthy":true,"enabled":true,"ephemeral":true,"clusterName":"DEFAULT",`+
		`"metadata":{"seq":"%d","app":"bench"}}}`, service, ip, port, seq)
}

// dialMany sets up n connections, parallel at a time.
func dialMany(ctx context.Context, addr string, n, parallel int, onPush func(i int) func([]byte, time.Time)) ([]*gconn, error) {
	conns := make([]*gconn, n)
	var next atomic.Int64
	var firstErr atomic.Pointer[error]
	var wg sync.WaitGroup
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || firstErr.Load() != nil || ctx.Err() != nil {
					return
				}
				var op func([]byte, time.Time)
				if onPush != nil {
					op = onPush(i)
				}
				c, err := gdial(ctx, addr, op)
				if err != nil {
					err = fmt.Errorf("connection %d: %w", i, err)
					firstErr.CompareAndSwap(nil, &err)
					return
				}
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	if e := firstErr.Load(); e != nil {
		closeAll(conns)
		return nil, *e
	}
	return conns, ctx.Err()
}

func closeAll(conns []*gconn) {
	for _, c := range conns {
		if c != nil {
			c.close()
		}
	}
}

// grpcRegisterRate: registrations/s of ephemeral instances over conns connections,
// one request in flight per connection.
func grpcRegisterRate(ctx context.Context, b *bench, addr string, conns int, d time.Duration, base int) (loadResult, error) {
	cs, err := dialMany(ctx, addr, conns, 16, nil)
	if err != nil {
		return loadResult{}, err
	}
	defer closeAll(cs)
	var seq [1024]atomic.Int64
	r := b.runFor(ctx, "", d, conns, base, func(ctx context.Context, i int) error {
		w := i % conns
		k := int(seq[w%len(seq)].Add(1))
		_, err := cs[w].call(ctx, "InstanceRequest", instanceRequest(
			fmt.Sprintf("bench.grpc.%d.%d", w, k%50), ipFor(w), 9000+k%50, k))
		return err
	})
	return r, nil
}

// pushLatency: subs connections subscribe to one service; another connection changes
// it changes times; each push's latency is from just before the change request was
// sent to the arrival of the NotifySubscriberRequest that carries it. startChanges runs
// once every subscriber is set up, just before the first change; what it returns runs
// after the last push has had time to arrive (the server's profile covers the fan-out).
func pushLatency(ctx context.Context, b *bench, addr string, subs, changes int, gap time.Duration, startChanges func() func()) (latencySummary, int, error) {
	service := fmt.Sprintf("bench.push.%d", time.Now().UnixNano())
	var mu sync.Mutex
	seen := make([][]time.Time, subs)
	for i := range seen {
		seen[i] = make([]time.Time, changes+1)
	}
	onPush := func(i int) func([]byte, time.Time) {
		return func(body []byte, at time.Time) {
			var m struct {
				ServiceInfo struct {
					Hosts []struct {
						Metadata map[string]string `json:"metadata"`
					} `json:"hosts"`
				} `json:"serviceInfo"`
			}
			_ = json.Unmarshal(body, &m)
			mu.Lock()
			defer mu.Unlock()
			for _, h := range m.ServiceInfo.Hosts {
				if k, err := strconv.Atoi(h.Metadata["seq"]); err == nil && k >= 1 && k <= changes && seen[i][k].IsZero() {
					seen[i][k] = at
				}
			}
		}
	}
	cs, err := dialMany(ctx, addr, subs, 16, onPush)
	if err != nil {
		return latencySummary{}, 0, err
	}
	defer closeAll(cs)
	for i, c := range cs {
		if _, err := c.call(ctx, "SubscribeServiceRequest", fmt.Sprintf(
			`{"serviceName":%q,"groupName":"DEFAULT_GROUP","namespace":"public","subscribe":true,"clusters":"","module":"naming"}`, service)); err != nil {
			return latencySummary{}, 0, fmt.Errorf("subscribe %d: %w", i, err)
		}
	}
	pub, err := gdial(ctx, addr, nil)
	if err != nil {
		return latencySummary{}, 0, fmt.Errorf("publisher: %w", err)
	}
	defer pub.close()
	time.Sleep(500 * time.Millisecond)
	endChanges := startChanges()
	sent := make([]time.Time, changes+1)
	for k := 1; k <= changes; k++ {
		sent[k] = time.Now()
		if _, err := pub.call(ctx, "InstanceRequest", instanceRequest(service, "127.0.0.99", 9, k)); err != nil {
			return latencySummary{}, 0, fmt.Errorf("change %d: %w", k, err)
		}
		time.Sleep(gap)
	}
	time.Sleep(2 * time.Second)
	endChanges()
	var lat latencies
	missing := 0
	mu.Lock()
	for i := range subs {
		for k := 1; k <= changes; k++ {
			if seen[i][k].IsZero() {
				missing++
				continue
			}
			lat.add(seen[i][k].Sub(sent[k]))
		}
	}
	mu.Unlock()
	return lat.summarize(), missing, nil
}

// connMemory opens n idle connections and reads the server's RSS before and after.
func connMemory(ctx context.Context, addr string, n int, rss func() (int64, error)) (held int, kibPerConn float64, err error) {
	before, err := rss()
	if err != nil {
		return 0, 0, err
	}
	cs, err := dialMany(ctx, addr, n, 32, nil)
	if err != nil {
		return 0, 0, err
	}
	defer closeAll(cs)
	time.Sleep(2 * time.Second)
	after, err := rss()
	if err != nil {
		return 0, 0, err
	}
	// Every connection must still answer.
	for i, c := range cs {
		if _, err := c.call(ctx, "HealthCheckRequest", `{"module":"internal"}`); err != nil {
			return i, 0, fmt.Errorf("connection %d no longer answers: %w", i, err)
		}
	}
	return n, float64(after-before) / float64(n) / 1024, nil
}

// runGRPC: gRPC registrations/s over 64 connections, push latency with 1000
// subscribers, and memory per connection with 10 000 connections held.
func runGRPC(ctx context.Context, b *bench, p params, runIdx int) (figures, error) {
	f := figures{}
	subs, changes, conns := 1000, 20, 10000
	if p.quick {
		subs, changes, conns = 50, 3, 200
	}
	s, err := b.newServer("grpc")
	if err != nil {
		return f, err
	}
	if _, err := s.start(ctx, b.opts.readyTimeout); err != nil {
		return f, withLog(s, err)
	}
	wait := b.profile(s, "grpc-register", p.duration)
	r, err := grpcRegisterRate(ctx, b, s.grpcAddr, p.clients, p.duration, runIdx*10_000_000)
	wait()
	if err != nil {
		return f, withLog(s, err)
	}
	if r.Errors > 0 {
		return f, withLog(s, fmt.Errorf("gRPC registrations: %d errors: %v", r.Errors, r.FirstErrors))
	}
	f["register"] = r.Rate
	b.logf("grpc: %.0f registrations/s over %d connections", r.Rate, p.clients)

	var pushCPU cpuUse
	lat, missing, err := pushLatency(ctx, b, s.grpcAddr, subs, changes, 200*time.Millisecond, func() func() {
		// Longer than the changes themselves: on a loaded machine the fan-out of the
		// last ones lasts seconds after they were made.
		wait := b.profile(s, "grpc-push", time.Duration(changes)*200*time.Millisecond+8*time.Second)
		meter := startCPU(s)
		return func() {
			pushCPU = meter.stop()
			wait()
		}
	})
	if err != nil {
		return f, withLog(s, err)
	}
	f["push_p50"], f["push_p99"], f["push_missing"] = lat.P50MS, lat.P99MS, float64(missing)
	b.logf("grpc: push to %d subscribers x %d changes: %s, %d missing", subs, changes, lat, missing)
	// CPU time is steadier than latency on a shared machine: what one push to one
	// subscriber costs the server (its fan-out, the acks) and the receiving clients.
	n := float64(subs * changes)
	f["push_server_cpu_us"], f["push_bench_cpu_us"] = pushCPU.ServerSeconds/n*1e6, pushCPU.BenchSeconds/n*1e6
	b.logf("grpc: push CPU per subscriber and change: server %.1f µs, receivers %.1f µs (%s)", f["push_server_cpu_us"], f["push_bench_cpu_us"], pushCPU)
	if missing > 0 {
		return f, withLog(s, fmt.Errorf("%d pushes never arrived", missing))
	}
	held, kib, err := connMemory(ctx, s.grpcAddr, conns, s.rss)
	if err != nil {
		return f, withLog(s, err)
	}
	f["conns"], f["conn_kib"] = float64(held), kib
	b.logf("grpc: %d connections held, %.1f KiB each", held, kib)
	_, err = b.stopServer(s)
	return f, err
}
