package e2e

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/roster-registry/roster/client"
)

// TestDurabilityKill9: 1 000 persistent registrations acknowledged over plain HTTP by 32
// concurrent workers survive a SIGKILL of the server: after the restart every one is
// listed field for field.
func TestDurabilityKill9(t *testing.T) {
	const (
		total    = 1000
		workers  = 32
		services = 4
	)
	s := StartServer(t)
	rc := rosterClient(t, s)

	clusters := []string{"DEFAULT", "c1", "c2"}
	refs := make([]client.ServiceRef, services)
	for i := range refs {
		refs[i] = client.ServiceRef{Group: "DURABLE", Name: "durable-" + strconv.Itoa(i)}
	}
	// Instance i: service i%4, cluster i%3, its own 127.0.x.y address and port, a
	// weight and metadata of its own.
	spec := func(i int) (client.ServiceRef, client.Instance) {
		inst := client.Instance{
			IP: fmt.Sprintf("127.0.%d.%d", 1+i/250, 1+i%250), Port: 20000 + i,
			ClusterName: clusters[i%len(clusters)], Weight: float64(1+i%5) * 0.5,
			Healthy: true, Enabled: true, Ephemeral: false,
			Metadata: map[string]string{"i": strconv.Itoa(i), "zone": "z" + strconv.Itoa(i%7)},
		}
		return refs[i%services], inst
	}

	jobs := make(chan int)
	var (
		mu     sync.Mutex
		failed []string
	)
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				ref, inst := spec(i)
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				err := rc.RegisterInstance(ctx, ref, inst)
				cancel()
				if err != nil {
					mu.Lock()
					failed = append(failed, fmt.Sprintf("#%d: %v", i, err))
					mu.Unlock()
				}
			}
		}()
	}
	for i := range total {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	took := time.Since(start)
	if len(failed) > 0 {
		t.Fatalf("%d of %d registrations failed, first: %v", len(failed), total, failed[0])
	}
	t.Logf("%d persistent registrations by %d workers in %v (%.0f/s)", total, workers,
		took.Round(time.Millisecond), total/took.Seconds())

	s.Kill()
	restart := time.Now()
	s.Start()
	t.Logf("restart after SIGKILL ready in %v", time.Since(restart).Round(time.Millisecond))

	// Every acknowledged instance, field for field. Healthy is left out: persistent
	// instances are health-checked actively and these addresses have no listener.
	listed := make(map[string]client.Instance, total)
	for _, ref := range refs {
		info, err := rc.ListInstances(ctxT(t), ref, client.ListOptions{})
		if err != nil {
			t.Fatalf("list %s after the restart: %v", ref.Name, err)
		}
		for _, h := range info.Hosts {
			listed[ref.Name+"/"+h.IP+":"+strconv.Itoa(h.Port)+"/"+h.ClusterName] = h
		}
	}
	missing, wrong := 0, 0
	for i := range total {
		ref, inst := spec(i)
		h, ok := listed[ref.Name+"/"+inst.IP+":"+strconv.Itoa(inst.Port)+"/"+inst.ClusterName]
		if !ok {
			if missing++; missing <= 5 {
				t.Errorf("instance #%d (%s %s:%d) lost by kill -9", i, ref.Name, inst.IP, inst.Port)
			}
			continue
		}
		w := expect{ip: inst.IP, port: inst.Port, weight: inst.Weight, cluster: inst.ClusterName,
			metadata: inst.Metadata, enabled: true, ephemeral: false, service: "DURABLE@@" + ref.Name}
		if err := checkHTTP(h, w, false); err != nil {
			if wrong++; wrong <= 5 {
				t.Errorf("instance #%d: %v", i, err)
			}
		}
	}
	if missing+wrong > 0 {
		t.Fatalf("after kill -9: %d of %d acknowledged instances missing, %d differ", missing, total, wrong)
	}
	if len(listed) != total {
		t.Errorf("listed %d instances after the restart, want exactly %d", len(listed), total)
	}
	m, err := rc.Metrics(ctxT(t))
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	if m.Status != "UP" || m.InstanceCount != total || m.ServiceCount != services {
		t.Errorf("metrics after the restart = %+v, want UP, %d instances, %d services", m, total, services)
	}
}
