package fsm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"

	"github.com/roster-registry/roster/auth"
	"github.com/roster-registry/roster/naming"
)

// CommandType is the first byte of a Raft log entry. Numbers are append-only: a number
// once used is never reused or renumbered, because old entries and snapshots outlive
// the code that wrote them.
type CommandType uint8

// IgnorableFlag marks a type that a server which does not know it may skip. Types
// without it are mandatory: an unknown mandatory type stops the FSM.
const IgnorableFlag CommandType = 0x80

// Command types.
const (
	RegisterInstanceType    CommandType = 1 // upsert; creates a persistent service if missing
	DeregisterInstanceType  CommandType = 2 // absent instance is not an error
	UpdateInstanceType      CommandType = 3 // partial update, see UpdateInstance
	PutServiceType          CommandType = 4
	DeleteServiceType       CommandType = 5
	UpdateMetadataBatchType CommandType = 6
	AuthChangeType          CommandType = 7  // users, roles, grants, signing keys (package auth)
	FlipHealthType          CommandType = 8  // a prober's health result, refused when stale (health.go)
	PutClusterType          CommandType = 9  // one cluster's health check and metadata (health.go)
	PutNamespaceType        CommandType = 10 // a namespace record (namespace.go)
	DeleteNamespaceType     CommandType = 11 // refused while the namespace has services
	// 12 is held for namespaces; 13 is Batch (batch.go); 14-15 for the performance work.
)

// Ignorable reports whether servers that do not know t may skip it.
func (t CommandType) Ignorable() bool { return t&IgnorableFlag != 0 }

func (t CommandType) String() string {
	if e, ok := commands[t]; ok {
		return e.name
	}
	return fmt.Sprintf("CommandType(%d)", uint8(t))
}

// CommandVersion is the body version every command is encoded with. A change to a
// body's encoding bumps it; Decode refuses versions it does not know.
const CommandVersion = 1

// Command is one state change carried through the Raft log.
type Command interface{ Type() CommandType }

// RegisterInstance stores a persistent instance, overwriting one with the same key, and
// creates a persistent service record when there is none. A service whose record is
// ephemeral refuses it (naming.ErrEphemeralService).
type RegisterInstance struct {
	Service  naming.ServiceKey `json:"service"`
	Instance naming.Instance   `json:"instance"`
	// Quota, when set, refuses a registration that would take the namespace past its
	// quotas (see Quota).
	Quota *Quota `json:"quota,omitempty"`
}

// DeregisterInstance removes an instance. Removing one that is not there succeeds.
type DeregisterInstance struct {
	Service naming.ServiceKey `json:"service"`
	IP      string            `json:"ip"`
	Port    int               `json:"port"`
	Cluster string            `json:"cluster"`
}

// UpdateInstance changes the given fields of an existing instance. When the instance
// is missing, Upsert (a full instance with the same ip, port and cluster) is registered
// as by RegisterInstance; without Upsert the answer is Nacos' "instance not exist" 400.
type UpdateInstance struct {
	Service naming.ServiceKey `json:"service"`
	IP      string            `json:"ip"`
	Port    int               `json:"port"`
	Cluster string            `json:"cluster"`
	Weight  *float64          `json:"weight,omitempty"`
	Enabled *bool             `json:"enabled,omitempty"`
	Healthy *bool             `json:"healthy,omitempty"`
	// Metadata, when non-nil, replaces the instance's metadata (an empty map clears it).
	Metadata map[string]string `json:"metadata"`
	Upsert   *naming.Instance  `json:"upsert,omitempty"`
	// Quota, when set, bounds the registration of Upsert (see Quota).
	Quota *Quota `json:"quota,omitempty"`
}

// PutMode says what PutService does with an existing or missing record.
type PutMode uint8

// Put modes. The zero value is invalid so that a forgotten mode is refused.
const (
	PutCreate PutMode = iota + 1 // naming.ErrServiceExists if the record exists
	PutUpdate                    // naming.ErrServiceNotFound if it is missing
	PutUpsert                    // create or update
)

var putModeNames = map[PutMode]string{PutCreate: "create", PutUpdate: "update", PutUpsert: "upsert"}

