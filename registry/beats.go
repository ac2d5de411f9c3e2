package registry

import (
	"context"
	"errors"
	"time"

	"github.com/roster-registry/roster/naming"
)

// Beat codes (Nacos ResponseCode / NamingResponseCode).
const (
	BeatOK       = 10200
	BeatNotFound = 20404
)

// BeatRequest is a client beat: a light one names ip, port and cluster; a full one
// carries the instance (Nacos' RsInfo) and registers it when it is unknown.
type BeatRequest struct {
	Service naming.ServiceKey `json:"service"`
	IP      string            `json:"ip"`
	Port    int               `json:"port"`
	Cluster string            `json:"cluster"`
	Full    *naming.Instance  `json:"full,omitempty"`
}

// BeatResult is the answer's code and the interval the client should beat at.
type BeatResult struct {
	Code     int           `json:"code"`
	Interval time.Duration `json:"interval"`
}

// Beat records a client beat (PROTOCOL.md §4) on the member responsible for the client.
func (r *Registry) Beat(ctx context.Context, b BeatRequest) (BeatResult, error) {
	if err := naming.CheckServiceKey(b.Service); err != nil {
		return BeatResult{}, err
	}
	if peer, ok := r.responsibleElsewhere(ctx, b.IP, b.Port); ok {
		var res BeatResult
		err := r.cluster.Call(ctx, peer.HTTPAddr, methodAPWrite, apWrite{Op: opBeat, Service: b.Service, Beat: &b}, &res)
		var ne *naming.Error
		switch {
		case err == nil:
			return res, nil
		case errors.As(err, &ne):
			return res, ne
		}
		// Unlike a write, a beat may be recorded twice: one the responsible member
		// did not answer (paused, stalled) is recorded here as well, which takes the
		// client over. Else the client beats on while every copy of it ages: the
		// member that kept it forwards its beats to the silent one and expires it.
		r.log.Debug("responsible member did not take the beat; recording it here", "member", peer.ID, "err", err)
	}
	return r.beatLocal(forwarded(ctx), b)
}

// beatLocal records a beat on this member. A full beat of an unknown instance
// registers it (validated then, by Register); ctx is marked so that it stays here.
func (r *Registry) beatLocal(ctx context.Context, b BeatRequest) (BeatResult, error) {
	if interval, ok := r.distro.Touch(b.Service, b.IP, b.Port, b.Cluster); ok {
		return BeatResult{Code: BeatOK, Interval: interval}, nil
	}
	if b.Full == nil {
		return BeatResult{Code: BeatNotFound, Interval: r.cfg.Timing.HeartBeatInterval}, nil
	}
	inst := b.Full.Clone()
	inst.Healthy, inst.Enabled = true, true
	if err := r.Register(ctx, b.Service, inst); err != nil {
		return BeatResult{}, err
	}
	return BeatResult{Code: BeatOK, Interval: r.cfg.Timing.For(inst).HeartBeatInterval}, nil
}
