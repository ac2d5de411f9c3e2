package distro

import (
	"cmp"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/roster-registry/roster/naming"
)

// Defaults and limits of Config.
const (
	// DefaultCheckInterval is how often the expiry check runs when Config leaves it zero.
	DefaultCheckInterval = 500 * time.Millisecond
	// MaxCheckInterval bounds the check interval: instances must turn unhealthy and vanish
	// within a second of their timeouts.
	MaxCheckInterval = time.Second
	// DefaultEmptyServiceTTL is Nacos' empty-service cleanup delay.
	DefaultEmptyServiceTTL = 60 * time.Second
)

// numShards spreads services over this many locks. A power of two keeps the shard pick a
// mask; 32 is plenty for the cores Roster targets and costs nothing when idle.
const numShards = 32

// Clock tells the time. The production clock is time.Now, whose readings carry the
// monotonic clock; tests use a fake.
type Clock interface {
	Now() time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Config configures a Store. Zero values take the defaults given per field.
type Config struct {
	// Timing is the server's default beat timing (from flags). Instances override the
	// timeouts with preserved.* metadata. Zero fields take naming.DefaultTiming's.
	Timing naming.Timing
	// CheckInterval is the period of the expiry check; 0 means DefaultCheckInterval.
	// New clamps it to MaxCheckInterval; Validate rejects larger values.
	CheckInterval time.Duration
	// EmptyServiceTTL is how long a service stays listed after its last instance left;
	// 0 means DefaultEmptyServiceTTL.
	EmptyServiceTTL time.Duration
	// Clock defaults to time.Now.
	Clock Clock
	// Wall tells the wall-clock time records' epochs are stamped with; nil reads Clock.
	// A test shifts it to step one member's clock.
	Wall func() time.Time
	// Logger defaults to slog.Default(); the store adds component=distro.
	Logger *slog.Logger
}

// Validate reports a configuration New would have to correct.
func (c Config) Validate() error {
	if c.CheckInterval < 0 || c.CheckInterval > MaxCheckInterval {
		return fmt.Errorf("distro: check interval must be between 0 and %v, got %v", MaxCheckInterval, c.CheckInterval)
	}
	if c.EmptyServiceTTL < 0 {
		return fmt.Errorf("distro: empty service TTL must not be negative, got %v", c.EmptyServiceTTL)
	}
	if c.Timing.HeartBeatInterval < 0 || c.Timing.HeartBeatTimeout < 0 || c.Timing.IPDeleteTimeout < 0 {
		return fmt.Errorf("distro: beat timing must not be negative, got %+v", c.Timing)
	}
	return nil
}

func (c Config) withDefaults() Config {
	def := naming.DefaultTiming()
	if c.Timing.HeartBeatInterval <= 0 {
		c.Timing.HeartBeatInterval = def.HeartBeatInterval
	}
	if c.Timing.HeartBeatTimeout <= 0 {
		c.Timing.HeartBeatTimeout = def.HeartBeatTimeout
	}
	if c.Timing.IPDeleteTimeout <= 0 {
		c.Timing.IPDeleteTimeout = def.IPDeleteTimeout
	}
	if c.CheckInterval <= 0 {
		c.CheckInterval = DefaultCheckInterval
	}
	if c.CheckInterval > MaxCheckInterval {
		c.CheckInterval = MaxCheckInterval
	}
	if c.EmptyServiceTTL <= 0 {
		c.EmptyServiceTTL = DefaultEmptyServiceTTL
	}
	if c.Clock == nil {
		c.Clock = systemClock{}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Store holds the ephemeral instances of one node. All methods are safe for concurrent
// use. Instances handed in are copied, and instances handed out are copies.
type Store struct {
	cfg    Config
	clock  Clock
	base   time.Time // origin of every stored time; see now
	logger *slog.Logger

	shards [numShards]shard

	services  atomic.Int64
	instances atomic.Int64

	// own indexes connection-owned instances by owner (owned.go).
	own ownerIndex
	// strings holds the strings stored instances share (intern.go).
	strings interner

	cbMu      sync.Mutex                                // serialises OnChange
	callbacks atomic.Pointer[[]func(naming.ServiceKey)] // copy-on-write, read without a lock
	// localHooks run after changes this node is responsible for (replication).
	localHooks atomic.Pointer[[]func(naming.ServiceKey)]
	// paused is store time lost to stalls of this process (replica.go).
	paused atomic.Int64
	// reads numbers every read of this node's holdings that leaves for another member
	// (Holdings, Export), taken under the shard's lock: a higher number is a state at
	// least as recent, so a receiver can drop a copy that arrives after a newer one.
	reads atomic.Uint64

	// checkMu serialises expiry checks, which reuse scratch between passes.
	checkMu sync.Mutex
	scratch []candidate

	runMu   sync.Mutex
	started bool
	stopped bool
	stopc   chan struct{}
	wg      sync.WaitGroup
}

type shard struct {
	mu       sync.RWMutex
	services map[naming.ServiceKey]*service
	// Keep neighbouring shards' lock words off one cache line.
	_ [64]byte
}

// service is the instances of one service, keyed by naming.Instance.Key.
type service struct {
	instances map[string]*record
	// emptySince is when the last instance left (store time); meaningful only while
	// instances is empty.
	emptySince int64
}

// record is one stored instance. inst, client and the timeouts change only under the
// shard's write lock; lastBeat is written under the read lock by beats, hence atomic.
type record struct {
	inst storedInstance
	// owner is the connection that registered the instance over gRPC (see owned.go);
	// empty for beat-kept instances. Owned instances never expire by beat timers.
	owner string
	// source is the member whose copy this is: empty when this node is responsible for
	// the instance (it runs its expiry and replicates it), else the responsible member's
	// id (a replica, replaced by that member's pushes, never expired here).
	source string
	// epoch is when the record's current source took it (wall clock, ns): a claim
	// from another member replaces the record only if it is at least as recent, so a
	// member that was stalled or partitioned cannot take back clients others adopted.
	epoch int64
	// released is set when this node held the record and another member's newer
	// claim took it: this node's pushes then name the new holder (SourcedEntries.Moved),
	// so that a member still counting the record as this node's moves it over rather
	// than removing it before the new holder's own push arrives.
	released bool
	// adopted is set while this node holds the record as its own by Adopt (its member
	// was found dead) and no registration, update or handover has touched it since.
	adopted bool
	// rival is a member that pushed the record as its own, with an older claim, while
	// this node held it adopted: the member was alive then and kept the client, so the
	// client's beats may go there rather than here (see expiry.go, handToRival). It is
	// not cleared when the rival's later push lacks the record: that is the rival
	// giving way to this node's newer claim, which it takes back at the client's next
	// beat, possibly with a claim still older (its wall clock behind).
	rival      string
	interval   int64 // ns between the client's beats, as told in beat answers
	hbTimeout  int64 // ns without a beat before the instance turns unhealthy
	delTimeout int64 // ns without a beat before it is removed
	lastBeat   atomic.Int64
}

// New returns a stopped Store; Start runs its expiry check.
func New(cfg Config) *Store {
	cfg = cfg.withDefaults()
	s := &Store{
		cfg:    cfg,
		clock:  cfg.Clock,
		logger: cfg.Logger.With("component", "distro"),
		stopc:  make(chan struct{}),
	}
	s.base = s.clock.Now()
	for i := range s.shards {
		s.shards[i].services = make(map[naming.ServiceKey]*service)
	}
	return s
}

// Start runs the expiry check every CheckInterval on a goroutine owned by the Store.
// Calls after the first, and any call after Stop, do nothing.
func (s *Store) Start() {
	s.runMu.Lock()
	defer s.runMu.Unlock()
	if s.started || s.stopped {
		return
	}
	s.started = true
	s.wg.Add(1)
	go s.run()
}

// Stop ends the expiry check and waits for it to return. It is idempotent; a stopped
// Store still serves reads and writes, but nothing expires any more. It must not be called
// from an OnChange callback, which may be running on the expiry goroutine.
func (s *Store) Stop() {
	s.runMu.Lock()
	if !s.stopped {
		s.stopped = true
		close(s.stopc)
	}
	s.runMu.Unlock()
	s.wg.Wait()
}

func (s *Store) run() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.CheckInterval)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-s.stopc:
			return
		case <-t.C:
			// A tick far later than its period means this process was stalled (a GC
			// pause, SIGSTOP, a starved VM): its clients beat into the void meanwhile.
			// That time does not count towards anyone's expiry.
			now := time.Now()
			if gap := now.Sub(last) - s.cfg.CheckInterval; gap > stallThreshold {
				s.paused.Add(int64(gap))
				s.logger.Warn("process stall detected; the stalled time does not count towards expiry", "stall", gap)
			}
			last = now
			s.checkExpiry(s.clock.Now())
		}
	}
}

