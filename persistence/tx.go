package persistence

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/roster-registry/roster/naming"
)

// Tx is a transaction handed to Update or View fn. It is valid only inside fn, never
// commits by itself, and every value it returns is a fresh copy the caller may keep.
type Tx struct {
	tx   *bolt.Tx
	path string
	// readOnly marks a View that reads inside an open batch's write transaction, where
	// bbolt itself would not refuse a write.
	readOnly bool
}

var errReadOnly = errors.New("persistence: write in a read-only transaction")

// writable refuses a write inside View.
func (tx *Tx) writable() error {
	if tx.readOnly || !tx.tx.Writable() {
		return errReadOnly
	}
	return nil
}

func (tx *Tx) services() *bolt.Bucket  { return tx.tx.Bucket(bucketServices) }
func (tx *Tx) instances() *bolt.Bucket { return tx.tx.Bucket(bucketInstances) }
func (tx *Tx) meta() *bolt.Bucket      { return tx.tx.Bucket(bucketMeta) }

func (tx *Tx) corrupt(what string, err error) error {
	return fmt.Errorf("persistence: %s: corrupt %s: %w", tx.path, what, err)
}

func (tx *Tx) writeErr(op string, err error) error {
	return fmt.Errorf("persistence: %s: %s: %w", tx.path, op, err)
}

// AuthState returns the stored access-control document (users, roles, grants, token
// keys), or nil when there is none yet. Its content belongs to package auth; the store
// only keeps it and carries it through snapshots.
func (tx *Tx) AuthState() []byte {
	v := tx.meta().Get(keyAuth)
	if v == nil {
		return nil
	}
	return bytes.Clone(v)
}

// PutAuthState replaces the access-control document. It must be valid JSON.
func (tx *Tx) PutAuthState(doc []byte) error {
	if err := tx.writable(); err != nil {
		return err
	}
	if !json.Valid(doc) {
		return errors.New("persistence: auth state is not valid JSON")
	}
	if len(doc) > maxRecordLen {
		return fmt.Errorf("persistence: auth state of %d bytes is over the limit of %d", len(doc), maxRecordLen)
	}
	if err := tx.meta().Put(keyAuth, doc); err != nil {
		return tx.writeErr("put auth state", err)
	}
	return nil
}

// Service returns the service record, or nil, nil when there is none.
func (tx *Tx) Service(k naming.ServiceKey) (*naming.Service, error) {
	v := tx.services().Get(encodeServiceKey(k))
	if v == nil {
		return nil, nil
	}
	var svc naming.Service
	if err := json.Unmarshal(v, &svc); err != nil {
		return nil, tx.corrupt("service "+k.String(), err)
	}
	return &svc, nil
}

// PutService creates or overwrites the record of svc.Key.
func (tx *Tx) PutService(svc *naming.Service) error {
	if svc == nil {
		return errors.New("persistence: put service: nil service")
	}
	if err := tx.writable(); err != nil {
		return err
	}
	data, err := json.Marshal(svc)
	if err != nil {
		return fmt.Errorf("persistence: encode service %s: %w", svc.Key, err)
	}
	b := tx.services()
	key := encodeServiceKey(svc.Key)
	existed := b.Get(key) != nil
	if err := b.Put(key, data); err != nil {
		return tx.writeErr("put service "+svc.Key.String(), err)
	}
	if !existed {
		if err := tx.addCount(keyServiceCount, 1); err != nil {
			return err
		}
		return tx.addNamespaceCount(svc.Key.Namespace, 1, 0)
	}
	return nil
}

// DeleteService removes the service record and all its instances. Deleting what is not
// there is not an error.
func (tx *Tx) DeleteService(k naming.ServiceKey) error {
	if err := tx.writable(); err != nil {
		return err
	}
	key := encodeServiceKey(k)
	b := tx.services()
	if b.Get(key) != nil {
		if err := b.Delete(key); err != nil {
			return tx.writeErr("delete service "+k.String(), err)
		}
		if err := tx.addCount(keyServiceCount, -1); err != nil {
			return err
		}
		if err := tx.addNamespaceCount(k.Namespace, -1, 0); err != nil {
			return err
		}
	}
	ib := tx.instances()
	nb := ib.Bucket(key)
	if nb == nil {
		return nil
	}
	n := 0
	c := nb.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		n++
	}
	if err := ib.DeleteBucket(key); err != nil {
		return tx.writeErr("delete instances of "+k.String(), err)
	}
	if err := tx.addCount(keyInstanceCount, -n); err != nil {
		return err
	}
	return tx.addNamespaceCount(k.Namespace, 0, -n)
}

