package registry

import (
	"sync"
	"sync/atomic"

	"github.com/roster-registry/roster/naming"
)

// watchers is a copy-on-write list of change callbacks, read without a lock on every
// change.
type watchers struct {
	mu   sync.Mutex
	list atomic.Pointer[[]func(naming.ServiceKey)]
}

func (w *watchers) add(fn func(naming.ServiceKey)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var next []func(naming.ServiceKey)
	if cur := w.list.Load(); cur != nil {
		next = append(next, *cur...)
	}
	next = append(next, fn)
	w.list.Store(&next)
}

func (w *watchers) notify(svc naming.ServiceKey) {
	if fns := w.list.Load(); fns != nil {
		for _, fn := range *fns {
			fn(svc)
		}
	}
}

// Watch adds fn, called with a service after each change to it in either store, once
// its cached view has been dropped and its lastRefTime bumped: a List made after fn is
// called sees the change. This is where Nacos 2.x pushes start (the 1.x UDP push is fed
// from the same place). fn runs on the goroutine that made the change (a request, the
// Raft apply loop, the expiry ticker), so it must not block and must not write to the
// registry; it may read it.
func (r *Registry) Watch(fn func(svc naming.ServiceKey)) { r.watchers.add(fn) }
