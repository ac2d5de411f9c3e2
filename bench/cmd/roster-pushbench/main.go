// Command roster-pushbench measures Nacos 2.x server push against a running roster
// server: it opens N raw gRPC client connections (each its own TCP connection, set up as
// nacos-sdk-go v2 does), subscribes every one to one service, then changes that service
// over another connection, one change at a time, and measures for each change and each
// subscriber the time from just before the change request was sent to the arrival of
// its NotifySubscriberRequest (which it acks). It also reads the server's resident
// memory from /metrics before and after the connections, for memory per connection.
//
//	roster server &                       # HTTP 8848, gRPC 9848
//	go run ./cmd/roster-pushbench -subscribers 1000 -changes 50
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"sort"
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

func main() {
	var (
		grpcAddr = flag.String("grpc", "127.0.0.1:9848", "roster gRPC address")
		httpAddr = flag.String("http", "127.0.0.1:8848", "roster HTTP address (for /metrics)")
		subs     = flag.Int("subscribers", 1000, "subscriber connections")
		changes  = flag.Int("changes", 50, "changes to push")
		gap      = flag.Duration("interval", 200*time.Millisecond, "pause between changes")
		service  = flag.String("service", "pushbench", "service name")
		hold     = flag.Duration("hold", 0, "keep the connections open this long after the run (to inspect the server)")
		parallel = flag.Int("parallel", 16, "connections set up at once")
	)
	flag.Parse()
	if err := run(*grpcAddr, *httpAddr, *subs, *changes, *gap, *service, *hold, *parallel); err != nil {
		fmt.Fprintln(os.Stderr, "roster-pushbench:", err)
		os.Exit(1)
	}
}

type conn struct {
	cc     *grpc.ClientConn
	req    nacospb.RequestClient
	stream nacospb.BiRequestStream_RequestBiStreamClient
	sendMu sync.Mutex
}

func payload(typ, body string) *nacospb.Payload {
	return &nacospb.Payload{Metadata: &nacospb.Metadata{Type: typ}, Body: &anypb.Any{Value: []byte(body)}}
}

func (c *conn) call(typ, body string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := c.req.Request(ctx, payload(typ, body))
	if err != nil {
		return "", err
	}
	b := string(p.GetBody().GetValue())
	if !strings.HasPrefix(b, `{"resultCode":200`) {
		return b, fmt.Errorf("%s answered %s %s", typ, p.GetMetadata().GetType(), b)
	}
	return b, nil
}

func (c *conn) send(typ, body string) error {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	return c.stream.Send(payload(typ, body))
}

