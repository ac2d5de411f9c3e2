package distro

import (
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/roster-registry/roster/naming"
)

const (
	benchServices    = 1000
	benchPerService  = 100
	benchInstances   = benchServices * benchPerService
	benchClusterName = "DEFAULT"
)

type beatArgs struct {
	svc naming.ServiceKey
	ip  string
}

// fill registers 100 000 instances: 1000 services of 100.
func fill(b *testing.B, s *Store) []beatArgs {
	b.Helper()
	args := make([]beatArgs, 0, benchInstances)
	for i := range benchServices {
		svc := naming.ServiceKey{Namespace: "public", Group: "DEFAULT_GROUP", Name: "svc-" + strconv.Itoa(i)}
		for j := range benchPerService {
			ip := ipOf(i*benchPerService + j)
			in := inst(ip, 8080, benchClusterName)
			in.Metadata = map[string]string{"version": "1.0.0", "zone": "a"}
			s.Register(svc, in)
			args = append(args, beatArgs{svc: svc, ip: ip})
		}
	}
	if _, n := s.Counts(); n != benchInstances {
		b.Fatalf("filled %d instances, want %d", n, benchInstances)
	}
	return args
}

func BenchmarkBeat(b *testing.B) {
	s, _ := newTestStore(b)
	args := fill(b, s)
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			a := &args[i%benchInstances]
			if _, ok := s.Beat(a.svc, a.ip, 8080, benchClusterName); !ok {
				b.Fatal("beat missed")
			}
			i++
		}
	})
	b.Run("touch", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			a := &args[i%benchInstances]
			if _, ok := s.Touch(a.svc, a.ip, 8080, benchClusterName); !ok {
				b.Fatal("beat missed")
			}
			i++
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		var next atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			i := int(next.Add(7919)) // spread goroutines over the instances
			for pb.Next() {
				a := &args[i%benchInstances]
				if _, ok := s.Beat(a.svc, a.ip, 8080, benchClusterName); !ok {
					b.Error("beat missed")
					return
				}
				i++
			}
		})
	})
}

// BenchmarkCheckExpiry is one expiry pass over 100 000 live instances: the steady state,
// in which nothing is due.
func BenchmarkCheckExpiry(b *testing.B) {
	s, clk := newTestStore(b)
	fill(b, s)
	now := clk.Now()
	b.ReportAllocs()
	for b.Loop() {
		s.checkExpiry(now)
	}
	if _, n := s.Counts(); n != benchInstances {
		b.Fatalf("%d instances left, want %d", n, benchInstances)
	}
}