// Services lists the service records of one namespace ("" = all), sorted by key
// (namespace, group, name).
func (tx *Tx) Services(namespace string) ([]*naming.Service, error) {
	var prefix []byte
	if namespace != "" {
		prefix = namespacePrefix(namespace)
	}
	out := []*naming.Service{}
	c := tx.services().Cursor()
	k, v := c.First()
	if prefix != nil {
		k, v = c.Seek(prefix)
	}
	for ; k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		var svc naming.Service
		if err := json.Unmarshal(v, &svc); err != nil {
			sk, _ := decodeServiceKey(k)
			return nil, tx.corrupt("service "+sk.String(), err)
		}
		out = append(out, &svc)
	}
	return out, nil
}

// Namespaces lists, sorted, the namespaces that hold a service record or an instance.
// It costs one seek per namespace.
func (tx *Tx) Namespaces() ([]string, error) {
	seen := map[string]bool{}
	var out []string
	for _, b := range []*bolt.Bucket{tx.services(), tx.instances()} {
		c := b.Cursor()
		for k, _ := c.First(); k != nil; {
			ns, _, err := nextComponent(k)
			if err != nil {
				return nil, tx.corrupt("service key", err)
			}
			if !seen[ns] {
				seen[ns] = true
				out = append(out, ns)
			}
			// Every key of namespace ns starts with enc(ns)+00 01; the first key past
			// them is at or after enc(ns)+00 02.
			next := namespacePrefix(ns)
			next[len(next)-1] = escAfter
			k, _ = c.Seek(next)
		}
	}
	slices.Sort(out)
	return out, nil
}

// Stamp is what the FSM records about the writes to a persistent instance, kept in the
// instance's record beside it (and carried by snapshots from version 3 on). Records
// written before stamps existed have the zero Stamp.
type Stamp struct {
	// Revision is the Raft index of the last write to the instance.
	Revision uint64 `json:"revision,omitempty"`
	// FlipEpoch is the membership epoch of the last health flip applied to it.
	FlipEpoch uint64 `json:"flipEpoch,omitempty"`
}

// storedInstance is an instance record as the store keeps it: the instance's fields and
// its stamp in one JSON object. Readers that want only the instance decode it as a
// naming.Instance, which ignores the stamp.
type storedInstance struct {
	naming.Instance
	Stamp
}

// StampedInstance is an instance with its stamp.
type StampedInstance struct {
	Instance *naming.Instance
	Stamp    Stamp
}

func (tx *Tx) instanceRecord(k naming.ServiceKey, instKey string) []byte {
	nb := tx.instances().Bucket(encodeServiceKey(k))
	if nb == nil {
		return nil
	}
	return nb.Get([]byte(instKey))
}

// Instance returns one instance by its Key() (ip#port#cluster), or nil, nil.
func (tx *Tx) Instance(k naming.ServiceKey, instKey string) (*naming.Instance, error) {
	v := tx.instanceRecord(k, instKey)
	if v == nil {
		return nil, nil
	}
	var inst naming.Instance
	if err := json.Unmarshal(v, &inst); err != nil {
		return nil, tx.corrupt("instance "+instKey+" of "+k.String(), err)
	}
	return &inst, nil
}

// InstanceStamped returns one instance with its stamp, or nil when there is none.
func (tx *Tx) InstanceStamped(k naming.ServiceKey, instKey string) (*naming.Instance, Stamp, error) {
	v := tx.instanceRecord(k, instKey)
	if v == nil {
		return nil, Stamp{}, nil
	}
	var rec storedInstance
	if err := json.Unmarshal(v, &rec); err != nil {
		return nil, Stamp{}, tx.corrupt("instance "+instKey+" of "+k.String(), err)
	}
	return &rec.Instance, rec.Stamp, nil
}

