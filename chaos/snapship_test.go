package chaos

import (
	"encoding/json"
	"fmt"
	"hash/crc64"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestR9DamagedSnapshotToLaggingFollower: the leader's newest Raft snapshot is damaged
// while a follower that needs it is down; the follower is started again and the leader
// must send it a snapshot. Two damages: one bit flipped (hashicorp/raft's CRC in
// meta.json no longer matches: the leader cannot open it, so ships nothing), and one bit
// flipped with the CRC recomputed (a damage raft's check misses: the follower's restore
// must refuse it by the stream's SHA-256). Either way the follower never serves a state
// other than the one it had or the leader's, the cluster takes writes meanwhile, and a
// fresh snapshot on the leader brings the follower up to date.
func TestR9DamagedSnapshotToLaggingFollower(t *testing.T) {
	scenario(t, "R9s", "damaged Raft snapshot shipped to a lagging follower", func(t *testing.T, f *Figures) {
		const threshold = 100
		c := StartCluster(t, 3, "--snapshot-threshold", strconv.Itoa(threshold), "--trailing-logs", "50", "--snapshot-interval", "100ms")
		rng := newRand(19)
		seen := map[string]int{} // evidence lines already in a node's log, by node and text
		for round, fixCRC := range []bool{false, true} {
			svc := fmt.Sprintf("r9s-%d", round)
			leader := c.Leader(30 * time.Second)
			follower := c.Followers(leader)[0]
			fillAt(t, leader, svc, unprobedIP, 7000, size(100, 500), 8)
			if _, err := converged(c.Nodes, []string{svc}, 30*time.Second); err != nil {
				t.Fatal(err)
			}
			before, err := stateOf(follower, []string{svc})
			if err != nil {
				t.Fatal(err)
			}
			follower.Kill9()
			// Enough writes that the leader snapshots and compacts past the follower.
			fillAt(t, leader, svc, unprobedIP, 9000, size(400, 2000), 8)
			settledSnapshot(t, leader.DataDir)
			after, err := stateOf(leader, []string{svc})
			if err != nil {
				t.Fatal(err)
			}
			// Every running member's newest snapshot is damaged, and so is any it takes
			// until the damage has been met: leadership may move under load, and health
			// flips are writes that can make a fresh snapshot before the follower asks.
			others := c.Followers(follower)
			damaged := map[string]bool{}
			damageNewest := func() {
				for _, n := range others {
					s := snapshots(n.DataDir)
					if len(s) == 0 || damaged[s[len(s)-1]] {
						continue
					}
					newest := s[len(s)-1]
					how := damage(t, filepath.Join(newest, "state.bin"), false, rng.IntN)
					if fixCRC {
						rewriteSnapshotCRC(t, newest)
						how += ", CRC recomputed"
					}
					damaged[newest] = true
					t.Logf("round %d: %s's %s: %s", round, n.ID, filepath.Base(newest), how)
				}
			}
			damageNewest()
			t.Logf("round %d: leader %s, lagging follower %s", round, leader.ID, follower.ID)

			// The follower comes back; whatever it lists is its old state or the
			// leader's, never something between.
			exited := follower.Launch()
			stopSampling := make(chan struct{})
			sampled := make(chan [2]int)
			go func() {
				samples, wrong := 0, 0
				for {
					select {
					case <-stopSampling:
						sampled <- [2]int{samples, wrong}
						return
					case <-time.After(100 * time.Millisecond):
					}
					got, err := stateOf(follower, []string{svc})
					if err != nil {
						continue // not ready (503) or not listening yet
					}
					samples++
					if got != before && got != after {
						wrong++
						t.Errorf("round %d: follower %s serves a state that is neither its own nor the leader's", round, follower.ID)
					}
				}
			}()
			// The evidence that the damaged snapshot was met: raft's CRC check where it
			// was to be sent, or the follower's restore refusing it.
			evidence := "CRC mismatch"
			where := others
			if fixCRC {
				evidence, where = "snapshot checksum mismatch", []*Node{follower}
			}
			eventually(t, 30*time.Second, func() error {
				select {
				case <-exited:
					return fmt.Errorf("follower %s exited: %s", follower.ID, tail(follower.logPath, 5))
				default:
				}
				for _, n := range where {
					if strings.Count(n.Log(), evidence) > seen[n.ID+evidence] {
						return nil
					}
				}
				damageNewest()
				return fmt.Errorf("no new %q in the logs of %v yet: no damaged snapshot was sent", evidence, ids(where))
			})
			for _, n := range append(others, follower) {
				seen[n.ID+evidence] = strings.Count(n.Log(), evidence)
			}
			f.Max("snapshots damaged in a round", float64(len(damaged)))
			// The cluster takes writes meanwhile, and they make a fresh snapshot, which
			// the follower takes.
			t0 := time.Now()
			acked := fillAt(t, leader, svc+"-w", unprobedIP, 20000, 2*threshold, 4)
			f.Max("writes refused while the follower was refusing", float64(2*threshold-len(acked)))
			if len(acked) < 2*threshold {
				t.Errorf("round %d: %d of %d writes refused while the follower lagged", round, 2*threshold-len(acked), 2*threshold)
			}
			err = within(60*time.Second, func() error {
				got, err := stateOf(follower, []string{svc})
				if err != nil {
					return err
				}
				if got != after {
					return fmt.Errorf("follower %s has not caught up", follower.ID)
				}
				return nil
			})
			f.Max("follower up to date after the fresh snapshot, s", time.Since(t0).Seconds())
			close(stopSampling)
			s := <-sampled
			f.Set(fmt.Sprintf("round %d follower samples", round), float64(s[0]))
			f.Max("follower samples neither old nor leader state", float64(s[1]))
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
			// It starts again from what it kept (the refused snapshot must not stop it).
			follower.Kill9()
			follower.Start()
			if got, err := stateOf(follower, []string{svc}); err != nil || got != after {
				t.Errorf("round %d: restarted follower %s serves another state (%v)", round, follower.ID, err)
			}
		}
	})
}

func ids(nodes []*Node) []string {
	var out []string
	for _, n := range nodes {
		out = append(out, n.ID)
	}
	return out
}

// settledSnapshot waits until the newest Raft snapshot of a data dir stays the newest
// for a second (the writes that made it are over) and returns its directory.
func settledSnapshot(t testing.TB, dataDir string) string {
	t.Helper()
	var last string
	same := 0
	deadline := time.Now().Add(30 * time.Second)
	for same < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("snapshots in %s did not settle", dataDir)
		}
		s := snapshots(dataDir)
		cur := ""
		if len(s) > 0 {
			cur = s[len(s)-1]
		}
		if cur != "" && cur == last {
			same++
		} else {
			same = 0
		}
		last = cur
		time.Sleep(200 * time.Millisecond)
	}
	return last
}

// rewriteSnapshotCRC sets the CRC in a Raft snapshot's meta.json to that of its
// state.bin as it is now, so that hashicorp/raft's own check passes.
func rewriteSnapshotCRC(t testing.TB, dir string) {
	t.Helper()
	state, err := os.ReadFile(filepath.Join(dir, "state.bin"))
	if err != nil {
		t.Fatal(err)
	}
	h := crc64.New(crc64.MakeTable(crc64.ECMA))
	h.Write(state)
	metaPath := filepath.Join(dir, "meta.json")
	b, err := os.ReadFile(metaPath)
	if err != nil {
		t.Fatal(err)
	}
	var meta map[string]any
	if err := json.Unmarshal(b, &meta); err != nil {
		t.Fatal(err)
	}
	if _, ok := meta["CRC"]; !ok {
		t.Fatalf("%s has no CRC field", metaPath)
	}
	meta["CRC"] = h.Sum(nil) // []byte: base64, as raft writes it
	if b, err = json.Marshal(meta); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(metaPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
