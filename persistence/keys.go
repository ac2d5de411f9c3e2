package persistence

import (
	"encoding/binary"
	"errors"

	"github.com/roster-registry/roster/naming"
)

// Bucket and meta key names. They are part of the on-disk format: renaming one is a
// format version bump.
var (
	bucketMeta      = []byte("meta")
	bucketServices  = []byte("services")
	bucketInstances = []byte("instances")
	// bucketNamespaceCounts maps a namespace (its encoded component, namespacePrefix)
	// to the number of its service records and of its instances (two uint64), kept in
	// the same transactions as the records so that a quota check is O(1). A namespace
	// with neither has no key. Format version 2 on.
	bucketNamespaceCounts = []byte("nscounts")

	keyFormat        = []byte("format")    // uint32 FormatVersion
	keyApplied       = []byte("applied")   // uint64 index, uint64 term
	keyServiceCount  = []byte("services")  // uint64 number of service records
	keyInstanceCount = []byte("instances") // uint64 number of instance records
	keyAuth          = []byte("auth")      // JSON of the access-control state (package auth)
	keyNamespaces    = []byte("ns")        // JSON array of the namespace records, sorted by id
)

// Service keys are stored as an order-preserving tuple encoding of (namespace, group,
// name): each component has its 0x00 bytes escaped as 0x00 0xFF and ends with 0x00 0x01.
// No two keys collide whatever bytes the names hold, byte order equals the order of the
// tuples, and one namespace is one key prefix, so a cursor Seek lists it.
const (
	escByte  = 0x00
	escNUL   = 0xFF
	escTerm  = 0x01
	escAfter = 0x02 // escByte+escAfter sorts after every key of a finished component
)

var errBadKey = errors.New("malformed service key")

func appendComponent(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if s[i] == escByte {
			b = append(b, escByte, escNUL)
			continue
		}
		b = append(b, s[i])
	}
	return append(b, escByte, escTerm)
}

// encodeServiceKey returns a fresh slice: bbolt needs keys to stay valid until commit.
func encodeServiceKey(k naming.ServiceKey) []byte {
	b := make([]byte, 0, len(k.Namespace)+len(k.Group)+len(k.Name)+6)
	b = appendComponent(b, k.Namespace)
	b = appendComponent(b, k.Group)
	return appendComponent(b, k.Name)
}

// namespacePrefix is the key prefix of every service in namespace ns.
func namespacePrefix(ns string) []byte { return appendComponent(nil, ns) }

// nextComponent splits off one encoded component.
func nextComponent(b []byte) (string, []byte, error) {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] != escByte {
			out = append(out, b[i])
			continue
		}
		if i+1 >= len(b) {
			return "", nil, errBadKey
		}
		switch b[i+1] {
		case escNUL:
			out = append(out, escByte)
			i++
		case escTerm:
			return string(out), b[i+2:], nil
		default:
			return "", nil, errBadKey
		}
	}
	return "", nil, errBadKey
}

func decodeServiceKey(b []byte) (naming.ServiceKey, error) {
	var k naming.ServiceKey
	var err error
	if k.Namespace, b, err = nextComponent(b); err != nil {
		return k, err
	}
	if k.Group, b, err = nextComponent(b); err != nil {
		return k, err
	}
	if k.Name, b, err = nextComponent(b); err != nil {
		return k, err
	}
	if len(b) != 0 {
		return k, errBadKey
	}
	return k, nil
}

func u32(v uint32) []byte {
	b := make([]byte, 4)
	binary.BigEndian.PutUint32(b, v)
	return b
}

func u64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

func encodeApplied(index, term uint64) []byte {
	b := make([]byte, 16)
	binary.BigEndian.PutUint64(b[:8], index)
	binary.BigEndian.PutUint64(b[8:], term)
	return b
}

func decodeApplied(b []byte) (index, term uint64, ok bool) {
	if b == nil {
		return 0, 0, true // nothing applied yet
	}
	if len(b) != 16 {
		return 0, 0, false
	}
	return binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:]), true
}