// OnChange adds a callback called with the service after every change of its instances:
// register, deregister, update, health flips by beats and by expiry, removals, and the
// service vanishing after its empty TTL. A write that changes nothing does not call it.
// Callbacks run after the store's locks are released, on the goroutine that made the
// change (the expiry ticker for expiry), so they must be cheap and must not block;
// they may call the Store.
func (s *Store) OnChange(fn func(svc naming.ServiceKey)) {
	s.cbMu.Lock()
	defer s.cbMu.Unlock()
	var next []func(naming.ServiceKey)
	if cur := s.callbacks.Load(); cur != nil {
		next = append(next, *cur...)
	}
	next = append(next, fn)
	s.callbacks.Store(&next)
}

// notify reports a change this node made as the responsible node: to the OnChange
// callbacks and to the replication hooks.
func (s *Store) notify(svc naming.ServiceKey) {
	s.notifyRemote(svc)
	if hooks := s.localHooks.Load(); hooks != nil {
		for _, fn := range *hooks {
			fn(svc)
		}
	}
}

// notifyRemote reports a change that came from another member: only to OnChange.
func (s *Store) notifyRemote(svc naming.ServiceKey) {
	cbs := s.callbacks.Load()
	if cbs == nil {
		return
	}
	for _, fn := range *cbs {
		fn(svc)
	}
}

