package distro

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/roster-registry/roster/naming"
	"github.com/roster-registry/roster/nodeauth"
)

// Internal routes of Distro replication, under /roster/v1/distro.
const (
	PathSync   = "/roster/v1/distro/sync"
	PathVerify = "/roster/v1/distro/verify"
	PathData   = "/roster/v1/distro/data"
	PathPing   = "/roster/v1/distro/ping"
)

// forwardedHeader marks member-to-member requests (the cluster package uses the same).
const forwardedHeader = "X-Roster-Forwarded"

// maxReplicationBody bounds what one member accepts from another in one request.
const maxReplicationBody = 256 << 20

// Peer is a member of the cluster as replication sees it.
type Peer struct {
	ID       string
	HTTPAddr string
}

// ReplicatorConfig holds the replication settings.
type ReplicatorConfig struct {
	// Self is this node's id; Peers lists every member (self included) from the Raft
	// configuration, with HTTP addresses.
	Self  string
	Peers func() []Peer
	// PushDelay batches local changes before they are pushed (at most 1 s).
	PushDelay time.Duration
	// VerifyInterval is how often members compare checksums (5 s).
	VerifyInterval time.Duration
	// PingInterval and DeadAfter decide member liveness.
	PingInterval time.Duration
	DeadAfter    time.Duration
	// OwnedGrace is how long the connection-owned instances of a dead member are kept,
	// so that their clients can reconnect elsewhere and redo their registrations.
	OwnedGrace time.Duration
	Logger     *slog.Logger
	// Credential is proved on every request to another member and required on the
	// replication routes. Nil gives the node a random key of its own (it runs alone).
	Credential *nodeauth.Credential
}

