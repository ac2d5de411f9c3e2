package persistence

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/roster-registry/roster/naming"
)

var testNamespaces = []string{"public", "dev", "", "a\x00b"}

// recountNamespaces counts each namespace's service records and instances.
func recountNamespaces(t *testing.T, s *Store) map[string][2]int {
	t.Helper()
	out := map[string][2]int{}
	err := s.View(func(tx *Tx) error {
		services, err := tx.Services("")
		if err != nil {
			return err
		}
		for _, svc := range services {
			c := out[svc.Key.Namespace]
			c[0]++
			out[svc.Key.Namespace] = c
		}
		return tx.ForEachInstance(func(k naming.ServiceKey, _ *naming.Instance) error {
			c := out[k.Namespace]
			c[1]++
			out[k.Namespace] = c
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func checkNamespaceCounts(t *testing.T, s *Store, when string) {
	t.Helper()
	want := recountNamespaces(t, s)
	err := s.View(func(tx *Tx) error {
		for _, ns := range testNamespaces {
			sv, in, err := tx.NamespaceCounts(ns)
			if err != nil {
				return err
			}
			if got := [2]int{sv, in}; got != want[ns] {
				t.Errorf("%s: namespace %q counters %v, recount %v", when, ns, got, want[ns])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestNamespaceCountsFollowEveryWrite: random puts and deletes of services and
// instances (instances with and without a service record; services deleted with their
// instances), some in updates that fail and roll back, keep every namespace's counters
// equal to a recount; so does a restore from a snapshot and a reopen.
func TestNamespaceCountsFollowEveryWrite(t *testing.T) {
	s := openStore(t, "")
	rng := rand.New(rand.NewPCG(3, 5))
	for i := range 300 {
		fail := rng.IntN(8) == 0
		err := s.Update(uint64(i+1), 1, func(tx *Tx) error {
			for range 1 + rng.IntN(6) {
				k := key(testNamespaces[rng.IntN(len(testNamespaces))], "G", fmt.Sprintf("s%d", rng.IntN(4)))
				ip := fmt.Sprintf("10.0.0.%d", rng.IntN(6))
				var err error
				switch rng.IntN(6) {
				case 0:
					err = tx.PutService(&naming.Service{Key: k})
				case 1:
					err = tx.DeleteService(k)
				case 2, 3:
					err = tx.PutInstance(k, inst(ip, 80, "DEFAULT"))
				default:
					_, err = tx.DeleteInstance(k, ip+"#80#DEFAULT")
				}
				if err != nil {
					return err
				}
			}
			if fail {
				return errors.New("rolled back on purpose")
			}
			return nil
		})
		if fail != (err != nil) {
			t.Fatalf("update %d: %v (meant to fail: %v)", i+1, err, fail)
		}
		checkNamespaceCounts(t, s, fmt.Sprintf("update %d", i+1))
	}

	b, _ := snapshotBytes(t, s)
	dst := openStore(t, "")
	if err := dst.Restore(bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	checkNamespaceCounts(t, dst, "restored")

	path := s.Path()
	want := recountNamespaces(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	re := openStore(t, path)
	checkNamespaceCounts(t, re, "reopened")
	if got := recountNamespaces(t, re); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("reopened store holds %v, before %v", got, want)
	}
}

// TestOpenCountsNamespacesOfAFormat1File: a file written before the per-namespace
// counters existed (format 1, no counters bucket) is migrated on open: counted once,
// recorded as format 2, and kept from then on.
func TestOpenCountsNamespacesOfAFormat1File(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fsm.db")
	s := openStore(t, path)
	update(t, s, 1, func(tx *Tx) error {
		for i := range 7 {
			k := key(testNamespaces[i%len(testNamespaces)], "G", fmt.Sprintf("s%d", i))
			if err := tx.PutService(&naming.Service{Key: k}); err != nil {
				return err
			}
			for j := range i {
				if err := tx.PutInstance(k, inst(fmt.Sprintf("10.0.%d.%d", i, j), 80, "DEFAULT")); err != nil {
					return err
				}
			}
		}
		return nil
	})
	want := recountNamespaces(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Make it the file format 1 wrote.
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket(bucketNamespaceCounts); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(keyFormat, u32(1))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}

	re := openStore(t, path)
	checkNamespaceCounts(t, re, "migrated")
	if got := recountNamespaces(t, re); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("migrated store holds %v, before %v", got, want)
	}
	update(t, re, 2, func(tx *Tx) error { return tx.PutInstance(key("dev", "G", "new"), inst("10.9.9.9", 1, "DEFAULT")) })
	checkNamespaceCounts(t, re, "after a write to the migrated file")
	if err := re.View(func(tx *Tx) error {
		if v := tx.meta().Get(keyFormat); !bytes.Equal(v, u32(FormatVersion)) {
			return fmt.Errorf("format after the migration %x, want %d", v, FormatVersion)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
