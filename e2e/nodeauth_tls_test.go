package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	nacospb "github.com/nacos-group/nacos-sdk-go/v2/api/grpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/roster-registry/roster/nodeauth"
	"github.com/roster-registry/roster/nodeauth/testcerts"
)

// tlsCluster starts three nodes with --tls-cert, --tls-key and --tls-ca (a CA made for
// the test, one certificate per node) and waits for one leader. With clientTLS the
// client ports serve TLS, and hc (which trusts the CA) is the client to use.
func tlsCluster(t *testing.T, clientTLS bool) (c *Cluster, ca *testcerts.CA, hc *http.Client) {
	t.Helper()
	ca, err := testcerts.NewCA("roster-e2e")
	if err != nil {
		t.Fatal(err)
	}
	hc = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
	dir := t.TempDir()
	c = &Cluster{t: t}
	for i := range 3 {
		c.Nodes = append(c.Nodes, NewServer(t, fmt.Sprintf("n%d", i+1)))
	}
	var join []string
	for _, s := range c.Nodes {
		join = append(join, "127.0.0.1:"+strconv.Itoa(s.Port))
	}
	for _, s := range c.Nodes {
		f, err := ca.WriteFiles(dir, s.NodeID)
		if err != nil {
			t.Fatal(err)
		}
		s.KeyFile = ""
		s.Extra = []string{"--tls-cert", f.Cert, "--tls-key", f.Key, "--tls-ca", f.CA,
			"--client-tls=" + strconv.FormatBool(clientTLS),
			"--bootstrap-expect", "3", "--join", strings.Join(join, ",")}
		if clientTLS {
			s.URL = "https://127.0.0.1:" + strconv.Itoa(s.Port)
			s.Client = hc
		} else {
			hc = fastHTTP
		}
		s.Launch()
	}
	for _, s := range c.Nodes {
		s.WaitReady()
	}
	eventually(t, 20*time.Second, func() error {
		id := ""
		for _, s := range c.Nodes {
			st, err := raftStateOf(hc, s.URL)
			if err != nil {
				return err
			}
			if st.Leader == "" || id != "" && st.Leader != id || len(st.Servers) != 3 {
				return fmt.Errorf("%s: leader %q, %d servers", s.NodeID, st.Leader, len(st.Servers))
			}
			id = st.Leader
		}
		return nil
	})
	return c, ca, hc
}

// listPorts lists the ports of svc's instances on s.
func listPorts(hc *http.Client, s *Server, svc string) (map[int]bool, error) {
	resp, err := hc.Get(s.URL + "/nacos/v1/ns/instance/list?serviceName=" + url.QueryEscape(svc))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("list: %d %s", resp.StatusCode, b)
	}
	var info struct {
		Hosts []struct {
			Port int `json:"port"`
		} `json:"hosts"`
	}
	if err := json.Unmarshal(b, &info); err != nil {
		return nil, err
	}
	out := map[int]bool{}
	for _, h := range info.Hosts {
		out[h.Port] = true
	}
	return out, nil
}