func (c ReplicatorConfig) withDefaults() ReplicatorConfig {
	if c.PushDelay <= 0 || c.PushDelay > time.Second {
		c.PushDelay = 200 * time.Millisecond
	}
	if c.VerifyInterval <= 0 {
		c.VerifyInterval = 5 * time.Second
	}
	if c.PingInterval <= 0 {
		c.PingInterval = time.Second
	}
	if c.DeadAfter <= 0 {
		c.DeadAfter = 3 * c.PingInterval
	}
	if c.OwnedGrace <= 0 {
		c.OwnedGrace = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Credential == nil {
		c.Credential = nodeauth.Ephemeral()
	}
	return c
}

// Replicator keeps the members' distro stores in step: it pushes this node's changes,
// answers and asks for checksums, pulls a full copy at start, watches member liveness,
// and takes over the clients of a dead member.
type Replicator struct {
	cfg    ReplicatorConfig
	store  *Store
	log    *slog.Logger
	client *http.Client

	mu       sync.Mutex
	dirty    map[naming.ServiceKey]struct{}
	lastSeen map[string]time.Time // member id → last successful contact
	dead     map[string]time.Time // member id → when it was found dead
	pulling  map[string]bool      // sources being pulled after a checksum mismatch
	signal   chan struct{}
	queues   map[string]*pushQueue // member id → its pushes (pushLoop, sendLoop)
	// incarnation tells this process's pushes and answers from an earlier one's.
	incarnation uint64
	// applyMu orders applyFrom's version check with its apply; applied is guarded by it.
	applyMu sync.Mutex
	applied map[string]*appliedVersions // member id → what was applied of it
	// live caches healthy() for liveCacheTTL: every 1.x beat and write asks who is
	// responsible, and the member list comes from the Raft configuration (a round trip
	// through Raft's loop). A member seen again after being dead clears it at once.
	live   []Peer
	liveAt time.Time

	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

// NewReplicator wires replication to store; Start runs it.
func NewReplicator(store *Store, cfg ReplicatorConfig) *Replicator {
	cfg = cfg.withDefaults()
	r := &Replicator{
		cfg:      cfg,
		store:    store,
		log:      cfg.Logger.With("component", "distro-sync"),
		client:   cfg.Credential.Client(5 * time.Second),
		dirty:    map[naming.ServiceKey]struct{}{},
		lastSeen: map[string]time.Time{},
		dead:     map[string]time.Time{},
		pulling:  map[string]bool{},
		queues:   map[string]*pushQueue{},
		applied:  map[string]*appliedVersions{},
		// Distinct per process start; only compared for equality.
		incarnation: uint64(time.Now().UnixNano()),
		signal:      make(chan struct{}, 1),
		stop:        make(chan struct{}),
	}
	store.OnLocalChange(r.changed)
	return r
}

func (r *Replicator) changed(svc naming.ServiceKey) {
	r.mu.Lock()
	r.dirty[svc] = struct{}{}
	r.mu.Unlock()
	select {
	case r.signal <- struct{}{}:
	default:
	}
}

// Start runs the push, liveness and verify loops until Stop.
func (r *Replicator) Start() {
	now := time.Now()
	r.mu.Lock()
	for _, p := range r.cfg.Peers() {
		r.lastSeen[p.ID] = now // everyone is presumed alive until shown otherwise
	}
	r.live = nil
	r.mu.Unlock()
	for _, loop := range []func(){r.pushLoop, r.livenessLoop, r.verifyLoop} {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			loop()
		}()
	}
}

// Stop ends the loops and waits for them.
func (r *Replicator) Stop() {
	r.once.Do(func() { close(r.stop) })
	r.wg.Wait()
}

// others lists the members other than this node.
func (r *Replicator) others() []Peer {
	var out []Peer
	for _, p := range r.cfg.Peers() {
		if p.ID != r.cfg.Self && p.HTTPAddr != "" {
			out = append(out, p)
		}
	}
	return out
}

// healthy lists the live members, self always included, sorted by id.
func (r *Replicator) healthy() []Peer {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.live != nil && now.Sub(r.liveAt) < liveCacheTTL {
		return r.live
	}
	var out []Peer
	selfSeen := false
	for _, p := range r.cfg.Peers() {
		if p.ID == r.cfg.Self {
			selfSeen = true
			out = append(out, p)
			continue
		}
		if seen, ok := r.lastSeen[p.ID]; ok && now.Sub(seen) <= r.cfg.DeadAfter {
			out = append(out, p)
		}
	}
	if !selfSeen {
		out = append(out, Peer{ID: r.cfg.Self})
	}
	slices.SortFunc(out, func(a, b Peer) int { return strings.Compare(a.ID, b.ID) })
	r.live, r.liveAt = out, now
	return out
}

// liveCacheTTL bounds how long healthy() answers from its cache: membership changes and
// deaths (seconds apart) are seen at most this late.
const liveCacheTTL = 100 * time.Millisecond

// Responsible names the member responsible for a 1.x client (ip:port): a stable hash
// over the sorted live members. self is true when it is this node.
func (r *Replicator) Responsible(client string) (p Peer, self bool) {
	members := r.healthy()
	h := fnv.New32a()
	h.Write([]byte(client))
	p = members[int(h.Sum32()%uint32(len(members)))]
	return p, p.ID == r.cfg.Self
}

func (r *Replicator) pushLoop() {
	for {
		select {
		case <-r.stop:
			return
		case <-r.signal:
		}
		// Batch: whatever changes within PushDelay goes out together.
		select {
		case <-r.stop:
			return
		case <-time.After(r.cfg.PushDelay):
		}
		r.mu.Lock()
		dirty := r.dirty
		r.dirty = map[naming.ServiceKey]struct{}{}
		r.mu.Unlock()
		if len(dirty) == 0 {
			continue
		}
		svcs := make([]naming.ServiceKey, 0, len(dirty))
		for svc := range dirty {
			svcs = append(svcs, svc)
		}
		// Each member has its own queue: a member that does not answer (paused, or
		// its network stalled) holds up only its own pushes, for their timeout, not the
		// next batch to the others, which must learn a takeover before they expire
		// their own copy of the client.
		for _, p := range r.others() {
			r.queueFor(p.ID).add(svcs)
		}
	}
}

// pushQueue holds the services changed since the last push to one member.
type pushQueue struct {
	mu      sync.Mutex
	pending map[naming.ServiceKey]struct{}
	signal  chan struct{}
}

func (q *pushQueue) add(svcs []naming.ServiceKey) {
	q.mu.Lock()
	for _, svc := range svcs {
		q.pending[svc] = struct{}{}
	}
	q.mu.Unlock()
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

// queueFor returns the push queue of member id, starting its sender on first use.
func (r *Replicator) queueFor(id string) *pushQueue {
	r.mu.Lock()
	defer r.mu.Unlock()
	if q := r.queues[id]; q != nil {
		return q
	}
	q := &pushQueue{pending: map[naming.ServiceKey]struct{}{}, signal: make(chan struct{}, 1)}
	r.queues[id] = q
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.sendLoop(id, q)
	}()
	return q
}

// sendLoop pushes q's services to member id, one batch at a time and in order, each
// built when it is sent (so it carries the latest state of its services).
func (r *Replicator) sendLoop(id string, q *pushQueue) {
	for {
		select {
		case <-r.stop:
			return
		case <-q.signal:
		}
		q.mu.Lock()
		pending := q.pending
		q.pending = map[naming.ServiceKey]struct{}{}
		q.mu.Unlock()
		var peer Peer
		for _, p := range r.others() {
			if p.ID == id {
				peer = p
			}
		}
		if len(pending) == 0 || peer.ID == "" {
			continue // nothing, or no longer a member
		}
		svcs := make([]naming.ServiceKey, 0, len(pending))
		for svc := range pending {
			svcs = append(svcs, svc)
		}
		body, err := r.SyncBatch(svcs).Encode()
		if err != nil {
			r.log.Error("encode sync batch", "err", err)
			continue
		}
		if err := r.post(peer, PathSync, body); err != nil {
			// Send these services again (as they are then) once the member answers:
			// a paused member that resumes must learn the takeovers made meanwhile
			// before it acts on what it held, not a checksum round later.
			// A member found dead is tried again once its pings are answered.
			r.log.Debug("push failed; retrying", "peer", id, "services", len(svcs), "err", err)
			for first := true; first || !r.alive(id); first = false {
				select {
				case <-r.stop:
					return
				case <-time.After(pushRetryDelay):
				}
			}
			q.add(svcs)
		}
	}
}

// pushRetryDelay spaces the attempts to push to a member that does not answer.
const pushRetryDelay = time.Second

// alive reports whether member id answered within DeadAfter.
func (r *Replicator) alive(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen, ok := r.lastSeen[id]
	return ok && time.Since(seen) <= r.cfg.DeadAfter
}

// SyncBatch is one push of changed services to the other members: for each service,
// every instance of it the sender is responsible for (an empty list removes them).
type SyncBatch struct {
	From     string           `json:"from"`
	Services []SourcedEntries `json:"services"`
	// Incarnation identifies the sender's process: the Versions of its groups count
	// within one incarnation.
	Incarnation uint64 `json:"incarnation,omitempty"`
}

// SyncBatch builds the push of svcs, as the push loop sends it after a change.
func (r *Replicator) SyncBatch(svcs []naming.ServiceKey) SyncBatch {
	b := SyncBatch{From: r.cfg.Self, Incarnation: r.incarnation}
	for _, svc := range svcs {
		b.Services = append(b.Services, r.store.PushGroup(svc))
	}
	return b
}

// Encode is the batch as it goes on the wire.
func (b SyncBatch) Encode() ([]byte, error) { return json.Marshal(b) }

// DecodeSyncBatch reads a batch as a receiving member does: it refuses a batch without
// a sender and one holding a service a member would never send (ValidEntries).
func DecodeSyncBatch(r io.Reader) (SyncBatch, error) {
	var b SyncBatch
	if err := json.NewDecoder(io.LimitReader(r, maxReplicationBody)).Decode(&b); err != nil {
		return b, fmt.Errorf("distro: bad sync batch: %w", err)
	}
	if b.From == "" {
		return b, errors.New("distro: bad sync batch: no sender")
	}
	for _, g := range b.Services {
		if err := ValidEntries(g); err != nil {
			return b, fmt.Errorf("distro: sync batch: %s: %w", g.Service, err)
		}
	}
	return b, nil
}

type verifyRequest struct {
	From     string `json:"from"`
	Checksum uint64 `json:"checksum"`
}

func (r *Replicator) post(p Peer, path string, body []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+p.HTTPAddr+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(forwardedHeader, "1")
	resp, err := r.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("distro: %s answered %d", p.ID, resp.StatusCode)
	}
	r.seen(p.ID)
	return nil
}