func (m PutMode) String() string {
	if s, ok := putModeNames[m]; ok {
		return s
	}
	return fmt.Sprintf("PutMode(%d)", uint8(m))
}

// MarshalText encodes the mode by name, so the log is readable and a renumbering
// cannot silently change a mode.
func (m PutMode) MarshalText() ([]byte, error) {
	if s, ok := putModeNames[m]; ok {
		return []byte(s), nil
	}
	return nil, fmt.Errorf("fsm: unknown put mode %d", uint8(m))
}

// UnmarshalText decodes a mode name.
func (m *PutMode) UnmarshalText(b []byte) error {
	for k, v := range putModeNames {
		if v == string(b) {
			*m = k
			return nil
		}
	}
	return fmt.Errorf("fsm: unknown put mode %q", b)
}

// PutService writes a service record. Updating an existing record (PutUpdate, or
// PutUpsert of an existing one) keeps its stored Ephemeral flag, and keeps its stored
// Clusters when Service carries none, so a service update that knows nothing of
// clusters does not wipe their health-check settings.
type PutService struct {
	Service naming.Service `json:"service"`
	Mode    PutMode        `json:"mode"`
	// Quota, when set, refuses a create that would take the namespace past its service
	// quota (see Quota).
	Quota *Quota `json:"quota,omitempty"`
}

// Quota is the server's default namespace quotas (0 = unlimited) as the member that
// proposed a command knew them. The FSM checks a write that adds a persistent service
// or instance against the namespace record's own quota where it has one, else against
// these, counting the persistent services and instances the store holds: the decision
// uses only the log and the replicated state, so every member makes the same one, and
// two writes racing through different members cannot both pass. The member where a
// write enters checks it as well, counting ephemeral data too (registry.checkQuota).
// An entry without Quota (written before it existed) is not checked.
type Quota struct {
	Services  int `json:"services"`
	Instances int `json:"instances"`
}

// DeleteService removes a service record: naming.ErrServiceNotFound when there is
// none, naming.ErrServiceNotEmpty while it has persistent instances.
type DeleteService struct {
	Service naming.ServiceKey `json:"service"`
}

// InstanceRef names one instance of a service.
type InstanceRef struct {
	IP      string `json:"ip"`
	Port    int    `json:"port"`
	Cluster string `json:"cluster"`
}

// UpdateMetadataBatch merges Metadata into (or, with Remove, deletes its keys from) the
// metadata of the listed instances, or of all instances of the service when Instances
// is empty. Listed instances that do not exist are skipped. Apply answers a []string of
// the updated instances as Nacos does: "ip:port:unknown:cluster:persistent".
type UpdateMetadataBatch struct {
	Service   naming.ServiceKey `json:"service"`
	Instances []InstanceRef     `json:"instances"`
	Metadata  map[string]string `json:"metadata"`
	Remove    bool              `json:"remove"`
}

// AuthChange changes the access-control state (auth.State.Apply). A change the state
// refuses answers a *naming.Error and writes nothing.
type AuthChange struct {
	Change auth.Change `json:"change"`
}

// Type implements Command.
func (AuthChange) Type() CommandType { return AuthChangeType }

// Type implements Command.
func (RegisterInstance) Type() CommandType { return RegisterInstanceType }

// Type implements Command.
func (DeregisterInstance) Type() CommandType { return DeregisterInstanceType }

// Type implements Command.
func (UpdateInstance) Type() CommandType { return UpdateInstanceType }

// Type implements Command.
func (PutService) Type() CommandType { return PutServiceType }

// Type implements Command.
func (DeleteService) Type() CommandType { return DeleteServiceType }

// Type implements Command.
func (UpdateMetadataBatch) Type() CommandType { return UpdateMetadataBatchType }

// entry is one command type's row in the command table: everything that knows the
// type lives here, so a new command touches this table and nothing else (as Consul's
// FSM registers type → apply).
type entry struct {
	name     string
	typ      reflect.Type
	decode   func(body []byte) (Command, error)
	validate func(c Command, l Limits) error
	apply    func(a *applier, c Command) (any, error)
	// result decodes the command's answer value as it crosses between nodes (Answer);
	// nil when the command answers no value.
	result func(raw json.RawMessage) (any, error)
}

