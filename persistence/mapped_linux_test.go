package persistence

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/roster-registry/roster/naming"
)

// TestReleaseMappedDropsTheFileFromRSS checks, in /proc/self/smaps, that the pages a
// full read of fsm.db mapped leave this process's resident set after a check (and after
// ReleaseMapped), and that the store still reads every record afterwards.
func TestReleaseMappedDropsTheFileFromRSS(t *testing.T) {
	s := openStore(t, "")
	svc := key("ns", "g", "svc")
	const n = 20000
	update(t, s, 1, func(tx *Tx) error {
		if err := tx.PutService(&naming.Service{Key: svc}); err != nil {
			return err
		}
		for i := range n {
			in := inst(fmt.Sprintf("10.%d.%d.%d", i>>16, (i>>8)&255, i&255), 8080, "DEFAULT")
			in.Metadata = map[string]string{"app": "bench", "version": "1.0.0", "idx": strconv.Itoa(i)}
			if err := tx.PutInstance(svc, in); err != nil {
				return err
			}
		}
		return nil
	})
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	readAll := func() {
		t.Helper()
		err := s.View(func(tx *Tx) error {
			list, err := tx.Instances(svc)
			if err == nil && len(list) != n {
				err = fmt.Errorf("%d instances, want %d", len(list), n)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	readAll()
	full := mappedRSS(t, s.Path())
	if full < 1<<20 {
		t.Fatalf("a full read left %d bytes of %s resident; the test needs a bigger file", full, s.Path())
	}
	s.ReleaseMapped()
	if after := mappedRSS(t, s.Path()); after > full/4 {
		t.Errorf("after ReleaseMapped %d bytes of the file are resident, %d before", after, full)
	}
	readAll()
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	if after := mappedRSS(t, s.Path()); after > full/4 {
		t.Errorf("after Check %d bytes of the file are resident, %d after a full read", after, full)
	}
	readAll() // still all there
}

// mappedRSS sums the Rss of this process's mappings of path.
func mappedRSS(t *testing.T, path string) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skipf("no /proc/self/smaps: %v", err)
	}
	defer f.Close()
	var total int64
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) >= 5 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":") {
			in = len(fields) >= 6 && fields[5] == path
			continue
		}
		if in && len(fields) == 3 && fields[0] == "Rss:" {
			kb, _ := strconv.ParseInt(fields[1], 10, 64)
			total += kb << 10
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return total
}
