package server

import "github.com/roster-registry/roster/distro"

// Replicator is the node's Distro replicator, for the tests of this package that check
// what it would send to the other members (FuzzWritePaths).
func Replicator(s *Server) *distro.Replicator { return s.replicator }

// EphemeralStore is the node's Distro store.
func EphemeralStore(s *Server) *distro.Store { return s.ephemeral }