// commands is the command table.
var commands = map[CommandType]entry{}

// row is a command's validate and apply, typed; registerCommand erases the type.
type row[T Command] struct {
	validate func(c T, l Limits) error
	apply    func(a *applier, c T) (any, error)
}

// registerCommand adds a type to the command table. A duplicate number is a
// programming error caught at start-up.
func registerCommand[T Command](t CommandType, name string, r row[T]) {
	if _, dup := commands[t]; dup {
		panic(fmt.Sprintf("fsm: command type %d registered twice", t))
	}
	var zero T
	if zero.Type() != t {
		panic(fmt.Sprintf("fsm: %s has type %d, registered as %d", name, zero.Type(), t))
	}
	commands[t] = entry{
		name: name,
		typ:  reflect.TypeOf(zero),
		decode: func(body []byte) (Command, error) {
			var c T
			if err := decodeStrict(body, &c); err != nil {
				return nil, err
			}
			return c, nil
		},
		validate: func(c Command, l Limits) error { return r.validate(c.(T), l) },
		apply:    func(a *applier, c Command) (any, error) { return r.apply(a, c.(T)) },
	}
}

// withResult declares the type of a command's answer value.
func withResult[V any](t CommandType) {
	e := commands[t]
	e.result = func(raw json.RawMessage) (any, error) {
		var v V
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, err
		}
		return v, nil
	}
	commands[t] = e
}

func init() {
	registerCommand(RegisterInstanceType, "RegisterInstance", row[RegisterInstance]{
		validate: func(c RegisterInstance, l Limits) error {
			if err := checkKey(c.Service); err != nil {
				return err
			}
			return checkInstance(&c.Instance, l)
		},
		apply: func(a *applier, c RegisterInstance) (any, error) { return a.register(c.Service, c.Instance, c.Quota) },
	})
	registerCommand(DeregisterInstanceType, "DeregisterInstance", row[DeregisterInstance]{
		validate: func(c DeregisterInstance, _ Limits) error {
			if err := checkKey(c.Service); err != nil {
				return err
			}
			return checkRef(c.IP, c.Port, c.Cluster)
		},
		apply: (*applier).deregister,
	})
	registerCommand(UpdateInstanceType, "UpdateInstance", row[UpdateInstance]{
		validate: validateUpdate,
		apply:    (*applier).update,
	})
	registerCommand(PutServiceType, "PutService", row[PutService]{
		validate: func(c PutService, l Limits) error {
			if _, ok := putModeNames[c.Mode]; !ok {
				return naming.BadRequest(fmt.Sprintf("unknown put mode %d", c.Mode))
			}
			return checkService(&c.Service, l)
		},
		apply: (*applier).putService,
	})
	registerCommand(DeleteServiceType, "DeleteService", row[DeleteService]{
		validate: func(c DeleteService, _ Limits) error { return checkKey(c.Service) },
		apply:    (*applier).deleteService,
	})
	registerCommand(UpdateMetadataBatchType, "UpdateMetadataBatch", row[UpdateMetadataBatch]{
		validate: func(c UpdateMetadataBatch, l Limits) error {
			if err := checkKey(c.Service); err != nil {
				return err
			}
			for _, r := range c.Instances {
				if err := checkRef(r.IP, r.Port, r.Cluster); err != nil {
					return err
				}
			}
			return naming.CheckMetadata(c.Metadata, l.MaxMetadata)
		},
		apply: (*applier).updateMetadata,
	})
	withResult[[]string](UpdateMetadataBatchType)
	registerCommand(AuthChangeType, "AuthChange", row[AuthChange]{
		validate: func(c AuthChange, _ Limits) error { return c.Change.Validate() },
		apply:    (*applier).authChange,
	})
	registerCommand(FlipHealthType, "FlipHealth", row[FlipHealth]{
		validate: validateFlip,
		apply:    (*applier).flipHealth,
	})
	withResult[FlipResult](FlipHealthType)
	registerCommand(PutClusterType, "PutCluster", row[PutCluster]{
		validate: func(c PutCluster, l Limits) error {
			if err := checkKey(c.Service); err != nil {
				return err
			}
			return checkCluster(&c.Cluster, l)
		},
		apply: (*applier).putCluster,
	})
}