// dial connects as nacos-sdk-go v2 does: ServerCheck, stream, ConnectionSetupRequest,
// then requests once the server accepts them.
func dial(addr string) (*conn, error) {
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	c := &conn{cc: cc, req: nacospb.NewRequestClient(cc)}
	if _, err := c.call("ServerCheckRequest", `{"module":"internal"}`); err != nil {
		return nil, err
	}
	if c.stream, err = nacospb.NewBiRequestStreamClient(cc).RequestBiStream(context.Background()); err != nil {
		return nil, err
	}
	if err := c.send("ConnectionSetupRequest", `{"clientVersion":"Nacos-Go-Client:v2.2.7","labels":{"source":"sdk","module":"naming"},"module":"internal"}`); err != nil {
		return nil, err
	}
	for i := 0; ; i++ {
		if _, err := c.call("HealthCheckRequest", `{"module":"internal"}`); err == nil {
			return c, nil
		} else if i == 100 {
			return nil, err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// notify is what the bench reads of a push.
type notify struct {
	RequestID   string `json:"requestId"`
	ServiceInfo struct {
		Hosts []struct {
			Metadata map[string]string `json:"metadata"`
		} `json:"hosts"`
	} `json:"serviceInfo"`
}

func run(grpcAddr, httpAddr string, n, changes int, gap time.Duration, service string, hold time.Duration, parallel int) error {
	rssBefore, heapBefore := serverMemory(httpAddr)

	// seen[i][k] is when subscriber i received change k.
	seen := make([][]time.Time, n)
	var mu sync.Mutex
	var pushes atomic.Int64
	conns := make([]*conn, n)
	start := time.Now()
	subscribe := func(i int) error {
		c, err := dial(grpcAddr)
		if err != nil {
			return fmt.Errorf("subscriber %d: %w", i, err)
		}
		conns[i] = c
		seen[i] = make([]time.Time, changes+1)
		go func() {
			for {
				p, err := c.stream.Recv()
				if err != nil {
					return
				}
				now := time.Now()
				var m notify
				_ = json.Unmarshal(p.GetBody().GetValue(), &m)
				switch p.GetMetadata().GetType() {
				case "NotifySubscriberRequest":
					pushes.Add(1)
					for _, h := range m.ServiceInfo.Hosts {
						if k, err := strconv.Atoi(h.Metadata["seq"]); err == nil && k >= 0 && k <= changes {
							mu.Lock()
							if seen[i][k].IsZero() {
								seen[i][k] = now
							}
							mu.Unlock()
						}
					}
					_ = c.send("NotifySubscriberResponse", `{"resultCode":200,"errorCode":0,"success":true,"requestId":"`+m.RequestID+`"}`)
				case "ClientDetectionRequest":
					_ = c.send("ClientDetectionResponse", `{"resultCode":200,"errorCode":0,"requestId":"`+m.RequestID+`"}`)
				}
			}
		}()
		if _, err := c.call("SubscribeServiceRequest", `{"serviceName":"`+service+`","subscribe":true,"clusters":"","module":"naming"}`); err != nil {
			return fmt.Errorf("subscribe %d: %w", i, err)
		}
		return nil
	}
	next := make(chan int)
	errs := make(chan error, parallel)
	var wg sync.WaitGroup
	for range max(parallel, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := subscribe(i); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
	}
	fmt.Printf("%d subscriber connections set up and subscribed in %v\n", n, time.Since(start).Round(time.Millisecond))
	time.Sleep(2 * time.Second) // let the server's memory settle
	rssAfter, heapAfter := serverMemory(httpAddr)
	if rssBefore > 0 && rssAfter > 0 {
		fmt.Printf("server RSS %.1f MiB -> %.1f MiB: %.1f KiB per connection (Go heap in use: %.1f KiB per connection)\n",
			rssBefore/(1<<20), rssAfter/(1<<20), (rssAfter-rssBefore)/float64(n)/1024, (heapAfter-heapBefore)/float64(n)/1024)
	}

	pub, err := dial(grpcAddr)
	if err != nil {
		return fmt.Errorf("publisher: %w", err)
	}
	sent := make([]time.Time, changes+1)
	for k := 1; k <= changes; k++ {
		body := fmt.Sprintf(`{"serviceName":%q,"module":"naming","type":"registerInstance","instance":{"ip":"127.0.0.99","port":9,"weight":1,"healthy":true,"enabled":true,"ephemeral":true,"metadata":{"seq":"%d"}}}`, service, k)
		sent[k] = time.Now()
		if _, err := pub.call("InstanceRequest", body); err != nil {
			return fmt.Errorf("change %d: %w", k, err)
		}
		time.Sleep(gap)
	}
	time.Sleep(2 * time.Second)

	var lat []time.Duration
	missing := 0
	mu.Lock()
	for i := range n {
		for k := 1; k <= changes; k++ {
			if seen[i][k].IsZero() {
				missing++
				continue
			}
			lat = append(lat, seen[i][k].Sub(sent[k]))
		}
	}
	mu.Unlock()
	sort.Slice(lat, func(a, b int) bool { return lat[a] < lat[b] })
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(p*float64(len(lat))))]
	}
	fmt.Printf("%d changes x %d subscribers: %d pushes received, %d missing\n", changes, n, len(lat), missing)
	fmt.Printf("push latency (change request sent -> NotifySubscriberRequest received): p50 %v  p90 %v  p99 %v  max %v\n",
		pct(0.50).Round(100*time.Microsecond), pct(0.90).Round(100*time.Microsecond), pct(0.99).Round(100*time.Microsecond), pct(1).Round(100*time.Microsecond))
	if hold > 0 {
		fmt.Printf("holding %d connections for %v\n", n+1, hold)
		time.Sleep(hold)
	}
	for _, c := range conns {
		_ = c.cc.Close()
	}
	_ = pub.cc.Close()
	return nil
}

// serverMemory reads process_resident_memory_bytes and go_memstats_heap_inuse_bytes.
func serverMemory(httpAddr string) (rss, heap float64) {
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		return 0, 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "process_resident_memory_bytes "); ok {
			rss, _ = strconv.ParseFloat(v, 64)
		}
		if v, ok := strings.CutPrefix(line, "go_memstats_heap_inuse_bytes "); ok {
			heap, _ = strconv.ParseFloat(v, 64)
		}
	}
	return rss, heap
}