func (r *Replicator) seen(id string) {
	now := time.Now()
	r.mu.Lock()
	if prev, ok := r.lastSeen[id]; !ok || now.Sub(prev) > r.cfg.DeadAfter {
		r.live = nil // back from the dead: responsible again from now on
	}
	r.lastSeen[id] = now
	r.mu.Unlock()
}

// livenessLoop pings every member and acts on deaths: the clients of a dead member move
// to the live members by the hash, with fresh timers, and its connection-owned
// instances are dropped after the grace period unless their clients came back.
func (r *Replicator) livenessLoop() {
	t := time.NewTicker(r.cfg.PingInterval)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
		}
		// After a stall of this process, silence from the others says nothing about
		// them: presume them alive again rather than take all their clients over.
		if now := time.Now(); now.Sub(last)-r.cfg.PingInterval > stallThreshold {
			r.mu.Lock()
			for id := range r.lastSeen {
				r.lastSeen[id] = now
			}
			r.live = nil
			r.mu.Unlock()
		}
		last = time.Now()
		var wg sync.WaitGroup
		for _, p := range r.others() {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), r.cfg.PingInterval)
				defer cancel()
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.HTTPAddr+PathPing, nil)
				req.Header.Set(forwardedHeader, "1")
				if resp, err := r.client.Do(req); err == nil {
					resp.Body.Close()
					if resp.StatusCode == http.StatusOK {
						r.seen(p.ID)
					}
				}
			}()
		}
		wg.Wait()
		r.checkDeaths()
	}
}

