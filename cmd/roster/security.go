package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net"
	"time"

	"github.com/roster-registry/roster/nodeauth"
)

// securityConfig is the node credential and client-port TLS part of `roster server`.
type securityConfig struct {
	TLSCert        string
	TLSKey         string
	TLSCA          string
	ClusterKeyFile string
	ClientTLS      bool

	cred *nodeauth.Credential // set by credential
}

func securityFlags(fs *flag.FlagSet, c *securityConfig) {
	fs.StringVar(&c.TLSCert, "tls-cert", "", "PEM certificate of this node; with --tls-key and --tls-ca nodes authenticate one another by mutual TLS and the client ports serve TLS")
	fs.StringVar(&c.TLSKey, "tls-key", "", "PEM private key of --tls-cert")
	fs.StringVar(&c.TLSCA, "tls-ca", "", "PEM CA that signed every member's certificate (a CA for this cluster alone)")
	fs.StringVar(&c.ClusterKeyFile, "cluster-key-file", "", "file with the key every member shares (at least 32 bytes, mode 600), when no certificates are given")
	fs.BoolVar(&c.ClientTLS, "client-tls", true, "with --tls-cert: serve the HTTP and gRPC client ports over TLS (false keeps them plain for clients; members still use mutual TLS)")
}

func (c *securityConfig) tlsGiven() bool { return c.TLSCert != "" || c.TLSKey != "" || c.TLSCA != "" }

// validate checks the flags alone; clustered is whether --join or --bootstrap-expect
// was given.
func (c *securityConfig) validate(clustered bool) error {
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
// one from the flags; a lone node without flags gets a random key of its own, which no
// other process can present, so its Raft port and internal routes accept nobody.
func (c *securityConfig) credential(clustered bool) (*nodeauth.Credential, error) {
	var err error
	switch {
	case c.TLSCA != "":
		c.cred, err = nodeauth.LoadTLS(c.TLSCert, c.TLSKey, c.TLSCA)
	case c.ClusterKeyFile != "":
		c.cred, err = nodeauth.LoadKeyFile(c.ClusterKeyFile)
	case clustered:
		err = fmt.Errorf("this node's data dir names other members; %w", errNoClusterCredential)
	default:
		c.cred = nodeauth.Ephemeral()
	}
	return c.cred, err
}

// clientTLS reports whether the client ports serve TLS.
func (c *securityConfig) clientTLS() bool {
	return c.cred != nil && c.cred.Mode() == nodeauth.ModeMutualTLS && c.ClientTLS
}

// httpListener puts the HTTP port behind TLS when certificates are given: TLS only with
// --client-tls (members present their certificate, clients none), else plain for
// clients and TLS for members on the same port.
func (c *securityConfig) httpListener(ln net.Listener) net.Listener {
	if c.cred == nil || c.cred.Mode() != nodeauth.ModeMutualTLS {
		return ln
	}
	cfg := nodeauth.PortTLS(*c.cred.Certificate(), c.cred, []string{"http/1.1"})
	if c.ClientTLS {
		return tls.NewListener(ln, cfg)
	}
	return nodeauth.SniffTLS(ln, cfg, 10*time.Second)
}

// grpcListener puts the gRPC port behind TLS (ALPN h2, as gRPC clients require) with
// --client-tls.
func (c *securityConfig) grpcListener(ln net.Listener) net.Listener {
	if !c.clientTLS() {
		return ln
	}
	return tls.NewListener(ln, nodeauth.PortTLS(*c.cred.Certificate(), nil, []string{"h2"}))
}

// mode names the credential and client TLS for the start line.
func (c *securityConfig) mode() string {
	if c.cred == nil {
		return "none"
	}
	m := string(c.cred.Mode())
	if c.clientTLS() {
		m += "+client-tls"
	}
	return m
}
