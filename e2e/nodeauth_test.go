package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/roster-registry/roster/fsm"
	"github.com/roster-registry/roster/naming"
	"github.com/roster-registry/roster/nodeauth"
)

// raftState is the part of GET /roster/v1/operator/raft a forged message must not move.
type raftState struct {
	Leader      string `json:"leader"`
	Term        uint64 `json:"term"`
	CommitIndex uint64 `json:"commitIndex"`
	Servers     []struct {
		ID string `json:"id"`
	} `json:"servers"`
}

func raftStateOf(c *http.Client, base string) (raftState, error) {
	var v raftState
	resp, err := c.Get(base + "/roster/v1/operator/raft")
	if err != nil {
		return v, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return v, fmt.Errorf("GET raft: %s", resp.Status)
	}
	return v, json.NewDecoder(resp.Body).Decode(&v)
}

// clusterView is every node's Raft state and the instances of the watched services.
func clusterView(t *testing.T, hc *http.Client, c *Cluster, services ...string) string {
	t.Helper()
	var b strings.Builder
	for _, s := range c.Nodes {
		st, err := raftStateOf(hc, s.URL)
		if err != nil {
			t.Fatalf("%s: %v", s.NodeID, err)
		}
		// Term, commit index and leader are not part of the view: a loaded machine can
		// hold an election mid-test, which moves them legitimately. A forged Raft
		// message that was obeyed shows as its term (forgedTerm) or as its instance.
		if st.Term >= forgedTerm {
			t.Fatalf("%s is at term %d, the forged messages' term (%d): a forged message was obeyed", s.NodeID, st.Term, forgedTerm)
		}
		fmt.Fprintf(&b, "%s: servers=%d", s.NodeID, len(st.Servers))
		for _, svc := range services {
			resp, err := hc.Get(s.URL + "/nacos/v1/ns/instance/list?serviceName=" + svc)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var list struct {
				Hosts []struct {
					IP   string `json:"ip"`
					Port int    `json:"port"`
				} `json:"hosts"`
			}
			_ = json.Unmarshal(body, &list)
			fmt.Fprintf(&b, " %s=%v", svc, list.Hosts)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// forgedTerm is the term every forged Raft message carries (forgeRaft's term+10 with
// the term 1 the tests pass): far above any term a test cluster reaches by itself.
const forgedTerm = 11

// forgeRaft sends a node's Raft port an AppendEntries with a higher term and an entry,
// and an InstallSnapshot, through trans; it returns both errors.
func forgeRaft(trans *raft.NetworkTransport, id, addr string, term, index uint64) (error, error) {
	evil, _ := fsm.Encode(fsm.RegisterInstance{
		Service:  naming.ServiceKey{Namespace: naming.DefaultNamespace, Group: naming.DefaultGroup, Name: "guarded"},
		Instance: naming.Instance{IP: "10.66.6.6", Port: 666, ClusterName: "DEFAULT", Weight: 1, Healthy: true, Enabled: true},
	})
	hdr := raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("intruder"), Addr: []byte(trans.LocalAddr())}
	var aresp raft.AppendEntriesResponse
	appendErr := trans.AppendEntries(raft.ServerID(id), raft.ServerAddress(addr), &raft.AppendEntriesRequest{
		RPCHeader: hdr, Term: term + 10, PrevLogEntry: index, PrevLogTerm: term,
		Entries:           []*raft.Log{{Index: index + 1, Term: term + 10, Type: raft.LogCommand, Data: evil}},
		LeaderCommitIndex: index + 1,
	}, &aresp)
	snap := bytes.Repeat([]byte{0}, 4096)
	var sresp raft.InstallSnapshotResponse
	snapErr := trans.InstallSnapshot(raft.ServerID(id), raft.ServerAddress(addr), &raft.InstallSnapshotRequest{
		RPCHeader: hdr, SnapshotVersion: raft.SnapshotVersionMax, Term: term + 10,
		LastLogIndex: index + 1000, LastLogTerm: term + 10, Size: int64(len(snap)),
		Configuration: raft.EncodeConfiguration(raft.Configuration{Servers: []raft.Server{
			{Suffrage: raft.Voter, ID: "intruder", Address: trans.LocalAddr()}}}),
		ConfigurationIndex: index + 1000,
	}, &sresp, bytes.NewReader(snap))
	return appendErr, snapErr
}

// forgedRequests are node-to-node requests an intruder would send: a command for the
// leader to commit, a join, and Distro replicas.
func forgedRequests(t *testing.T) []struct{ method, path, body string } {
	t.Helper()
	cmd, err := fsm.Encode(fsm.RegisterInstance{
		Service:  naming.ServiceKey{Namespace: naming.DefaultNamespace, Group: naming.DefaultGroup, Name: "guarded"},
		Instance: naming.Instance{IP: "10.66.6.7", Port: 667, ClusterName: "DEFAULT", Weight: 1, Healthy: true, Enabled: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	sync := `{"from":"intruder","services":[{"service":{"namespace":"public","group":"DEFAULT_GROUP","name":"guarded-eph"},` +
		`"entries":[{"instance":{"ip":"10.66.6.8","port":668,"clusterName":"DEFAULT","weight":1,"healthy":true,"enabled":true,"ephemeral":true},"epoch":1}]}]}`
	return []struct{ method, path, body string }{
		{"POST", "/roster/v1/cluster/apply", string(cmd)},
		{"POST", "/roster/v1/cluster/join", `{"id":"intruder","raftAddr":"127.0.0.1:1","httpAddr":"127.0.0.1:2"}`},
		{"GET", "/roster/v1/cluster/info", ""},
		{"POST", "/roster/v1/distro/sync", sync},
		{"POST", "/roster/v1/distro/verify", `{"from":"intruder","checksum":1}`},
		{"GET", "/roster/v1/distro/data", ""},
		{"GET", "/roster/v1/distro/ping", ""},
	}
}

// sendForged sends every forged request to base through c (with extra headers) and
// requires 401 for each.
func sendForged(t *testing.T, c *http.Client, base string, header http.Header) {
	t.Helper()
	for _, f := range forgedRequests(t) {
		req, _ := http.NewRequest(f.method, base+f.path, strings.NewReader(f.body))
		for k, v := range header {
			req.Header[k] = v
		}
		req.Header.Set("X-Roster-Forwarded", "1")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", f.method, f.path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s %s%s without the credential: %d %s, want 401", f.method, base, f.path, resp.StatusCode, b)
		}
	}
}

// TestRaftPortAndInternalRoutesRefuseStrangers: a raw TCP connection to a node's Raft
// port without the cluster credential sends an AppendEntries and a snapshot install;
// both are dropped, and the cluster's state and term are unchanged. Forged requests to
// the internal HTTP routes (a command to commit, a join, Distro replicas) are refused
// 401 and change nothing either.
func TestRaftPortAndInternalRoutesRefuseStrangers(t *testing.T) {
	c := StartCluster(t, 3)
	leader := c.Leader()
	want := map[int]bool{}
	for i, s := range c.Nodes {
		if o, err := putInstance(s, "guarded", 7000+i); o != acked {
			t.Fatalf("register through %s: %v", s.NodeID, err)
		}
		want[7000+i] = true
	}
	c.waitHas("guarded", want, 10*time.Second)
	// Wait until every node has applied what the leader committed.
	eventually(t, 10*time.Second, func() error {
		l, err := raftStateOf(fastHTTP, leader.URL)
		if err != nil {
			return err
		}
		for _, s := range c.Nodes {
			st, err := raftStateOf(fastHTTP, s.URL)
			if err != nil {
				return err
			}
			if st.CommitIndex != l.CommitIndex {
				return fmt.Errorf("%s at commit %d, leader at %d", s.NodeID, st.CommitIndex, l.CommitIndex)
			}
		}
		return nil
	})
	before := clusterView(t, fastHTTP, c, "guarded", "guarded-eph")

	plain, err := raft.NewTCPTransportWithLogger("127.0.0.1:0", nil, 1, 2*time.Second, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	otherKey := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: nodeauth.Ephemeral().NewStreamLayer(ln, nil, nil), MaxPool: 1, Timeout: 2 * time.Second, Logger: hclog.NewNullLogger(),
	})
	defer otherKey.Close()
	for name, trans := range map[string]*raft.NetworkTransport{"no credential": plain, "another cluster key": otherKey} {
		for _, s := range c.Nodes {
			st, err := raftStateOf(fastHTTP, s.URL)
			if err != nil {
				t.Fatal(err)
			}
			appendErr, snapErr := forgeRaft(trans, s.NodeID, s.RaftAddr, st.Term, st.CommitIndex)
			if appendErr == nil {
				t.Errorf("%s: AppendEntries to %s's Raft port was answered", name, s.NodeID)
			}
			if snapErr == nil {
				t.Errorf("%s: InstallSnapshot to %s's Raft port was answered", name, s.NodeID)
			}
		}
	}

	// Internal HTTP routes: no credential, a MAC made with another key, a garbage MAC.
	stranger := nodeauth.Ephemeral().Client(5 * time.Second)
	for _, s := range c.Nodes {
		sendForged(t, fastHTTP, s.URL, nil)
		sendForged(t, stranger, s.URL, nil)
		sendForged(t, fastHTTP, s.URL, http.Header{
			nodeauth.HeaderProtocol: {"1"},
			nodeauth.HeaderAuth:     {"v1 " + strconv.FormatInt(time.Now().Unix(), 10) + " " + strings.Repeat("00", 32)},
		})
	}

	if after := clusterView(t, fastHTTP, c, "guarded", "guarded-eph"); after != before {
		t.Fatalf("the cluster changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	// The same routes answer a holder of the key, and the cluster still takes writes.
	resp, err := nodeHTTP(t).Get(leader.URL + "/roster/v1/cluster/info")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET cluster/info with the cluster key: %d", resp.StatusCode)
	}
	if o, err := putInstance(c.Nodes[1], "guarded", 7100); o != acked {
		t.Fatalf("write after the attack: %v", err)
	}
	want[7100] = true
	c.waitHas("guarded", want, 10*time.Second)
}

// TestClusterNodeNeedsACredential: --join or --bootstrap-expect without a credential is
// refused at start with a line that says what to give.
func TestClusterNodeNeedsACredential(t *testing.T) {
	s := NewServer(t, "n1")
	s.KeyFile = ""
	s.Extra = []string{"--bootstrap-expect", "3", "--join", "127.0.0.1:1,127.0.0.1:2,127.0.0.1:3"}
	code, _, stderr := roster(t, s.args()...)
	if code == 0 || !strings.Contains(stderr, "--cluster-key-file") {
		t.Fatalf("start without a credential: exit %d\n%s", code, stderr)
	}
	// A key file others can read is refused, naming the fix.
	loose := filepath.Join(t.TempDir(), "loose.key")
	if err := os.WriteFile(loose, []byte(strings.Repeat("k", 40)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(loose, 0o644); err != nil {
		t.Fatal(err)
	}
	s.KeyFile = loose
	code, _, stderr = roster(t, s.args()...)
	if code == 0 || !strings.Contains(stderr, "chmod 600") {
		t.Fatalf("start with a world-readable key: exit %d\n%s", code, stderr)
	}
}

// TestClusterWithAnotherKeyDoesNotJoin: a node given another cluster key never joins.
func TestClusterWithAnotherKeyDoesNotJoin(t *testing.T) {
	c := StartCluster(t, 3)
	leader := c.Leader()
	other := filepath.Join(t.TempDir(), "other.key")
	if err := writeClusterKey(other); err != nil {
		t.Fatal(err)
	}
	intruder := NewServer(t, "n4")
	intruder.KeyFile = other
	intruder.Extra = []string{"--join", "127.0.0.1:" + strconv.Itoa(leader.Port)}
	exited := intruder.Launch()
	// It logs the refusal; the cluster keeps three members.
	eventually(t, 20*time.Second, func() error {
		select {
		case <-exited:
			return nil
		default:
		}
		b, _ := os.ReadFile(intruder.logPath)
		if !bytes.Contains(b, []byte("refused this node's credential")) {
			return fmt.Errorf("n4 has not logged the refusal yet")
		}
		return nil
	})
	v, err := raftOf(leader)
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Servers) != 3 {
		t.Fatalf("the cluster has %d servers after a node with another key asked to join: %+v", len(v.Servers), v.Servers)
	}
}
