package main

import (
	"testing"
	"time"
)

func TestPercentileNearestRank(t *testing.T) {
	var l latencies
	for i := 1000; i >= 1; i-- { // unsorted on purpose
		l.add(time.Duration(i) * time.Millisecond)
	}
	s := l.summarize()
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"min", s.MinMS, 1}, {"p50", s.P50MS, 500}, {"p90", s.P90MS, 900}, {"p99", s.P99MS, 990},
		{"p99.9", s.P999MS, 999}, {"max", s.MaxMS, 1000}, {"mean", s.MeanMS, 500.5},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if s.N != 1000 {
		t.Errorf("n = %d, want 1000", s.N)
	}
}

func TestPercentileSmallAndEmpty(t *testing.T) {
	if s := (latencies{}).summarize(); s.N != 0 || s.P99MS != 0 {
		t.Errorf("empty: %+v", s)
	}
	one := latencies{3 * time.Millisecond}
	if s := one.summarize(); s.P50MS != 3 || s.P999MS != 3 {
		t.Errorf("one sample: %+v", s)
	}
	two := latencies{2 * time.Millisecond, 1 * time.Millisecond}
	two.summarize()
	if p := two.percentile(50); p != time.Millisecond {
		t.Errorf("p50 of {1,2}ms = %v, want 1ms", p)
	}
	if p := two.percentile(51); p != 2*time.Millisecond {
		t.Errorf("p51 of {1,2}ms = %v, want 2ms", p)
	}
}

func TestRawPayloadSize(t *testing.T) {
	for _, i := range []int{0, 1, 99999, 1 << 20} {
		k, v := rawPayload(i)
		if len(v) < 290 || len(v) > 310 || len(k) == 0 {
			t.Errorf("rawPayload(%d): key %q, value %d bytes, want about 300", i, k, len(v))
		}
	}
}