func (r *Replicator) checkDeaths() {
	now := time.Now()
	members := map[string]bool{}
	for _, p := range r.cfg.Peers() {
		members[p.ID] = true
	}
	// Sources this node holds replicas of: members, and members removed since.
	var newlyDead, graceOver []string
	r.mu.Lock()
	sources := r.store.Sources()
	for src := range sources {
		if src == "" || src == r.cfg.Self {
			continue
		}
		seen, ok := r.lastSeen[src]
		alive := members[src] && ok && now.Sub(seen) <= r.cfg.DeadAfter
		since, wasDead := r.dead[src]
		switch {
		case alive && wasDead:
			delete(r.dead, src)
		case !alive && !wasDead:
			r.dead[src] = now
			newlyDead = append(newlyDead, src)
		case !alive && now.Sub(since) >= r.cfg.OwnedGrace:
			graceOver = append(graceOver, src)
		}
	}
	r.live = nil // the liveness just decided, not a cached view
	r.mu.Unlock()
	for _, src := range newlyDead {
		n := r.store.Adopt(src, func(client string) bool { _, self := r.Responsible(client); return self })
		r.log.Warn("member unreachable; taking over its clients", "member", src, "adopted", n)
	}
	for _, src := range graceOver {
		// Beat-kept instances of src that nobody adopted (views differed) are taken now
		// too, so that none is left unexpired.
		n := r.store.Adopt(src, func(string) bool { return true })
		m := r.store.DropOwnedOf(src)
		if n+m > 0 {
			r.log.Warn("member still gone after the grace period", "member", src, "adopted", n, "connection_instances_dropped", m)
		}
	}
}

// verifyLoop sends this node's checksum to every member every VerifyInterval; a member
// whose replicas differ pulls this node's data.
func (r *Replicator) verifyLoop() {
	t := time.NewTicker(r.cfg.VerifyInterval)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
		}
		body, _ := json.Marshal(verifyRequest{From: r.cfg.Self, Checksum: r.store.Checksum("")})
		for _, p := range r.others() {
			if err := r.post(p, PathVerify, body); err != nil {
				r.log.Debug("verify failed", "peer", p.ID, "err", err)
			}
		}
	}
}