func validateUpdate(c UpdateInstance, l Limits) error {
	if err := checkKey(c.Service); err != nil {
		return err
	}
	if err := checkRef(c.IP, c.Port, c.Cluster); err != nil {
		return err
	}
	if c.Weight != nil {
		if err := checkWeight(*c.Weight); err != nil {
			return err
		}
	}
	if err := naming.CheckMetadata(c.Metadata, l.MaxMetadata); err != nil {
		return err
	}
	if c.Upsert != nil {
		if err := checkInstance(c.Upsert, l); err != nil {
			return err
		}
		if c.Upsert.Key() != naming.InstanceKey(c.IP, c.Port, c.Cluster) {
			return naming.BadRequest("upsert instance " + c.Upsert.Key() + " is not " + naming.InstanceKey(c.IP, c.Port, c.Cluster))
		}
	}
	return nil
}

// decodeStrict refuses unknown fields and trailing data: a body that does not match
// its version exactly is a bug to stop at, not something to half-apply.
func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the body")
	}
	return nil
}

// ErrUnknownCommand is wrapped by Decode for a type this build does not know.
var ErrUnknownCommand = errors.New("fsm: unknown command type")

// Limits are the validation limits of Validate and Encode: the settings of the node
// that takes the write from a client. The FSM never re-checks them, so members
// configured differently still apply the same entries.
type Limits struct {
	// MaxMetadata bounds the summed length of a metadata map's keys and values
	// (naming.CheckMetadata). Zero means naming.DefaultMaxMetadata.
	MaxMetadata int
	// Timing is the server's beat timing, against which an instance's preserved.*
	// timeouts are checked. Zero means naming.DefaultTiming().
	Timing naming.Timing
}

// DefaultLimits are Nacos' defaults.
func DefaultLimits() Limits {
	return Limits{MaxMetadata: naming.DefaultMaxMetadata, Timing: naming.DefaultTiming()}
}

func (l Limits) withDefaults() Limits {
	if l.MaxMetadata <= 0 {
		l.MaxMetadata = naming.DefaultMaxMetadata
	}
	if l.Timing == (naming.Timing{}) {
		l.Timing = naming.DefaultTiming()
	}
	return l
}

// Encode validates c with DefaultLimits and encodes it. See EncodeWith.
func Encode(c Command) ([]byte, error) { return EncodeWith(c, DefaultLimits()) }

// EncodeWith validates c (Validate) and returns [type][CommandVersion] + JSON body.
// Nothing that fails validation may enter the log, so no committed entry can fail to
// apply for want of validity. A pointer to a command is accepted as the command.
// Rule violations come back as *naming.Error (wrapped), ready for the client.
func EncodeWith(c Command, limits Limits) ([]byte, error) {
	if err := Validate(c, limits); err != nil {
		return nil, err
	}
	return Marshal(c)
}

// Marshal encodes a command that its caller has already validated (Validate), as
// [type][CommandVersion] + JSON body. The registry validates each write once, where it
// enters, and then marshals it; nothing else may skip Validate.
func Marshal(c Command) ([]byte, error) {
	c, err := deref(c)
	if err != nil {
		return nil, err
	}
	if b, ok := c.(Batch); ok {
		return marshalBatch(b)
	}
	body, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("fsm: encode %s: %w", c.Type(), err)
	}
	out := make([]byte, 0, 2+len(body))
	out = append(out, byte(c.Type()), CommandVersion)
	return append(out, body...), nil
}

func deref(c Command) (Command, error) {
	if c == nil {
		return nil, errors.New("fsm: nil command")
	}
	if v := reflect.ValueOf(c); v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return nil, fmt.Errorf("fsm: nil %T", c)
		}
		c = v.Elem().Interface().(Command)
	}
	e, ok := commands[c.Type()]
	if !ok {
		return nil, fmt.Errorf("%w %d (%T)", ErrUnknownCommand, uint8(c.Type()), c)
	}
	if reflect.TypeOf(c) != e.typ {
		return nil, fmt.Errorf("fsm: %T is not the %s command", c, e.name)
	}
	return c, nil
}

