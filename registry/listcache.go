package registry

import (
	"context"
	"strconv"
	"sync"

	"github.com/roster-registry/roster/naming"
)

// maxCachedLists bounds the encoded answers kept per view: the clusters parameter is
// client input, so its distinct values are not bounded by the data.
const maxCachedLists = 8

// listCache keeps a view's encoded instance-list answers by query. A view never
// changes once built (a change replaces it), so an answer encoded from it stays right
// for as long as the view is current; encoding 1000 instances on every query cost
// most of a list call.
type listCache struct {
	mu      sync.Mutex
	answers map[string][]byte
}

func (c *listCache) get(key string) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.answers[key]
	return b, ok
}

func (c *listCache) put(key string, b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.answers == nil {
		c.answers = map[string][]byte{}
	}
	if len(c.answers) < maxCachedLists {
		c.answers[key] = b
	}
}

// ListJSON is List encoded as the Nacos JSON answer (ServiceInfoJSON through
// naming.Marshal). The bytes are shared: callers must not modify them.
func (r *Registry) ListJSON(ctx context.Context, q Query) ([]byte, error) {
	v, err := r.loadQuery(q)
	if err != nil {
		return nil, err
	}
	key := strconv.FormatBool(q.HealthyOnly) + "|" + q.Clusters
	if b, ok := v.lists.get(key); ok {
		return b, nil
	}
	b, err := naming.Marshal(r.ServiceInfoJSON(r.selectHosts(v, q)))
	if err != nil {
		return nil, err
	}
	v.lists.put(key, b)
	return b, nil
}
