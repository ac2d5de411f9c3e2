package udppush

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"time"

	"github.com/roster-registry/roster/naming"
)

// loop coalesces changes, pushes, resends and expires subscribers. It alone sends, so
// the pusher transmits nothing that Subscribe did not name.
func (p *Pusher) loop() {
	defer p.wg.Done()
	sweepEvery := min(max(p.cfg.SubscriberTTL/4, 10*time.Millisecond), 5*time.Second)
	nextSweep := time.Now().Add(sweepEvery)
	var flushAt time.Time // zero: no flush armed
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		wake := nextSweep
		if !flushAt.IsZero() && flushAt.Before(wake) {
			wake = flushAt
		}
		if len(p.queue) > 0 && p.queue[0].deadline.Before(wake) {
			wake = p.queue[0].deadline
		}
		timer.Reset(time.Until(wake))
		select {
		case <-p.stopc:
			return
		case <-p.kick:
			// The delay runs from the first pending change and is not extended by later
			// ones, so a service changing constantly is still pushed every Delay.
			if flushAt.IsZero() {
				flushAt = time.Now().Add(p.cfg.Delay)
			}
		case <-timer.C:
		}
		now := time.Now()
		if !flushAt.IsZero() && !now.Before(flushAt) {
			flushAt = time.Time{}
			p.flush()
			now = time.Now()
		}
		p.retry(now)
		if !now.Before(nextSweep) {
			p.expire(now)
			nextSweep = now.Add(sweepEvery)
		}
	}
}

// flush pushes every pending service to its subscribers.
func (p *Pusher) flush() {
	p.mu.Lock()
	pending := p.pending
	p.pending = make(map[naming.ServiceKey]struct{}, len(pending))
	p.mu.Unlock()
	for svc := range pending {
		if p.stopping() {
			return
		}
		p.pushService(svc)
	}
}

// pushService calls DataFunc once per distinct clusters filter among the live subscribers
// of svc, builds one packet (one sequence number, gzipped once) for each, and sends that
// same packet to every subscriber of the filter.
func (p *Pusher) pushService(svc naming.ServiceKey) {
	now := time.Now()
	groups := make(map[string][]subID)
	p.mu.Lock()
	for id, s := range p.subs[svc] {
		if now.Before(s.expires) {
			groups[id.clusters] = append(groups[id.clusters], id)
		}
	}
	p.mu.Unlock()
	clusters := make([]string, 0, len(groups))
	for c := range groups {
		clusters = append(clusters, c)
	}
	sort.Strings(clusters)
	for _, c := range clusters {
		if p.stopping() {
			return
		}
		ids := groups[c]
		info, err := p.callData(svc, c)
		if err != nil {
			p.failures.Add(uint64(len(ids)))
			p.log.Warn("push data", "service", svc.String(), "clusters", c, "err", err)
			continue
		}
		if len(info) == 0 {
			continue
		}
		quoted, err := quote(info)
		if err != nil {
			p.failures.Add(uint64(len(ids)))
			p.log.Warn("push data", "service", svc.String(), "clusters", c, "err", err)
			continue
		}
		seq := p.seq.Add(1)
		pkt, err := p.enc.packet(quoted, seq, p.cfg.MaxPacket)
		if err != nil {
			p.failures.Add(uint64(len(ids)))
			p.log.Debug("push not sent", "service", svc.String(), "clusters", c, "subscribers", len(ids), "err", err)
			continue
		}
		p.encodes.Add(1)
		for _, id := range ids {
			p.send(svc, id, seq, pkt)
		}
	}
}

// callData shields the loop from a panicking DataFunc: the push fails, the server lives.
func (p *Pusher) callData(svc naming.ServiceKey, clusters string) (data []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("udppush: data for %s panicked: %v", svc, r)
		}
	}()
	return p.data(svc, clusters)
}

func (p *Pusher) send(svc naming.ServiceKey, id subID, seq int64, pkt []byte) {
	fl := &inflight{key: ackKey{seq: seq, addr: id.addr}, svc: svc, id: id, packet: pkt, deadline: time.Now().Add(p.cfg.AckTimeout)}
	p.mu.Lock()
	s := p.subs[svc][id]
	if s == nil { // expired since pushService looked
		p.mu.Unlock()
		return
	}
	// A newer push supersedes an unacked older one: resending the older one later could
	// roll the client back to stale data.
	if s.inflight != 0 {
		delete(p.inflight, ackKey{seq: s.inflight, addr: id.addr})
	}
	s.inflight = seq
	// Registered before the write, so an ack that beats WriteTo's return still matches.
	p.inflight[fl.key] = fl
	p.mu.Unlock()

	if _, err := p.conn.WriteToUDPAddrPort(pkt, id.addr); err != nil {
		p.forget(fl)
		p.failures.Add(1)
		p.log.Debug("push not sent", "service", svc.String(), "addr", id.addr.String(), "err", err)
		return
	}
	p.pushes.Add(1)
	p.queue = append(p.queue, fl)
}

