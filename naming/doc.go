// Package naming holds Roster's domain: namespaces, groups, services, clusters and
// instances, their keys, Nacos' parameter rules and the one error type that carries a
// Nacos status and text from any layer to the wire.
//
// It is the leaf of the package graph: it imports nothing of Roster's, and every other
// package speaks in its types.
package naming