// Instances lists the instances of a service, sorted by Key().
func (tx *Tx) Instances(k naming.ServiceKey) ([]*naming.Instance, error) {
	out := []*naming.Instance{}
	err := tx.forEachRecord(k, func(ik, v []byte) error {
		var inst naming.Instance
		if err := json.Unmarshal(v, &inst); err != nil {
			return tx.corrupt("instance "+string(ik)+" of "+k.String(), err)
		}
		out = append(out, &inst)
		return nil
	})
	return out, err
}

// InstancesStamped lists the instances of a service with their stamps, sorted by Key().
func (tx *Tx) InstancesStamped(k naming.ServiceKey) ([]StampedInstance, error) {
	out := []StampedInstance{}
	err := tx.forEachRecord(k, func(ik, v []byte) error {
		var rec storedInstance
		if err := json.Unmarshal(v, &rec); err != nil {
			return tx.corrupt("instance "+string(ik)+" of "+k.String(), err)
		}
		out = append(out, StampedInstance{Instance: &rec.Instance, Stamp: rec.Stamp})
		return nil
	})
	return out, err
}

func (tx *Tx) forEachRecord(k naming.ServiceKey, fn func(ik, v []byte) error) error {
	nb := tx.instances().Bucket(encodeServiceKey(k))
	if nb == nil {
		return nil
	}
	return nb.ForEach(fn)
}

