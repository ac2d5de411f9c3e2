package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// serveEmbeddedEtcd is `roster-bench etcd-embed`: an etcd server from
// go.etcd.io/etcd/server/v3/embed in a process of its own, as Roster runs in its own.
func serveEmbeddedEtcd(dir, clientAddr, peerAddr string) error {
	cfg := embed.NewConfig()
	cfg.Dir = dir
	cfg.Name = "bench"
	cu, _ := url.Parse("http://" + clientAddr)
	pu, _ := url.Parse("http://" + peerAddr)
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	cfg.InitialCluster = "bench=" + pu.String()
	cfg.LogLevel = "warn"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return err
	}
	defer e.Close()
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(time.Minute):
		return errors.New("embedded etcd not ready after a minute")
	}
	return <-e.Err()
}

// startEmbeddedEtcd runs the embedded etcd child on a fresh dir of the work dir.
func (b *bench) startEmbeddedEtcd(ctx context.Context) (string, func(), error) {
	dir, err := os.MkdirTemp(b.workDir, "etcd-embed-")
	if err != nil {
		return "", nil, err
	}
	ca, err := freePort()
	if err != nil {
		return "", nil, err
	}
	pa, err := freePort()
	if err != nil {
		return "", nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return "", nil, err
	}
	stop, err := b.startChild(ctx, "etcd-embed", self, []string{"etcd-embed", "--dir", dir, "--client", ca, "--peer", pa}, nil,
		func() bool { return etcdUp(ca) })
	return ca, stop, err
}

func etcdUp(addr string) bool {
	if !tcpUp(addr) {
		return false
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{addr}, DialTimeout: time.Second, Logger: zap.NewNop()})
	if err != nil {
		return false
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err = c.Put(ctx, "bench-up", "1")
	return err == nil
}

// etcdLoad: puts/s (and gets/s when reads) of the raw payload from clients
// goroutines over 8 client connections for d.
func etcdLoad(ctx context.Context, b *bench, addr string, d time.Duration, clients int, reads bool) (put, get float64, err error) {
	cs := make([]*clientv3.Client, 8)
	for i := range cs {
		if cs[i], err = clientv3.New(clientv3.Config{Endpoints: []string{addr}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()}); err != nil {
			return 0, 0, err
		}
		defer cs[i].Close()
	}
	pr := b.runFor(ctx, "", d, clients, 0, func(ctx context.Context, i int) error {
		k, v := rawPayload(i)
		_, err := cs[i%len(cs)].Put(ctx, string(k), string(v))
		return err
	})
	if pr.Errors > 0 {
		return 0, 0, fmt.Errorf("%d puts failed: %v", pr.Errors, pr.FirstErrors)
	}
	if !reads {
		return pr.Rate, 0, nil
	}
	gr := b.runFor(ctx, "", d, clients, 0, func(ctx context.Context, i int) error {
		k, _ := rawPayload(i % max(pr.OK, 1))
		_, err := cs[i%len(cs)].Get(ctx, string(k))
		return err
	})
	if gr.Errors > 0 {
		return pr.Rate, 0, fmt.Errorf("%d gets failed: %v", gr.Errors, gr.FirstErrors)
	}
	return pr.Rate, gr.Rate, nil
}

// runEtcdServer: Debian's etcd-server, the same puts and gets.
func runEtcdServer(ctx context.Context, b *bench, p params, _ int) (figures, error) {
	f := figures{}
	bin, err := exec.LookPath("etcd")
	if err != nil {
		return f, &notAvailable{"etcd not installed (apt-get install etcd-server)"}
	}
	dir, err := os.MkdirTemp(b.workDir, "etcd-server-")
	if err != nil {
		return f, err
	}
	ca, _ := freePort()
	pa, _ := freePort()
	stop, err := b.startChild(ctx, "etcd-server", bin, []string{"--name", "bench", "--data-dir", dir,
		"--listen-client-urls", "http://" + ca, "--advertise-client-urls", "http://" + ca,
		"--listen-peer-urls", "http://" + pa, "--initial-advertise-peer-urls", "http://" + pa,
		"--initial-cluster", "bench=http://" + pa, "--log-level", "warn"}, nil, func() bool { return etcdUp(ca) })
	if err != nil {
		return f, &notAvailable{"etcd-server does not start: " + firstLine(err.Error())}
	}
	defer stop()
	put, get, err := etcdLoad(ctx, b, ca, p.duration, p.clients, true)
	if err != nil {
		return f, err
	}
	f["put"], f["get"] = put, get
	b.logf("etcd-server: %.0f puts/s, %.0f gets/s", put, get)
	return f, nil
}

