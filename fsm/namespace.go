package fsm

import (
	"github.com/roster-registry/roster/naming"
)

// PutNamespace writes a namespace record: PutCreate refuses one that exists
// (naming.ErrNamespaceExists), PutUpdate one that does not (naming.ErrNamespaceNotFound),
// PutUpsert creates or replaces it.
type PutNamespace struct {
	Namespace naming.Namespace `json:"namespace"`
	Mode      PutMode          `json:"mode"`
}

// DeleteNamespace removes a namespace record. It is refused while the namespace holds
// persistent services (the registry refuses ephemeral ones before proposing it);
// removing a record that is not there succeeds.
type DeleteNamespace struct {
	ID string `json:"id"`
}

// Type implements Command.
func (PutNamespace) Type() CommandType { return PutNamespaceType }

// Type implements Command.
func (DeleteNamespace) Type() CommandType { return DeleteNamespaceType }

func init() {
	registerCommand(PutNamespaceType, "PutNamespace", row[PutNamespace]{
		validate: func(c PutNamespace, _ Limits) error {
			if _, ok := putModeNames[c.Mode]; !ok {
				return naming.BadRequest("unknown put mode " + c.Mode.String())
			}
			return naming.CheckNamespaceRecord(&c.Namespace)
		},
		apply: (*applier).putNamespace,
	})
	registerCommand(DeleteNamespaceType, "DeleteNamespace", row[DeleteNamespace]{
		validate: func(c DeleteNamespace, _ Limits) error {
			if c.ID == "" || c.ID == naming.DefaultNamespace {
				return naming.ErrPublicNamespace()
			}
			return naming.CheckNamespace(c.ID)
		},
		apply: (*applier).deleteNamespace,
	})
}

func (a *applier) putNamespace(c PutNamespace) (any, error) {
	existing, err := a.tx.NamespaceRecord(c.Namespace.ID)
	if err != nil {
		return nil, err
	}
	switch c.Mode {
	case PutCreate:
		if existing != nil {
			return naming.ErrNamespaceExists(c.Namespace.ID), nil
		}
	case PutUpdate:
		if existing == nil {
			return naming.ErrNamespaceNotFound(c.Namespace.ID), nil
		}
	case PutUpsert:
	default:
		return naming.BadRequest("unknown put mode " + c.Mode.String()), nil
	}
	a.namespacesChanged = true
	return nil, a.tx.PutNamespaceRecord(&c.Namespace)
}

func (a *applier) deleteNamespace(c DeleteNamespace) (any, error) {
	services, _, err := a.tx.NamespaceCounts(c.ID)
	if err != nil {
		return nil, err
	}
	if services > 0 {
		return naming.ErrNamespaceNotEmpty(c.ID, services), nil
	}
	a.namespacesChanged = true
	return nil, a.tx.DeleteNamespaceRecord(c.ID)
}
