package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// beater beats for one ephemeral instance the way nacos-sdk-go v1 does (a full `beat`
// JSON every interval), each time to a random running node, until stopped.
type beater struct {
	stop chan struct{}
	done chan struct{}
	ok   atomic.Int64
}

func startBeater(c *Cluster, svc string, port int) *beater {
	b := &beater{stop: make(chan struct{}), done: make(chan struct{})}
	beat := fmt.Sprintf(`{"ip":"127.0.0.1","port":%d,"serviceName":"DEFAULT_GROUP@@%s","cluster":"DEFAULT","weight":1,"metadata":{}}`, port, svc)
	go func() {
		defer close(b.done)
		t := time.NewTicker(heartbeatInterval)
		defer t.Stop()
		for i := 0; ; i++ {
			nodes := c.Running()
			if len(nodes) > 0 {
				s := nodes[i%len(nodes)]
				form := url.Values{"serviceName": {"DEFAULT_GROUP@@" + svc}, "beat": {beat}}
				req, _ := http.NewRequest(http.MethodPut, s.URL+"/nacos/v1/ns/instance/beat", strings.NewReader(form.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				if resp, err := fastHTTP.Do(req); err == nil {
					if resp.StatusCode == 200 {
						b.ok.Add(1)
					}
					resp.Body.Close()
				}
			}
			select {
			case <-b.stop:
				return
			case <-t.C:
			}
		}
	}()
	return b
}

func (b *beater) Stop() { close(b.stop); <-b.done }

// healthyOn reports whether node s lists port of svc as healthy.
func healthyOn(s *Server, svc string, port int) (present, healthy bool, err error) {
	resp, err := fastHTTP.Get(s.URL + "/nacos/v1/ns/instance/list?serviceName=" + svc)
	if err != nil {
		return false, false, err
	}
	defer resp.Body.Close()
	var info struct {
		Hosts []struct {
			Port    int  `json:"port"`
			Healthy bool `json:"healthy"`
		} `json:"hosts"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&info); err != nil {
		return false, false, err
	}
	for _, h := range info.Hosts {
		if h.Port == port {
			return true, h.Healthy, nil
		}
	}
	return false, false, nil
}

// responsibleFor finds the node that holds svc's instance as its own (source "").
func (c *Cluster) responsibleFor(svc string, port int) *Server {
	c.t.Helper()
	var found *Server
	eventually(c.t, 10*time.Second, func() error {
		for _, s := range c.Running() {
			resp, err := nodeHTTP(c.t).Get(s.URL + "/roster/v1/distro/data?source=self")
			if err != nil {
				return err
			}
			var groups []struct {
				Service struct{ Name string } `json:"service"`
				Entries []struct {
					Instance struct{ Port int } `json:"instance"`
				} `json:"entries"`
			}
			err = json.NewDecoder(resp.Body).Decode(&groups)
			resp.Body.Close()
			if err != nil {
				return err
			}
			for _, g := range groups {
				for _, e := range g.Entries {
					if g.Service.Name == svc && e.Instance.Port == port {
						found = s
						return nil
					}
				}
			}
		}
		return fmt.Errorf("no node is responsible for %s:%d", svc, port)
	})
	return found
}

// watchPresent samples every running node every 200 ms and records the first moment
// the instance is missing from one of them.
func watchPresent(c *Cluster, svc string, port int) (stop func() string) {
	var mu sync.Mutex
	missing := ""
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
			}
			for _, s := range c.Running() {
				present, _, err := healthyOn(s, svc, port)
				if err == nil && !present {
					mu.Lock()
					if missing == "" {
						missing = fmt.Sprintf("%s lost the instance at %s", s.NodeID, time.Now().Format("15:04:05.000"))
					}
					mu.Unlock()
				}
			}
		}
	}()
	return func() string {
		close(quit)
		<-done
		mu.Lock()
		defer mu.Unlock()
		return missing
	}
}

// TestClusterEphemeralReplication: an ephemeral instance registered on one node is
// listed on the others within 2 s; its responsible node is killed and, with the client
// still beating, it never disappears from the survivors; once the beats stop it
// expires everywhere.
func TestClusterEphemeralReplication(t *testing.T) {
	c := StartCluster(t, 3)
	const svc = "eph-repl"
	const port = 31000
	form := url.Values{"serviceName": {svc}, "ip": {"127.0.0.1"}, "port": {fmt.Sprint(port)}}
	req, _ := http.NewRequest(http.MethodPost, c.Nodes[0].URL+"/nacos/v1/ns/instance", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	registered := time.Now()
	resp, err := fastHTTP.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("register: %v %v", resp, err)
	}
	resp.Body.Close()
	b := startBeater(c, svc, port)
	eventually(t, 2*time.Second, func() error {
		for _, s := range c.Nodes {
			if present, _, err := healthyOn(s, svc, port); err != nil || !present {
				return fmt.Errorf("%s does not list it yet (%v)", s.NodeID, err)
			}
		}
		return nil
	})
	t.Logf("listed on every node %v after the register", time.Since(registered).Round(time.Millisecond))

	owner := c.responsibleFor(svc, port)
	watch := watchPresent(c, svc, port)
	owner.kill9()
	killed := time.Now()
	// Survive well past the delete timeout with the client still beating elsewhere.
	deadline := killed.Add(ipDeleteTimeout + 3*heartbeatInterval)
	eventually(t, ipDeleteTimeout+10*time.Second, func() error {
		if time.Now().Before(deadline) {
			return fmt.Errorf("watching until %s", deadline.Format("15:04:05"))
		}
		return nil
	})
	if miss := watch(); miss != "" {
		t.Fatalf("instance disappeared while its client kept beating: %s", miss)
	}
	for _, s := range c.Running() {
		if present, healthy, err := healthyOn(s, svc, port); err != nil || !present || !healthy {
			t.Fatalf("%s after the owner's death: present=%v healthy=%v err=%v", s.NodeID, present, healthy, err)
		}
	}

	b.Stop()
	stopped := time.Now()
	eventually(t, ipDeleteTimeout+5*time.Second, func() error {
		for _, s := range c.Running() {
			present, _, err := healthyOn(s, svc, port)
			if err != nil {
				return err
			}
			if present {
				return fmt.Errorf("%s still lists it %v after the beats stopped", s.NodeID, time.Since(stopped).Round(time.Millisecond))
			}
		}
		return nil
	})
	t.Logf("gone from every survivor %v after the beats stopped (delete timeout %v)", time.Since(stopped).Round(time.Millisecond), ipDeleteTimeout)
}

// TestClusterStalledOwner: the responsible node is stopped (SIGSTOP) for longer than the
// delete timeout and resumed; no instance whose client kept beating is removed
// anywhere, neither while it is stopped nor after it resumes.
func TestClusterStalledOwner(t *testing.T) {
	c := StartCluster(t, 3)
	const svc = "eph-stall"
	const port = 32000
	b := startBeater(c, svc, port)
	defer b.Stop()
	eventually(t, 5*time.Second, func() error {
		for _, s := range c.Nodes {
			if present, _, err := healthyOn(s, svc, port); err != nil || !present {
				return fmt.Errorf("%s does not list it yet (%v)", s.NodeID, err)
			}
		}
		return nil
	})
	owner := c.responsibleFor(svc, port)
	watch := watchPresent(c, svc, port)
	owner.mu.Lock()
	proc := owner.cmd.Process
	owner.mu.Unlock()
	if err := proc.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// The stopped node is still "running" for the sampler, which would block on it:
	// sample only the others until it resumes.
	stoppedNodes := without(c.Nodes, owner)
	resumeAt := time.Now().Add(ipDeleteTimeout + 2*time.Second)
	eventually(t, ipDeleteTimeout+10*time.Second, func() error {
		for _, s := range stoppedNodes {
			if present, _, err := healthyOn(s, svc, port); err == nil && !present {
				return fmt.Errorf("FATAL %s lost the instance while the owner was stopped", s.NodeID)
			}
		}
		if time.Now().Before(resumeAt) {
			return fmt.Errorf("owner stopped until %s", resumeAt.Format("15:04:05"))
		}
		return nil
	})
	if err := proc.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	resumed := time.Now()
	eventually(t, 15*time.Second, func() error {
		if time.Since(resumed) < 3*heartbeatInterval+ipDeleteTimeout/2 {
			return fmt.Errorf("watching after the resume")
		}
		return nil
	})
	if miss := watch(); miss != "" {
		t.Fatalf("instance of a beating client removed: %s", miss)
	}
}