// runZookeeper: Debian's zookeeper (standalone, its default forceSync), creates of
// the raw payload and gets, from 64 goroutines over 8 sessions.
func runZookeeper(ctx context.Context, b *bench, p params, _ int) (figures, error) {
	f := figures{}
	java, err := exec.LookPath("java")
	jar := "/usr/share/java/zookeeper.jar"
	if _, serr := os.Stat(jar); err != nil || serr != nil {
		return f, &notAvailable{"zookeeper or java not installed (apt-get install zookeeper)"}
	}
	dir, err := os.MkdirTemp(b.workDir, "zookeeper-")
	if err != nil {
		return f, err
	}
	port, _ := freePort()
	_, ps, _ := strings.Cut(port, ":")
	cfg := filepath.Join(dir, "zoo.cfg")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("tickTime=2000\ndataDir=%s\nclientPort=%s\nclientPortAddress=127.0.0.1\nmaxClientCnxns=0\nadmin.enableServer=false\n",
		filepath.Join(dir, "data"), ps)), 0o644); err != nil {
		return f, err
	}
	stop, err := b.startChild(ctx, "zookeeper", java, []string{"-cp", "/etc/zookeeper/conf:" + jar,
		"-Dzookeeper.log.dir=" + dir, "-Dzookeeper.root.logger=WARN,CONSOLE",
		"org.apache.zookeeper.server.ZooKeeperServerMain", cfg}, nil, func() bool { return tcpUp(port) })
	if err != nil {
		return f, &notAvailable{"zookeeper does not start: " + firstLine(err.Error())}
	}
	defer stop()
	sessions := make([]*zk.Conn, 8)
	for i := range sessions {
		c, _, err := zk.Connect([]string{port}, 10*time.Second, zk.WithLogInfo(false), zk.WithLogger(quietLogger{}))
		if err != nil {
			return f, err
		}
		defer c.Close()
		sessions[i] = c
	}
	// Wait for the sessions to be established.
	for _, c := range sessions {
		for c.State() != zk.StateHasSession {
			if ctx.Err() != nil {
				return f, ctx.Err()
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if _, err := sessions[0].Create("/bench", nil, 0, zk.WorldACL(zk.PermAll)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
		return f, err
	}
	cr := b.runFor(ctx, "", p.duration, p.clients, 0, func(_ context.Context, i int) error {
		_, v := rawPayload(i)
		_, err := sessions[i%len(sessions)].Create("/bench/n"+strconv.Itoa(i), v, 0, zk.WorldACL(zk.PermAll))
		return err
	})
	if cr.Errors > 0 {
		return f, fmt.Errorf("%d creates failed: %v", cr.Errors, cr.FirstErrors)
	}
	gr := b.runFor(ctx, "", p.duration, p.clients, 0, func(_ context.Context, i int) error {
		_, _, err := sessions[i%len(sessions)].Get("/bench/n" + strconv.Itoa(i%max(cr.OK, 1)))
		return err
	})
	if gr.Errors > 0 {
		return f, fmt.Errorf("%d gets failed: %v", gr.Errors, gr.FirstErrors)
	}
	f["create"], f["get"] = cr.Rate, gr.Rate
	b.logf("zookeeper: %.0f creates/s, %.0f gets/s", cr.Rate, gr.Rate)
	return f, nil
}

// rnacosBin finds the r-nacos binary: $RNACOS_BIN, the bench's peer cache (see
// bench/peers.sh), or PATH.
func rnacosBin() (string, error) {
	if v := os.Getenv("RNACOS_BIN"); v != "" {
		return v, nil
	}
	home, _ := os.UserHomeDir()
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		cache = filepath.Join(home, ".cache")
	}
	p := filepath.Join(cache, "roster-bench", "peers", "bin", "rnacos")
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	return exec.LookPath("rnacos")
}

// rnacosNode is one r-nacos process on loopback.
type rnacosNode struct {
	http, grpc string
	pid        int
	stop       func()
}

func (b *bench) startRNacos(ctx context.Context, dataDir string, extraEnv ...string) (*rnacosNode, time.Duration, error) {
	bin, err := rnacosBin()
	if err != nil {
		return nil, 0, &notAvailable{"r-nacos not built (bench/peers.sh runs cargo install --locked rnacos@" + rnacosVersion + ")"}
	}
	h, _ := freePort()
	g, _ := freePort()
	c, _ := freePort()
	_, hp, _ := strings.Cut(h, ":")
	_, gp, _ := strings.Cut(g, ":")
	_, cp, _ := strings.Cut(c, ":")
	env := append([]string{"RNACOS_HTTP_PORT=" + hp, "RNACOS_GRPC_PORT=" + gp, "RNACOS_HTTP_CONSOLE_PORT=" + cp,
		"RNACOS_SDK_HOST=127.0.0.1", "RNACOS_CONSOLE_HOST=127.0.0.1", "RNACOS_DATA_DIR=" + dataDir,
		"RNACOS_RAFT_NODE_ADDR=127.0.0.1:" + gp, "RUST_LOG=warn"}, extraEnv...)
	n := &rnacosNode{http: h, grpc: g}
	t0 := time.Now()
	probe := &http.Client{Timeout: time.Second}
	n.stop, err = b.startChild(ctx, "rnacos", bin, nil, env, func() bool {
		resp, err := probe.Get("http://" + h + "/nacos/v1/ns/instance/list?serviceName=bench.up")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	if err != nil {
		return nil, 0, err
	}
	n.pid = b.lastChildPID
	return n, time.Since(t0), nil
}

const rnacosVersion = "0.8.8"

// runRNacos drives r-nacos, the closest peer, with the same generator through the
// same Nacos v1 HTTP and 2.x gRPC APIs: persistent registrations, list queries,
// ephemeral instances kept alive at 5 s beats, gRPC registrations and push, memory
// with 100k + 100k instances, and start to ready.
func runRNacos(ctx context.Context, b *bench, p params, runIdx int) (figures, error) {
	f := figures{}
	dir, err := os.MkdirTemp(b.workDir, "rnacos-")
	if err != nil {
		return f, err
	}
	n, d, err := b.startRNacos(ctx, dir, "RNACOS_NAMING_HEALTH_TIMEOUT_SECOND=3600", "RNACOS_NAMING_INSTANCE_TIMEOUT_SECOND=7200")
	if err != nil {
		return f, err
	}
	f["ready_empty"] = ms(d)
	cl := newClient(n.http, p.clients)
	defer cl.close()
	r := b.runFor(ctx, "rnacos: register", p.duration, p.clients, runIdx*10_000_000, registerOp(cl))
	if r.Errors > 0 {
		n.stop()
		return f, fmt.Errorf("r-nacos: %d registrations failed: %v", r.Errors, r.FirstErrors)
	}
	f["register"] = r.Rate
	b.logf("rnacos: %.0f persistent registrations/s", r.Rate)
	if err := fillList(ctx, b, cl); err != nil {
		n.stop()
		return f, fmt.Errorf("r-nacos: %w", err)
	}
	for _, k := range []int{10, 1000} {
		path := "/nacos/v1/ns/instance/list?serviceName=bench.list." + strconv.Itoa(k)
		lr := b.runFor(ctx, "", p.duration, p.clients, 0, getOp(cl, path))
		if lr.Errors > 0 {
			n.stop()
			return f, fmt.Errorf("r-nacos list: %d errors: %v", lr.Errors, lr.FirstErrors)
		}
		f["list"+strconv.Itoa(k)] = lr.Rate
	}
	gr, err := grpcRegisterRate(ctx, b, n.grpc, p.clients, p.duration, runIdx*10_000_000)
	if err == nil && gr.Errors == 0 {
		f["grpc_register"] = gr.Rate
	} else {
		b.logf("rnacos: gRPC registrations: %v %v", err, gr.FirstErrors)
	}
	lat, missing, err := pushLatency(ctx, b, n.grpc, 1000, 20, 200*time.Millisecond, func() func() { return func() {} })
	if err == nil {
		f["push_p50"], f["push_p99"], f["push_missing"] = lat.P50MS, lat.P99MS, float64(missing)
	} else {
		b.logf("rnacos: push: %v", err)
	}
	n.stop()

	// Memory: a fresh r-nacos with 100k persistent + 100k ephemeral, as runMemory.
	dir2, _ := os.MkdirTemp(b.workDir, "rnacos-mem-")
	m, _, err := b.startRNacos(ctx, dir2, "RNACOS_NAMING_HEALTH_TIMEOUT_SECOND=3600", "RNACOS_NAMING_INSTANCE_TIMEOUT_SECOND=7200")
	if err != nil {
		return f, err
	}
	mc := newClient(m.http, p.clients)
	defer mc.close()
	total := 100000
	fill := b.runN(ctx, "rnacos: fill", 2*total, p.clients, func(ctx context.Context, i int) error {
		sp := persistentSpec(i%total, 100)
		if i >= total {
			sp.Service = "bench.ephemeral." + strconv.Itoa((i-total)/100)
			sp.Ephemeral = true
		}
		return mc.register(ctx, sp)
	})
	if fill.Errors == 0 {
		time.Sleep(2 * time.Second)
		if rss, err := pidRSS(m.pid); err == nil {
			f["rss_mib"] = float64(rss) / (1 << 20)
		}
	}
	m.stop()

	// Ephemeral: one step of 100k instances at 5 s beats, the same workers as Roster's.
	f["eph_held"] = 0
	eph, err := b.rnacosEphemeral(ctx, 100000)
	if err == nil {
		f["eph_beat_p99"] = eph.BeatLatency.P99MS
		if eph.BeatErrors == 0 && eph.Missing == 0 && eph.Unhealthy == 0 {
			f["eph_held"] = 100000
		}
	} else {
		b.logf("rnacos: ephemeral: %v", err)
	}
	return f, nil
}

func pidRSS(pid int) (int64, error) {
	if pid <= 0 {
		return 0, errors.New("no pid")
	}
	s := &server{name: "peer", cmd: &exec.Cmd{Process: &os.Process{Pid: pid}}, exited: make(chan struct{})}
	return s.rss()
}

// rnacosEphemeral runs the ephemeral worker loop against r-nacos: register n
// instances, beat every 5 s, count failures, and check what r-nacos lists.
func (b *bench) rnacosEphemeral(ctx context.Context, n int) (*ephemeralResult, error) {
	dir, _ := os.MkdirTemp(b.workDir, "rnacos-eph-")
	node, _, err := b.startRNacos(ctx, dir)
	if err != nil {
		return nil, err
	}
	defer node.stop()
	c := defaultEphemeral()
	c.instances, c.duration = n, 20*time.Second
	rep, err := runEphemeralAt(ctx, b, c, node.http, nil)
	r, _ := rep.(*ephemeralResult)
	return r, err
}

// quietLogger drops go-zookeeper's connection chatter while the server starts.
type quietLogger struct{}

func (quietLogger) Printf(string, ...any) {}
