package server

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/roster-registry/roster/nodeauth"
)

// SecurityConfig is the node credential and client-port TLS. Members of a cluster need
// the same credential: either a shared key file or certificates signed by one CA.
type SecurityConfig struct {
	// TLSCert and TLSKey are this node's PEM certificate and key, TLSCA the PEM CA that
	// signed every member's certificate; the three go together. With them nodes
	// authenticate one another by mutual TLS.
	TLSCert string
	TLSKey  string
	TLSCA   string
	// ClusterKeyFile holds the key every member shares (at least 32 bytes, mode 600),
	// when no certificates are given.
	ClusterKeyFile string
	// ClientTLS, with certificates, serves the HTTP and gRPC client ports over TLS;
	// false keeps them plain for clients while members still use mutual TLS.
	ClientTLS bool
}

func defaultSecurityConfig() SecurityConfig { return SecurityConfig{ClientTLS: true} }

func (c *SecurityConfig) tlsGiven() bool { return c.TLSCert != "" || c.TLSKey != "" || c.TLSCA != "" }

// validate checks the settings alone; clustered is whether Join or BootstrapExpect
// was given.
func (c *SecurityConfig) validate(clustered bool) error {
	switch {
	case c.tlsGiven() && (c.TLSCert == "" || c.TLSKey == "" || c.TLSCA == ""):
		return errors.New("invalid value for --tls-cert, --tls-key, --tls-ca: the three go together")
	case c.tlsGiven() && c.ClusterKeyFile != "":
		return errors.New("invalid value for --cluster-key-file: give either it or --tls-cert, --tls-key and --tls-ca, not both")
	case clustered && !c.tlsGiven() && c.ClusterKeyFile == "":
		return errNoClusterCredential
	}
	return nil
}

var errNoClusterCredential = errors.New("a cluster needs a node credential: give every node the same --cluster-key-file " +
	"(e.g. openssl rand -hex 32 > cluster.key; chmod 600 cluster.key) or --tls-cert, --tls-key and --tls-ca")

// credential loads the node credential. A node that is (or was) part of a cluster needs
// one from the settings; a lone node without any gets a random key of its own, which no
// other process can present, so its Raft port and internal routes accept nobody.
func (c *SecurityConfig) credential(clustered bool) (*nodeauth.Credential, error) {
	switch {
	case c.TLSCA != "":
		return nodeauth.LoadTLS(c.TLSCert, c.TLSKey, c.TLSCA)
	case c.ClusterKeyFile != "":
		return nodeauth.LoadKeyFile(c.ClusterKeyFile)
	case clustered:
		return nil, fmt.Errorf("this node's data dir names other members; %w", errNoClusterCredential)
	default:
		return nodeauth.Ephemeral(), nil
	}
}

// clientTLS reports whether the client ports serve TLS.
func (c *SecurityConfig) clientTLS(cred *nodeauth.Credential) bool {
	return cred != nil && cred.Mode() == nodeauth.ModeMutualTLS && c.ClientTLS
}

// httpListener puts the HTTP port behind TLS when certificates are given: TLS only with
// ClientTLS (members present their certificate, clients none), else plain for clients
// and TLS for members on the same port.
func (c *SecurityConfig) httpListener(ln net.Listener, cred *nodeauth.Credential) net.Listener {
	if cred == nil || cred.Mode() != nodeauth.ModeMutualTLS {
		return ln
	}
	cfg := nodeauth.PortTLS(*cred.Certificate(), cred, []string{"http/1.1"})
	if c.ClientTLS {
		return tls.NewListener(ln, cfg)
	}
	return nodeauth.SniffTLS(ln, cfg, 10*time.Second)
}

// grpcListener puts the gRPC port behind TLS (ALPN h2, as gRPC clients require) with
// ClientTLS.
func (c *SecurityConfig) grpcListener(ln net.Listener, cred *nodeauth.Credential) net.Listener {
	if !c.clientTLS(cred) {
		return ln
	}
	return tls.NewListener(ln, nodeauth.PortTLS(*cred.Certificate(), nil, []string{"h2"}))
}

// mode names the credential and client TLS for the start line.
func (c *SecurityConfig) mode(cred *nodeauth.Credential) string {
	if cred == nil {
		return "none"
	}
	m := string(cred.Mode())
	if c.clientTLS(cred) {
		m += "+client-tls"
	}
	return m
}