// forget drops fl from the in-flight table if it is still there.
func (p *Pusher) forget(fl *inflight) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.inflight[fl.key] != fl {
		return
	}
	delete(p.inflight, fl.key)
	if s := p.subs[fl.svc][fl.id]; s != nil && s.inflight == fl.key.seq {
		s.inflight = 0
	}
}

// retry resends, once and with the same packet as Nacos does, every push whose ack is
// overdue, and gives up on those already resent. Every deadline is its send time plus
// the same AckTimeout, so the queue is in deadline order.
func (p *Pusher) retry(now time.Time) {
	for len(p.queue) > 0 && !p.queue[0].deadline.After(now) {
		fl := p.queue[0]
		p.queue[0] = nil
		p.queue = p.queue[1:]

		p.mu.Lock()
		live := p.inflight[fl.key] == fl
		p.mu.Unlock()
		if !live { // acked, superseded or expired
			continue
		}
		if fl.resent {
			p.forget(fl)
			p.unacked.Add(1)
			continue
		}
		fl.resent = true
		fl.deadline = now.Add(p.cfg.AckTimeout)
		if _, err := p.conn.WriteToUDPAddrPort(fl.packet, fl.id.addr); err != nil {
			p.forget(fl)
			p.failures.Add(1)
			p.log.Debug("resend failed", "service", fl.svc.String(), "addr", fl.id.addr.String(), "err", err)
			continue
		}
		p.resends.Add(1)
		p.queue = append(p.queue, fl)
	}
	if len(p.queue) == 0 {
		p.queue = nil // let a burst's backing array go
	}
}

// expire drops subscribers not refreshed within SubscriberTTL, and their pushes in flight.
func (p *Pusher) expire(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for svc, m := range p.subs {
		for id, s := range m {
			if now.Before(s.expires) {
				continue
			}
			if s.inflight != 0 {
				delete(p.inflight, ackKey{seq: s.inflight, addr: id.addr})
			}
			delete(m, id)
			p.nsubs--
		}
		if len(m) == 0 {
			delete(p.subs, svc)
		}
	}
}

// readLoop matches acks to pushes in flight. It never writes: answering what arrives
// would make the registry a reflector for spoofed packets.
func (p *Pusher) readLoop() {
	defer p.wg.Done()
	buf := make([]byte, 64*1024)
	for {
		n, from, err := p.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || p.stopping() {
				return
			}
			p.log.Debug("read", "err", err)
			// Avoid spinning on an error that repeats.
			select {
			case <-p.stopc:
				return
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		p.handleAck(buf[:n], netip.AddrPortFrom(from.Addr().Unmap(), from.Port()))
	}
}

// ackPacket is what clients send back: {"type":"push-ack","lastRefTime":"<seq>","data":""}.
// Nacos does not look at the type, only at the sequence and the sender.
type ackPacket struct {
	LastRefTime json.RawMessage `json:"lastRefTime"`
}

func (p *Pusher) handleAck(b []byte, from netip.AddrPort) {
	seq, ok := parseAck(b)
	if !ok {
		p.ignored.Add(1)
		return
	}
	key := ackKey{seq: seq, addr: from}
	p.mu.Lock()
	fl := p.inflight[key]
	if fl == nil {
		p.mu.Unlock()
		p.ignored.Add(1)
		return
	}
	delete(p.inflight, key)
	if s := p.subs[fl.svc][fl.id]; s != nil && s.inflight == seq {
		s.inflight = 0
	}
	p.mu.Unlock()
	p.acks.Add(1)
}

// parseAck extracts the echoed sequence, sent as a string by Java and nacos-sdk-go v1 and
// as a number by the Node.js client.
func parseAck(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > maxAckSize {
		return 0, false
	}
	var a ackPacket
	if err := json.Unmarshal(b, &a); err != nil || len(a.LastRefTime) == 0 {
		return 0, false
	}
	raw := a.LastRefTime
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, false
		}
		raw = []byte(s)
	}
	s := string(bytes.TrimSpace(raw))
	if seq, err := strconv.ParseInt(s, 10, 64); err == nil {
		if seq <= 0 {
			return 0, false
		}
		return seq, true
	}
	// A JavaScript number may come back in exponent form; it is exact below 2^53.
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f <= 0 || f >= 1<<53 || f != float64(int64(f)) {
		return 0, false
	}
	return int64(f), true
}