func send(hc *http.Client, method, u string) (int, string, error) {
	req, _ := http.NewRequest(method, u, nil)
	resp, err := hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// replicates checks that writes through any node reach every node: persistent ones
// forwarded to the leader, ephemeral ones forwarded to the responsible member and
// replicated by Distro, all of it node-to-node traffic under the credential.
func replicates(t *testing.T, c *Cluster, hc *http.Client) {
	t.Helper()
	for i, s := range c.Nodes {
		code, body, err := send(hc, "POST", s.URL+"/nacos/v1/ns/instance?serviceName=tls-persistent&ip=127.0.0.1&port="+strconv.Itoa(8000+i)+"&ephemeral=false")
		if err != nil || code != 200 {
			t.Fatalf("persistent write through %s: %d %s %v", s.NodeID, code, body, err)
		}
	}
	eventually(t, 10*time.Second, func() error {
		for _, s := range c.Nodes {
			got, err := listPorts(hc, s, "tls-persistent")
			if err != nil {
				return err
			}
			if len(got) != 3 {
				return fmt.Errorf("%s lists %v", s.NodeID, got)
			}
		}
		return nil
	})
	// Ephemeral instances, kept alive by beats while the test looks.
	eventually(t, 10*time.Second, func() error {
		for i, s := range c.Nodes {
			q := "serviceName=tls-ephemeral&ip=10.0.0." + strconv.Itoa(i+1) + "&port=9000"
			if code, body, err := send(hc, "POST", s.URL+"/nacos/v1/ns/instance?"+q); err != nil || code != 200 {
				return fmt.Errorf("ephemeral write through %s: %d %s %v", s.NodeID, code, body, err)
			}
		}
		for _, s := range c.Nodes {
			resp, err := hc.Get(s.URL + "/nacos/v1/ns/instance/list?serviceName=tls-ephemeral")
			if err != nil {
				return err
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			for i := range c.Nodes {
				if !strings.Contains(string(b), `"10.0.0.`+strconv.Itoa(i+1)+`"`) {
					return fmt.Errorf("%s does not list 10.0.0.%d yet: %s", s.NodeID, i+1, b)
				}
			}
		}
		return nil
	})
}

// refusesStrangersOnRaft checks every Raft port against a plain transport and against
// a TLS transport with a certificate of another CA.
func refusesStrangersOnRaft(t *testing.T, c *Cluster) {
	t.Helper()
	plain, err := raft.NewTCPTransportWithLogger("127.0.0.1:0", nil, 1, 2*time.Second, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	other, err := testcerts.NewCA("other")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := other.TLSCert("intruder")
	if err != nil {
		t.Fatal(err)
	}
	cred, err := nodeauth.NewTLS(cert, other.Pool())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stranger := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: cred.NewStreamLayer(ln, nil, nil), MaxPool: 1, Timeout: 2 * time.Second, Logger: hclog.NewNullLogger(),
	})
	defer stranger.Close()
	for name, trans := range map[string]*raft.NetworkTransport{"no credential": plain, "another CA": stranger} {
		for _, s := range c.Nodes {
			appendErr, snapErr := forgeRaft(trans, s.NodeID, s.RaftAddr, 1, 1)
			if appendErr == nil || snapErr == nil {
				t.Errorf("%s: forged Raft messages to %s were answered: %v, %v", name, s.NodeID, appendErr, snapErr)
			}
		}
	}
}

// TestClusterMutualTLS: three nodes with certificates of one CA form a cluster over
// mutual TLS; the HTTP and gRPC client ports serve TLS with the same certificate; a
// client without a certificate is served but refused the internal routes; the Raft
// ports refuse plain connections and certificates of another CA.
func TestClusterMutualTLS(t *testing.T) {
	c, ca, hc := tlsCluster(t, true)
	replicates(t, c, hc)
	before := clusterView(t, hc, c, "tls-persistent", "guarded")

	s := c.Nodes[0]
	plainURL := "http://127.0.0.1:" + strconv.Itoa(s.Port)
	if code, _, err := send(fastHTTP, "GET", plainURL+"/nacos/v1/ns/instance/list?serviceName=tls-persistent"); err == nil && code == 200 {
		t.Fatalf("plain HTTP to a TLS client port was served")
	}
	for _, n := range c.Nodes {
		sendForged(t, hc, n.URL, nil) // TLS, CA trusted, no client certificate
	}
	refusesStrangersOnRaft(t, c)
	if after := clusterView(t, hc, c, "tls-persistent", "guarded"); after != before {
		t.Fatalf("the cluster changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	// gRPC: TLS with ALPN h2, as Nacos 2.x clients with TLS on speak it.
	grpcAddr := "127.0.0.1:" + strconv.Itoa(s.Port+1000)
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := nacospb.NewRequestClient(conn).Request(ctx, serverCheck())
	if err != nil {
		t.Fatalf("ServerCheckRequest over TLS: %v", err)
	}
	if typ := p.GetMetadata().GetType(); typ != "ServerCheckResponse" {
		t.Fatalf("ServerCheckRequest over TLS answered %s: %s", typ, p.GetBody().GetValue())
	}
	// A plain gRPC client cannot use the TLS port.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel2()
	insecureConn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer insecureConn.Close()
	if _, err := nacospb.NewRequestClient(insecureConn).Request(ctx2, serverCheck()); err == nil {
		t.Fatal("a plain gRPC request to the TLS port was answered")
	}
}

// TestClusterMutualTLSPlainClientPorts: with --client-tls=false the client ports stay
// plain (Nacos clients that cannot speak TLS), while members still reach one another's
// HTTP port over mutual TLS on the same port and plain requests to internal routes are
// refused.
func TestClusterMutualTLSPlainClientPorts(t *testing.T) {
	c, _, hc := tlsCluster(t, false)
	replicates(t, c, hc)
	before := clusterView(t, hc, c, "tls-persistent", "guarded")
	for _, n := range c.Nodes {
		sendForged(t, fastHTTP, n.URL, nil)
		sendForged(t, nodeauth.Ephemeral().Client(5*time.Second), n.URL, nil)
	}
	refusesStrangersOnRaft(t, c)
	if after := clusterView(t, hc, c, "tls-persistent", "guarded"); after != before {
		t.Fatalf("the cluster changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// serverCheck is the first request of every Nacos 2.x client.
func serverCheck() *nacospb.Payload {
	return &nacospb.Payload{
		Metadata: &nacospb.Metadata{Type: "ServerCheckRequest", Headers: map[string]string{}},
		Body:     &anypb.Any{Value: []byte(`{"headers":{},"module":"internal"}`)},
	}
}