// Decode parses an encoded command. It returns an error, never panics, for anything it
// cannot decode: an empty or short entry, an unknown type (wrapping ErrUnknownCommand),
// an unknown version, a body that is not exactly the type's JSON. Decoded commands are
// values (RegisterInstance, not *RegisterInstance). Decode does not apply Limits.
func Decode(b []byte) (Command, error) {
	if len(b) < 2 {
		return nil, fmt.Errorf("fsm: command of %d bytes is too short", len(b))
	}
	t := CommandType(b[0])
	e, ok := commands[t]
	if !ok {
		return nil, fmt.Errorf("%w %d", ErrUnknownCommand, uint8(t))
	}
	if b[1] != CommandVersion {
		return nil, fmt.Errorf("fsm: %s version %d is not supported", t, b[1])
	}
	c, err := e.decode(b[2:])
	if err != nil {
		return nil, fmt.Errorf("fsm: decode %s: %w", t, err)
	}
	return c, nil
}

// Validate applies Nacos' naming rules to c with the given limits. Service keys must be
// resolved (namespace, group and name present) and instance keys complete (ip and
// cluster present), as the API layer resolves defaults before encoding. Instances are
// persistent here: ephemeral ones never go through Raft.
func Validate(c Command, limits Limits) error {
	c, err := deref(c)
	if err != nil {
		return err
	}
	if err := commands[c.Type()].validate(c, limits.withDefaults()); err != nil {
		return fmt.Errorf("fsm: invalid %s: %w", c.Type(), err)
	}
	return nil
}

func checkKey(k naming.ServiceKey) error { return naming.CheckResolvedKey(k) }

func checkRef(ip string, port int, cluster string) error {
	return naming.CheckInstanceRef(ip, port, cluster)
}

func checkWeight(w float64) error { return naming.CheckWeight(w) }

func checkInstance(in *naming.Instance, l Limits) error {
	if err := checkRef(in.IP, in.Port, in.ClusterName); err != nil {
		return err
	}
	if err := naming.CheckInstance(in, l.MaxMetadata, l.Timing); err != nil {
		return err
	}
	if in.Ephemeral {
		return naming.BadRequest("ephemeral instance " + in.Key() + " cannot be stored through raft")
	}
	return nil
}

func checkService(s *naming.Service, l Limits) error { return naming.CheckService(s, l.MaxMetadata) }

// Answer is the FSM's response to one command as it crosses from the leader to the
// member that forwarded the write: a rejection, or the value of the command's result
// type (the command table's result row). It carries typed errors, never free text.
type Answer struct {
	Error *naming.Error   `json:"error,omitempty"`
	Value json.RawMessage `json:"value,omitempty"`
}

// NewAnswer encodes an ApplyBatch response. A response that is an error but not a
// *naming.Error is a bug in an apply row; it crosses as an internal error.
func NewAnswer(res any) (Answer, error) {
	switch v := res.(type) {
	case nil:
		return Answer{}, nil
	case *naming.Error:
		return Answer{Error: v}, nil
	case error:
		return Answer{Error: naming.Internal(v.Error())}, nil
	}
	b, err := json.Marshal(res)
	if err != nil {
		return Answer{}, fmt.Errorf("fsm: encode answer %T: %w", res, err)
	}
	return Answer{Value: b}, nil
}

// Result decodes the answer to a command of type t back into what ApplyBatch returned:
// (nil, *naming.Error) for a rejection, else the value typed as the command's row says.
func (a Answer) Result(t CommandType) (any, error) {
	if a.Error != nil {
		return nil, a.Error
	}
	e, ok := commands[t]
	if !ok {
		return nil, fmt.Errorf("%w %d", ErrUnknownCommand, uint8(t))
	}
	if len(a.Value) == 0 || e.result == nil {
		return nil, nil
	}
	v, err := e.result(a.Value)
	if err != nil {
		return nil, fmt.Errorf("fsm: decode %s answer: %w", t, err)
	}
	return v, nil
}
