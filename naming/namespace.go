package naming

import (
	"net/http"
	"regexp"
	"strconv"
)

// Namespace is a namespace an operator created (Nacos' tenant_info row): its id, the
// name and description the console shows, and quotas that override the server's
// defaults. A namespace clients use without creating it has no record; it still works.
type Namespace struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Desc string `json:"desc,omitempty"`
	// MaxServices and MaxInstances override the server's quota for this namespace when
	// set: 0 is unlimited. Nil means the server's default.
	MaxServices  *int `json:"maxServices,omitempty"`
	MaxInstances *int `json:"maxInstances,omitempty"`
}

// Clone returns a deep copy.
func (n *Namespace) Clone() *Namespace {
	c := *n
	if n.MaxServices != nil {
		v := *n.MaxServices
		c.MaxServices = &v
	}
	if n.MaxInstances != nil {
		v := *n.MaxInstances
		c.MaxInstances = &v
	}
	return &c
}

// Limits of a namespace record. The name rule is Nacos' namespaceNameCheckPattern.
const (
	MaxNamespaceNameLength = 128
	MaxNamespaceDescLength = 256
)

var namespaceNamePattern = regexp.MustCompile(`^[^@#$%^&*]+$`)

// CheckNamespaceName applies Nacos' rule for a namespace's shown name: not blank and
// none of @#$%^&*.
func CheckNamespaceName(name string) error {
	if !namespaceNamePattern.MatchString(name) {
		return APIError(http.StatusBadRequest, CodeIllegalNamespace, "namespaceName ["+name+"] contains illegal char")
	}
	if javaLen(name) > MaxNamespaceNameLength {
		return APIError(http.StatusBadRequest, CodeIllegalNamespace, "too long namespaceName, over "+strconv.Itoa(MaxNamespaceNameLength))
	}
	return nil
}

// CheckNamespaceRecord checks a namespace record before it is stored: an id clients can
// use (CheckNamespace, not blank, not public), a legal name, a bounded description and
// quotas that are not negative.
func CheckNamespaceRecord(n *Namespace) error {
	if n.ID == "" {
		return APIError(http.StatusBadRequest, CodeIllegalNamespace, "namespaceId is blank")
	}
	if n.ID == DefaultNamespace {
		return APIError(http.StatusBadRequest, CodeIllegalNamespace, "namespace public is built in and cannot be changed")
	}
	if err := CheckNamespace(n.ID); err != nil {
		return APIError(http.StatusBadRequest, CodeIllegalNamespace, err.Error())
	}
	if err := CheckNamespaceName(n.Name); err != nil {
		return err
	}
	if javaLen(n.Desc) > MaxNamespaceDescLength {
		return APIError(http.StatusBadRequest, CodeIllegalNamespace, "too long namespaceDesc, over "+strconv.Itoa(MaxNamespaceDescLength))
	}
	for param, text := range map[string]string{"namespaceShowName": n.Name, "namespaceDesc": n.Desc} {
		if err := checkText(param, text); err != nil {
			return err
		}
	}
	for _, q := range []*int{n.MaxServices, n.MaxInstances} {
		if q != nil && *q < 0 {
			return APIError(http.StatusBadRequest, CodeIllegalNamespace, "a namespace quota must be 0 (unlimited) or more, not "+strconv.Itoa(*q))
		}
	}
	return nil
}

// ErrNamespaceNotEmpty refuses to delete a namespace that still holds services.
func ErrNamespaceNotEmpty(id string, services int) *Error {
	return APIError(http.StatusBadRequest, CodeIllegalNamespace,
		"namespace "+id+" still has "+strconv.Itoa(services)+" service(s); delete them before the namespace")
}

// ErrPublicNamespace refuses to delete or change the built-in namespace.
func ErrPublicNamespace() *Error {
	return APIError(http.StatusBadRequest, CodeIllegalNamespace, "namespace public is built in and cannot be deleted or changed")
}

// ErrNamespaceExists refuses to create a namespace whose record exists.
func ErrNamespaceExists(id string) *Error {
	return APIError(http.StatusBadRequest, CodeIllegalNamespace, "the namespaceId is existed, namespaceId: "+id)
}

// ErrNamespaceNotFound is a namespace that neither has a record nor is used.
func ErrNamespaceNotFound(id string) *Error {
	return APIError(http.StatusNotFound, CodeNamespaceNotExist, "namespaceId [ "+id+" ] not exist")
}

// ErrQuota refuses a write that would take a namespace past one of its quotas.
func ErrQuota(namespace, what string, limit int) *Error {
	return APIError(http.StatusBadRequest, CodeIllegalState,
		"namespace "+namespace+" has reached its quota of "+strconv.Itoa(limit)+" "+what)
}
