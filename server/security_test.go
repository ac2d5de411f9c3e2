package server

import (
	"strings"
	"testing"
)

// TestCredentialOfALoneNode: a node without flags gets a key of its own; a node whose
// data dir names other members needs one from the flags.
func TestCredentialOfALoneNode(t *testing.T) {
	var c SecurityConfig
	a, err := c.credential(false)
	if err != nil || a == nil {
		t.Fatalf("lone node: %v, %v", a, err)
	}
	if _, err := (&SecurityConfig{}).credential(true); err == nil || !strings.Contains(err.Error(), "--cluster-key-file") {
		t.Fatalf("former cluster member without a credential: %v", err)
	}
}