// now is the store time: nanoseconds since the store was created, less the time this
// process was stalled (a paused process must not expire clients that kept beating to
// it). Time.Sub uses the monotonic readings when both times carry one, so wall clock
// steps do not move it.
func (s *Store) now() int64 { return int64(s.clock.Now().Sub(s.base)) - s.paused.Load() }

// wall stamps a record's epoch: wall-clock time, comparable between members.
func (s *Store) wall() int64 {
	if s.cfg.Wall != nil {
		return s.cfg.Wall().UnixNano()
	}
	return s.clock.Now().UnixNano()
}

func (s *Store) shardOf(svc naming.ServiceKey) *shard {
	// FNV-1a over the three names, with a separator so that ("ab","c") and ("a","bc")
	// differ. Inlined rather than hash/maphash, whose Comparable makes its argument
	// escape: this runs on every beat.
	h := uint32(2166136261)
	for _, part := range [3]string{svc.Namespace, svc.Group, svc.Name} {
		for i := 0; i < len(part); i++ {
			h ^= uint32(part[i])
			h *= 16777619
		}
		h ^= 0xff
		h *= 16777619
	}
	return &s.shards[h&(numShards-1)]
}

// lookup finds a record; the caller holds the shard's lock (either mode).
func (sh *shard) lookup(svc naming.ServiceKey, key string) (*service, *record) {
	sv := sh.services[svc]
	if sv == nil {
		return nil, nil
	}
	return sv, sv.instances[key]
}

// beat advances lastBeat to at, never backwards: concurrent beats may read the clock in
// one order and store in the other.
func (r *record) beat(at int64) {
	for {
		old := r.lastBeat.Load()
		if old >= at || r.lastBeat.CompareAndSwap(old, at) {
			return
		}
	}
}

// setInstance stores a compact copy of inst and resolves its timeouts. The caller
// holds the shard's write lock.
func (s *Store) setInstance(r *record, inst *naming.Instance) {
	t := s.cfg.Timing.For(inst)
	r.inst = s.compact(inst)
	r.interval = int64(t.HeartBeatInterval)
	r.hbTimeout = int64(t.HeartBeatTimeout)
	r.delTimeout = int64(t.IPDeleteTimeout)
}

// Register stores a copy of inst under svc, replacing any instance with the same key
// (ip#port#cluster), and records a beat now. An instance of the same ip:port in another
// cluster is a separate instance.
func (s *Store) Register(svc naming.ServiceKey, inst *naming.Instance) {
	c := inst
	key := c.Key()
	now := s.now()
	sh := s.shardOf(svc)

	sh.mu.Lock()
	sv := sh.services[svc]
	if sv == nil {
		sv = &service{instances: make(map[string]*record)}
		sh.services[svc] = sv
		s.services.Add(1)
	}
	r := sv.instances[key]
	changed := true
	if r == nil {
		r = &record{}
		sv.instances[key] = r
		s.instances.Add(1)
	} else {
		changed = !r.inst.equal(c)
	}
	s.setInstance(r, c)
	// A 1.x registration takes the instance over: from now on beats keep it alive.
	changed = changed || r.owner != "" || r.source != ""
	r.owner = ""
	r.source = ""
	r.released = false
	r.adopted, r.rival = false, ""
	r.epoch = s.wall()
	r.beat(now)
	sh.mu.Unlock()

	if changed {
		s.notify(svc)
	}
}