// Pull copies the whole ephemeral state from one live member before this node serves:
// the members' own instances as replicas, and the instances this node was responsible
// for before it restarted (kept by the others), taken back with fresh timers. It
// returns once one member answered, or when no other member is known; it gives up
// with an error when ctx ends first.
func (r *Replicator) Pull(ctx context.Context) error {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		peers := r.others()
		if len(peers) == 0 {
			return nil
		}
		for _, p := range peers {
			ans, err := r.fetch(ctx, p, "")
			if err != nil {
				r.log.Debug("full pull failed", "peer", p.ID, "err", err)
				continue
			}
			r.load(p.ID, ans)
			r.log.Info("pulled the ephemeral state", "from", p.ID, "groups", len(ans.groups))
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("distro: no member answered the full pull: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// load applies a member's export: its own instances, other members' replicas, and this
// node's former instances (taken back). Replicas of a third member are merged, never
// used to remove: that member may have pushed a newer set here before the pull
// answered, and a relayed copy lacking its latest claims must not delete them.
func (r *Replicator) load(from string, ans dataAnswer) {
	for _, g := range ans.groups {
		switch g.Source {
		case "", from:
			r.applyFrom(from, ans.incarnation, g)
		default:
			// from's read numbers say nothing of that member's own pushes.
			r.store.ApplyRelayed(g.Source, g.Service, g.Entries)
		}
	}
	r.store.Adopt(r.cfg.Self, func(string) bool { return true })
}

// Headers of a PathData answer: the answering process's incarnation, and the number
// of a read of its holdings taken before the export (a service absent from the answer
// held nothing of the member's as of then).
const (
	incarnationHeader = "X-Roster-Distro-Incarnation"
	versionHeader     = "X-Roster-Distro-Version"
)

// dataAnswer is a member's PathData answer.
type dataAnswer struct {
	groups      []SourcedEntries
	incarnation uint64
	version     uint64
}

func (r *Replicator) fetch(ctx context.Context, p Peer, source string) (dataAnswer, error) {
	u := "http://" + p.HTTPAddr + PathData
	if source != "" {
		u += "?source=" + source
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return dataAnswer{}, err
	}
	req.Header.Set(forwardedHeader, "1")
	resp, err := r.client.Do(req)
	if err != nil {
		return dataAnswer{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return dataAnswer{}, fmt.Errorf("distro: %s answered %d", p.ID, resp.StatusCode)
	}
	var ans dataAnswer
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxReplicationBody)).Decode(&ans.groups); err != nil {
		return dataAnswer{}, err
	}
	// Absent or unreadable (an older member): versions are not compared.
	ans.incarnation, _ = strconv.ParseUint(resp.Header.Get(incarnationHeader), 10, 64)
	ans.version, _ = strconv.ParseUint(resp.Header.Get(versionHeader), 10, 64)
	r.seen(p.ID)
	return ans, nil
}

// Router is what Mount needs of a chi router.
type Router interface {
	Get(pattern string, h http.HandlerFunc)
	Post(pattern string, h http.HandlerFunc)
}

// Mount adds the replication endpoints. Each refuses a request without the node
// credential before it reads the body.
func (r *Replicator) Mount(rt Router) {
	guard := r.cfg.Credential.RequireFunc
	rt.Post(PathSync, guard(r.serveSync))
	rt.Post(PathVerify, guard(r.serveVerify))
	rt.Get(PathData, guard(r.serveData))
	rt.Get(PathPing, guard(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }))
}

// Transport carries this node's requests to other members with its credential (the
// HTTP front forwards 1.x writes to the responsible member through it).
func (r *Replicator) Transport() http.RoundTripper { return r.cfg.Credential.Transport() }

func (r *Replicator) serveSync(w http.ResponseWriter, req *http.Request) {
	batch, err := DecodeSyncBatch(req.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if batch.From == r.cfg.Self {
		http.Error(w, "distro: a sync from myself", http.StatusBadRequest)
		return
	}
	r.seen(batch.From)
	for _, g := range batch.Services {
		r.applyFrom(batch.From, batch.Incarnation, g)
	}
	w.WriteHeader(http.StatusOK)
}

// applyFrom applies a group of member from's own instances (a push, or its answer to
// a pull) unless a group of the same service from the same process with a higher
// Version was applied already: a member that was paused (SIGSTOP) finds pushes and
// answers from before and after its pause waiting, and handles them in any order.
// Groups without a Version (from an older member) are always applied.
func (r *Replicator) applyFrom(from string, incarnation uint64, g SourcedEntries) {
	// Moved entries naming this node are stale (it would hold them as its own).
	if len(g.Moved) > 0 {
		moved := make([]Entry, 0, len(g.Moved))
		for _, e := range g.Moved {
			if e.Source != r.cfg.Self {
				moved = append(moved, e)
			}
		}
		g.Moved = moved
	}
	r.applyMu.Lock()
	defer r.applyMu.Unlock()
	if g.Version != 0 {
		av := r.applied[from]
		if av == nil || av.incarnation != incarnation {
			av = &appliedVersions{incarnation: incarnation, services: map[naming.ServiceKey]uint64{}}
			r.applied[from] = av
		}
		if last := av.services[g.Service]; g.Version <= last {
			r.log.Debug("an older copy of a member's instances arrived after a newer one; dropped",
				"member", from, "service", g.Service.String(), "version", g.Version, "applied", last)
			return
		}
		av.services[g.Service] = g.Version
	}
	r.store.Apply(from, g)
}

// appliedVersions is the highest Version applied per service from one member process.
type appliedVersions struct {
	incarnation uint64
	services    map[naming.ServiceKey]uint64
}

// ValidEntries refuses what no member would send: replicas pass the same naming rules
// as client writes (the settings' limits aside, which may differ between members).
func ValidEntries(g SourcedEntries) error {
	if err := naming.CheckServiceKey(g.Service); err != nil {
		return err
	}
	for _, e := range slices.Concat(g.Entries, g.Moved) {
		if err := naming.CheckIP(e.Instance.IP); err != nil {
			return err
		}
		if e.Instance.Port < 0 || e.Instance.Port > 65535 {
			return errors.New("port out of range")
		}
		if err := naming.CheckCluster(e.Instance.ClusterName); err != nil {
			return err
		}
		if err := naming.CheckWeight(e.Instance.Weight); err != nil {
			return err
		}
	}
	return nil
}

func (r *Replicator) serveVerify(w http.ResponseWriter, req *http.Request) {
	var v verifyRequest
	if err := json.NewDecoder(io.LimitReader(req.Body, 1<<16)).Decode(&v); err != nil || v.From == "" || v.From == r.cfg.Self {
		http.Error(w, "distro: bad verify request", http.StatusBadRequest)
		return
	}
	r.seen(v.From)
	w.WriteHeader(http.StatusOK)
	if r.store.Checksum(v.From) == v.Checksum {
		return
	}
	r.mu.Lock()
	if r.pulling[v.From] {
		r.mu.Unlock()
		return
	}
	r.pulling[v.From] = true
	r.mu.Unlock()
	go r.repair(v.From)
}

// repair replaces the replicas of source with source's own copy. Only the source's
// full answer removes anything: a mismatch alone never deletes.
func (r *Replicator) repair(source string) {
	defer func() {
		r.mu.Lock()
		delete(r.pulling, source)
		r.mu.Unlock()
	}()
	var peer Peer
	for _, p := range r.others() {
		if p.ID == source {
			peer = p
		}
	}
	if peer.ID == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ans, err := r.fetch(ctx, peer, "self")
	if err != nil {
		r.log.Debug("repair pull failed", "peer", source, "err", err)
		return
	}
	data := ans.groups
	have := map[naming.ServiceKey]bool{}
	for _, g := range data {
		have[g.Service] = true
		r.applyFrom(source, ans.incarnation, g)
	}
	for _, g := range r.store.Export() {
		if g.Source == source && !have[g.Service] {
			// It holds none of these now; as of the read before its export began.
			r.applyFrom(source, ans.incarnation, SourcedEntries{Service: g.Service, Version: ans.version})
		}
	}
	r.log.Info("replicas repaired after a checksum mismatch", "source", source, "services", len(data))
}

func (r *Replicator) serveData(w http.ResponseWriter, req *http.Request) {
	w.Header().Set(incarnationHeader, strconv.FormatUint(r.incarnation, 10))
	w.Header().Set(versionHeader, strconv.FormatUint(r.store.reads.Add(1), 10))
	all := r.store.Export()
	out := all[:0:0]
	onlySelf := req.URL.Query().Get("source") == "self"
	for _, g := range all {
		if onlySelf && g.Source != "" {
			continue
		}
		out = append(out, g)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

// LiveMembers lists the ids of the live members, this node included, sorted: the same
// liveness that decides each 1.x client's responsible member.
func (r *Replicator) LiveMembers() []string {
	peers := r.healthy()
	ids := make([]string, len(peers))
	for i, p := range peers {
		ids[i] = p.ID
	}
	return ids
}
