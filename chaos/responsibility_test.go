package chaos

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"
)

// responsibilityWatch samples, every period, each member's view of who is responsible
// for the service's instances (GET /roster/v1/operator/distro/responsibility) and counts
// the samples in which a live client had no member that holds it as its own (R7: at
// every 1 s sample every client id has ≥ 1 member that considers itself responsible).
type responsibilityWatch struct {
	stop, done chan struct{}

	mu         sync.Mutex
	samples    int
	bad        []orphanSample // samples with at least one live client no member held
	answered   int            // member answers read
	incomplete int            // samples in which a running member did not answer
}

func watchResponsibility(nodes func() []*Node, b *Beaters, period time.Duration) *responsibilityWatch {
	w := &responsibilityWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(period)
		defer tick.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
			// Clients answered more than 3 s ago have reached every member.
			sampledAt := time.Now()
			live := b.Live(3 * time.Second)
			held := map[string]bool{} // client ip:port with a member holding it
			views, up := 0, 0
			for _, n := range nodes() {
				if !n.Up() {
					continue
				}
				up++
				r, err := responsibilityOf(n, b.Service)
				if err != nil {
					continue // a member being removed or killed answers no more
				}
				views++
				for _, i := range r.Instances {
					if i.Holder == r.Self {
						held[i.Client] = true
					}
				}
			}
			// A live client is still beating now; one stopped since it was listed
			// is not live and not counted.
			stillLive := b.Live(3 * time.Second)
			var orphans []string
			for p := range live {
				if c := fmt.Sprintf("127.0.0.1:%d", p); stillLive[p] && !held[c] {
					orphans = append(orphans, c)
				}
			}
			w.mu.Lock()
			w.answered += views
			if views < up {
				// A running member that did not answer may be the one holding a client;
				// such a sample proves nothing either way.
				w.incomplete++
			} else if views > 0 {
				w.samples++
				if len(orphans) > 0 {
					w.bad = append(w.bad, orphanSample{At: sampledAt, Clients: len(orphans),
						Example: fmt.Sprintf("%d clients held by no member of %d answering, e.g. %s",
							len(orphans), views, strings.Join(orphans[:min(5, len(orphans))], ","))})
				}
			}
			w.mu.Unlock()
		}
	}()
	return w
}

// orphanSample is a sample in which some live clients had no member holding them.
type orphanSample struct {
	At      time.Time
	Clients int
	Example string
}

func (w *responsibilityWatch) Stop() {
	close(w.stop)
	<-w.done
}

type responsibilityView struct {
	Self      string   `json:"self"`
	Members   []string `json:"members"`
	Instances []struct {
		Instance string `json:"instance"`
		Client   string `json:"client"`
		Routed   string `json:"routed"`
		Holder   string `json:"holder"`
	} `json:"instances"`
}

func responsibilityOf(n *Node, svc string) (responsibilityView, error) {
	var v responsibilityView
	resp, err := hc.Get(n.URL + "/roster/v1/operator/distro/responsibility?serviceName=" + url.QueryEscape(svc))
	if err != nil {
		return v, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return v, fmt.Errorf("%s: responsibility answered %s", n.ID, resp.Status)
	}
	err = json.NewDecoder(resp.Body).Decode(&v)
	return v, err
}