// Deregister removes the instance at ip:port in cluster and reports whether it was there.
func (s *Store) Deregister(svc naming.ServiceKey, ip string, port int, cluster string) bool {
	key := naming.InstanceKey(ip, port, cluster)
	now := s.now()
	sh := s.shardOf(svc)

	sh.mu.Lock()
	sv, r := sh.lookup(svc, key)
	if r == nil {
		sh.mu.Unlock()
		return false
	}
	s.removeLocked(sv, key, now)
	sh.mu.Unlock()

	s.notify(svc)
	return true
}

// removeLocked deletes an instance and starts the service's empty TTL if it was the last.
func (s *Store) removeLocked(sv *service, key string, now int64) {
	delete(sv.instances, key)
	s.instances.Add(-1)
	if len(sv.instances) == 0 {
		sv.emptySince = now
	}
}

// Beat records a beat for the instance at ip:port in cluster and returns a copy of it.
// An unhealthy instance turns healthy, and that change is notified. It reports false when
// there is no such instance (the client is told to register again).
func (s *Store) Beat(svc naming.ServiceKey, ip string, port int, cluster string) (*naming.Instance, bool) {
	inst, _, ok := s.beat(svc, ip, port, cluster, true)
	return inst, ok
}

// Touch is Beat without the copy: it records the beat the same way and returns only the
// instance's beat interval (preserved.heart.beat.interval over the server default), which
// is all a beat answer carries. Copying the instance is most of a beat's cost.
func (s *Store) Touch(svc naming.ServiceKey, ip string, port int, cluster string) (interval time.Duration, ok bool) {
	_, interval, ok = s.beat(svc, ip, port, cluster, false)
	return interval, ok
}

func (s *Store) beat(svc naming.ServiceKey, ip string, port int, cluster string, copyOut bool) (*naming.Instance, time.Duration, bool) {
	now := s.now()
	// Build the key on the stack: a map index by string(bytes) does not allocate.
	var buf [192]byte
	key := appendKey(buf[:0], ip, port, cluster)
	sh := s.shardOf(svc)

	sh.mu.RLock()
	_, r := sh.lookup(svc, string(key))
	if r == nil {
		sh.mu.RUnlock()
		return nil, 0, false
	}
	if r.inst.healthy && r.source == "" {
		r.beat(now)
		c, interval := r.out(copyOut)
		sh.mu.RUnlock()
		return c, interval, true
	}
	sh.mu.RUnlock()

	// Unhealthy: flip under the write lock, looking again since it was released.
	sh.mu.Lock()
	_, r = sh.lookup(svc, string(key))
	if r == nil {
		sh.mu.Unlock()
		return nil, 0, false
	}
	r.beat(now)
	// A beat for a replica means its client now beats here: this node takes it over.
	flipped := !r.inst.healthy || r.source != ""
	r.inst.healthy = true
	from := r.source
	if r.source != "" {
		r.source = ""
		r.released = false
		r.adopted, r.rival = false, ""
		r.epoch = s.wall()
	}
	c, interval := r.out(copyOut)
	sh.mu.Unlock()
	if from != "" {
		s.logger.Debug("a beat took a replica over", "service", svc.String(), "instance", string(key), "from", from)
	}

	if flipped {
		s.notify(svc)
	}
	return c, interval, true
}

// out is what a beat returns; the caller holds the shard's lock.
func (r *record) out(copyOut bool) (*naming.Instance, time.Duration) {
	if !copyOut {
		return nil, time.Duration(r.interval)
	}
	return r.inst.instance(), time.Duration(r.interval)
}

func appendKey(b []byte, ip string, port int, cluster string) []byte {
	b = append(b, ip...)
	b = append(b, '#')
	b = strconv.AppendInt(b, int64(port), 10)
	b = append(b, '#')
	return append(b, cluster...)
}