// ForEachInstance calls fn for every instance of every service, in key order. An error
// from fn stops the walk and is returned.
func (tx *Tx) ForEachInstance(fn func(svc naming.ServiceKey, inst *naming.Instance) error) error {
	ib := tx.instances()
	c := ib.Cursor()
	for sk, v := c.First(); sk != nil; sk, v = c.Next() {
		if v != nil {
			return tx.corrupt("instances bucket", errors.New("value where a service bucket belongs"))
		}
		svc, err := decodeServiceKey(sk)
		if err != nil {
			return tx.corrupt("service key", err)
		}
		err = ib.Bucket(sk).ForEach(func(ik, v []byte) error {
			var inst naming.Instance
			if err := json.Unmarshal(v, &inst); err != nil {
				return tx.corrupt("instance "+string(ik)+" of "+svc.String(), err)
			}
			return fn(svc, &inst)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// PutInstance creates or overwrites inst (by its Key()) in service k with the zero
// stamp. The service record is not required; the caller decides whether one must exist.
func (tx *Tx) PutInstance(k naming.ServiceKey, inst *naming.Instance) error {
	return tx.PutInstanceStamped(k, inst, Stamp{})
}

// PutInstanceStamped is PutInstance recording the instance's stamp with it.
func (tx *Tx) PutInstanceStamped(k naming.ServiceKey, inst *naming.Instance, stamp Stamp) error {
	if inst == nil {
		return errors.New("persistence: put instance: nil instance")
	}
	if err := tx.writable(); err != nil {
		return err
	}
	data, err := json.Marshal(storedInstance{Instance: *inst, Stamp: stamp})
	if err != nil {
		return fmt.Errorf("persistence: encode instance %s of %s: %w", inst.Key(), k, err)
	}
	nb, err := tx.instances().CreateBucketIfNotExists(encodeServiceKey(k))
	if err != nil {
		return tx.writeErr("instances bucket of "+k.String(), err)
	}
	ik := []byte(inst.Key())
	existed := nb.Get(ik) != nil
	if err := nb.Put(ik, data); err != nil {
		return tx.writeErr("put instance "+inst.Key()+" of "+k.String(), err)
	}
	if !existed {
		if err := tx.addCount(keyInstanceCount, 1); err != nil {
			return err
		}
		return tx.addNamespaceCount(k.Namespace, 0, 1)
	}
	return nil
}

// DeleteInstance removes one instance and reports whether it was there. The service
// record stays; an empty per-service bucket is dropped.
func (tx *Tx) DeleteInstance(k naming.ServiceKey, instKey string) (bool, error) {
	if err := tx.writable(); err != nil {
		return false, err
	}
	ib := tx.instances()
	key := encodeServiceKey(k)
	nb := ib.Bucket(key)
	if nb == nil || nb.Get([]byte(instKey)) == nil {
		return false, nil
	}
	if err := nb.Delete([]byte(instKey)); err != nil {
		return false, tx.writeErr("delete instance "+instKey+" of "+k.String(), err)
	}
	if first, _ := nb.Cursor().First(); first == nil {
		if err := ib.DeleteBucket(key); err != nil {
			return false, tx.writeErr("drop empty instances bucket of "+k.String(), err)
		}
	}
	if err := tx.addCount(keyInstanceCount, -1); err != nil {
		return false, err
	}
	return true, tx.addNamespaceCount(k.Namespace, 0, -1)
}

// Counts returns the number of service records and instances. Both are counters kept
// in the meta bucket, so this is O(1).
func (tx *Tx) Counts() (services, instances int, err error) {
	s, err := tx.count(keyServiceCount)
	if err != nil {
		return 0, 0, err
	}
	i, err := tx.count(keyInstanceCount)
	if err != nil {
		return 0, 0, err
	}
	return int(s), int(i), nil
}

func (tx *Tx) count(key []byte) (uint64, error) {
	v := tx.meta().Get(key)
	switch len(v) {
	case 0:
		return 0, nil
	case 8:
		return binary.BigEndian.Uint64(v), nil
	}
	return 0, tx.corrupt(string(key)+" counter", errors.New("bad length"))
}

func (tx *Tx) addCount(key []byte, delta int) error {
	n, err := tx.count(key)
	if err != nil {
		return err
	}
	if delta < 0 && uint64(-delta) > n {
		return tx.corrupt(string(key)+" counter", fmt.Errorf("%d minus %d", n, -delta))
	}
	if err := tx.meta().Put(key, u64(uint64(int64(n)+int64(delta)))); err != nil {
		return tx.writeErr("update "+string(key)+" counter", err)
	}
	return nil
}

// NamespaceCounts returns the number of service records and of instances in namespace
// ns. Both are counters kept beside the records in the same transactions, so this is
// O(1) however large the namespace.
func (tx *Tx) NamespaceCounts(ns string) (services, instances int, err error) {
	s, i, err := tx.namespaceCount(ns)
	return int(s), int(i), err
}

func (tx *Tx) namespaceCount(ns string) (services, instances uint64, err error) {
	v := tx.tx.Bucket(bucketNamespaceCounts).Get(namespacePrefix(ns))
	switch len(v) {
	case 0:
		return 0, 0, nil
	case 16:
		return binary.BigEndian.Uint64(v[:8]), binary.BigEndian.Uint64(v[8:]), nil
	}
	return 0, 0, tx.corrupt("counters of namespace "+ns, errors.New("bad length"))
}

func (tx *Tx) addNamespaceCount(ns string, services, instances int) error {
	s, i, err := tx.namespaceCount(ns)
	if err != nil {
		return err
	}
	if services < 0 && uint64(-services) > s || instances < 0 && uint64(-instances) > i {
		return tx.corrupt("counters of namespace "+ns, fmt.Errorf("%d services, %d instances plus %d and %d", s, i, services, instances))
	}
	s, i = uint64(int64(s)+int64(services)), uint64(int64(i)+int64(instances))
	b := tx.tx.Bucket(bucketNamespaceCounts)
	if s == 0 && i == 0 {
		if err := b.Delete(namespacePrefix(ns)); err != nil {
			return tx.writeErr("drop counters of namespace "+ns, err)
		}
		return nil
	}
	v := make([]byte, 16)
	binary.BigEndian.PutUint64(v[:8], s)
	binary.BigEndian.PutUint64(v[8:], i)
	if err := b.Put(namespacePrefix(ns), v); err != nil {
		return tx.writeErr("update counters of namespace "+ns, err)
	}
	return nil
}

// countNamespaces (re)builds bucketNamespaceCounts from the records: the migration of a
// format 1 file, which had none.
func countNamespaces(btx *bolt.Tx, path string) error {
	if btx.Bucket(bucketNamespaceCounts) != nil {
		if err := btx.DeleteBucket(bucketNamespaceCounts); err != nil {
			return fmt.Errorf("persistence: %s: drop namespace counters: %w", path, err)
		}
	}
	if _, err := btx.CreateBucket(bucketNamespaceCounts); err != nil {
		return fmt.Errorf("persistence: %s: create namespace counters: %w", path, err)
	}
	tx := &Tx{tx: btx, path: path}
	err := btx.Bucket(bucketServices).ForEach(func(k, _ []byte) error {
		ns, _, err := nextComponent(k)
		if err != nil {
			return tx.corrupt("service key", err)
		}
		return tx.addNamespaceCount(ns, 1, 0)
	})
	if err != nil {
		return err
	}
	ib := btx.Bucket(bucketInstances)
	return ib.ForEach(func(k, v []byte) error {
		if v != nil {
			return tx.corrupt("instances bucket", errors.New("value where a service bucket belongs"))
		}
		ns, _, err := nextComponent(k)
		if err != nil {
			return tx.corrupt("service key", err)
		}
		return tx.addNamespaceCount(ns, 0, ib.Bucket(k).Stats().KeyN)
	})
}

// NamespaceRecords returns the stored namespace records sorted by id (none before the
// first is created). They are few (an operator makes them), so they live in one record.
func (tx *Tx) NamespaceRecords() ([]*naming.Namespace, error) {
	return decodeNamespaces(tx.meta().Get(keyNamespaces))
}

func decodeNamespaces(v []byte) ([]*naming.Namespace, error) {
	out := []*naming.Namespace{}
	if v == nil {
		return out, nil
	}
	if err := json.Unmarshal(v, &out); err != nil {
		return nil, err
	}
	for i, n := range out {
		if n == nil || n.ID == "" {
			return nil, fmt.Errorf("namespace record %d has no id", i+1)
		}
		if i > 0 && out[i-1].ID >= n.ID {
			return nil, fmt.Errorf("namespace %s duplicate or out of order", n.ID)
		}
	}
	return out, nil
}

// NamespaceRecord returns one namespace record, or nil when there is none.
func (tx *Tx) NamespaceRecord(id string) (*naming.Namespace, error) {
	all, err := tx.NamespaceRecords()
	if err != nil {
		return nil, tx.corrupt("namespace records", err)
	}
	for _, n := range all {
		if n.ID == id {
			return n, nil
		}
	}
	return nil, nil
}

// PutNamespaceRecord creates or replaces the record of n.ID.
func (tx *Tx) PutNamespaceRecord(n *naming.Namespace) error {
	all, err := tx.NamespaceRecords()
	if err != nil {
		return tx.corrupt("namespace records", err)
	}
	i, found := slices.BinarySearchFunc(all, n.ID, func(e *naming.Namespace, id string) int {
		return strings.Compare(e.ID, id)
	})
	if found {
		all[i] = n.Clone()
	} else {
		all = slices.Insert(all, i, n.Clone())
	}
	return tx.putNamespaces(all)
}

// DeleteNamespaceRecord removes the record of id; removing none is not an error.
func (tx *Tx) DeleteNamespaceRecord(id string) error {
	all, err := tx.NamespaceRecords()
	if err != nil {
		return tx.corrupt("namespace records", err)
	}
	kept := slices.DeleteFunc(all, func(n *naming.Namespace) bool { return n.ID == id })
	return tx.putNamespaces(kept)
}

func (tx *Tx) putNamespaces(all []*naming.Namespace) error {
	if len(all) == 0 {
		if err := tx.meta().Delete(keyNamespaces); err != nil {
			return tx.writeErr("delete namespace records", err)
		}
		return nil
	}
	data, err := json.Marshal(all)
	if err != nil {
		return fmt.Errorf("persistence: encode namespace records: %w", err)
	}
	if len(data) > maxRecordLen {
		return fmt.Errorf("persistence: namespace records of %d bytes are over the limit of %d", len(data), maxRecordLen)
	}
	if err := tx.meta().Put(keyNamespaces, data); err != nil {
		return tx.writeErr("put namespace records", err)
	}
	return nil
}