// Update edits the instance with key (ip#port#cluster) under svc and reports whether it
// exists. fn receives a copy and runs with the service's shard locked: it must only edit
// its argument and must not call the Store. Changes to IP, Port and ClusterName are
// ignored (they make up the key). Update does not count as a beat.
func (s *Store) Update(svc naming.ServiceKey, key string, fn func(*naming.Instance)) bool {
	sh := s.shardOf(svc)

	sh.mu.Lock()
	_, r := sh.lookup(svc, key)
	if r == nil {
		sh.mu.Unlock()
		return false
	}
	c := r.inst.instance()
	fn(c)
	c.IP, c.Port, c.ClusterName = r.inst.ip, r.inst.port, r.inst.cluster
	changed := !r.inst.equal(c) || r.source != ""
	if changed {
		s.setInstance(r, c)
		if r.source != "" {
			r.source = ""
			r.released = false
			r.epoch = s.wall()
		}
		r.adopted, r.rival = false, ""
	}
	sh.mu.Unlock()

	if changed {
		s.notify(svc)
	}
	return true
}

// Instance returns a copy of the instance with key (ip#port#cluster) under svc.
func (s *Store) Instance(svc naming.ServiceKey, key string) (*naming.Instance, bool) {
	sh := s.shardOf(svc)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	_, r := sh.lookup(svc, key)
	if r == nil {
		return nil, false
	}
	return r.inst.instance(), true
}

// Instances returns copies of the instances of svc, sorted by key; empty (not nil) when
// there are none. The caller owns the slice and the instances.
func (s *Store) Instances(svc naming.ServiceKey) []*naming.Instance {
	sh := s.shardOf(svc)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	sv := sh.services[svc]
	if sv == nil || len(sv.instances) == 0 {
		return []*naming.Instance{}
	}
	keys := slices.Sorted(maps.Keys(sv.instances))
	out := make([]*naming.Instance, len(keys))
	for i, k := range keys {
		out[i] = sv.instances[k].inst.instance()
	}
	return out
}

// Holding is how this node holds one instance: its client (ip:port for a 1.x client),
// the gRPC connection that owns it (empty for a beat-kept instance), and the member
// whose copy this is (empty: this node is responsible for it, runs its expiry and
// replicates it).
type Holding struct {
	Key, Client, Owner, Source string
}

// Holdings lists how this node holds each instance of svc, sorted by key. It is for
// operators and the chaos suite: who considers itself responsible for what.
func (s *Store) Holdings(svc naming.ServiceKey) []Holding {
	sh := s.shardOf(svc)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	sv := sh.services[svc]
	if sv == nil {
		return []Holding{}
	}
	out := make([]Holding, 0, len(sv.instances))
	for _, k := range slices.Sorted(maps.Keys(sv.instances)) {
		r := sv.instances[k]
		out = append(out, Holding{Key: k, Client: r.inst.addr(), Owner: r.owner, Source: r.source})
	}
	return out
}

// HasService reports whether svc has instances or lost its last one less than
// EmptyServiceTTL ago.
func (s *Store) HasService(svc naming.ServiceKey) bool {
	now := s.now()
	sh := s.shardOf(svc)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	sv := sh.services[svc]
	return sv != nil && s.live(sv, now)
}

// live reports whether a service is listed at now; the caller holds its shard's lock.
func (s *Store) live(sv *service, now int64) bool {
	return len(sv.instances) > 0 || now-sv.emptySince < int64(s.cfg.EmptyServiceTTL)
}

// Services lists the services of namespace ("" = all namespaces) that HasService would
// report, sorted by namespace, group and name. The caller owns the slice.
func (s *Store) Services(namespace string) []naming.ServiceKey {
	now := s.now()
	out := []naming.ServiceKey{}
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		for k, sv := range sh.services {
			if (namespace == "" || k.Namespace == namespace) && s.live(sv, now) {
				out = append(out, k)
			}
		}
		sh.mu.RUnlock()
	}
	slices.SortFunc(out, compareServiceKey)
	return out
}

func compareServiceKey(a, b naming.ServiceKey) int {
	return cmp.Or(
		cmp.Compare(a.Namespace, b.Namespace),
		cmp.Compare(a.Group, b.Group),
		cmp.Compare(a.Name, b.Name),
	)
}

// Counts returns the number of services and instances held. Services past their empty
// TTL are counted until the next expiry check drops them.
func (s *Store) Counts() (services, instances int) {
	return int(s.services.Load()), int(s.instances.Load())
}
