package migrate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Export reads everything r holds (narrowed to namespaces, if any) into a dump of
// persistent data: ephemeral instances belong to the clients that registered them.
// Progress, if set, is told after each service.
func Export(ctx context.Context, r Reader, namespaces []string, progress func(done, total int, svc string)) (*Dump, error) {
	d := &Dump{Format: FileFormat, Version: FileVersion, Namespaces: []Namespace{}, Services: []Service{}}
	if s, ok := r.(*Source); ok {
		d.Source = s.Addr()
	}
	nss, err := namespacesToRead(ctx, r, namespaces)
	if err != nil {
		return nil, err
	}
	d.Namespaces = append(d.Namespaces, nss...)
	var names []struct {
		ns string
		ServiceName
	}
	for _, ns := range nss {
		list, err := r.ServiceNames(ctx, ns.ID)
		if err != nil {
			return nil, err
		}
		for _, n := range list {
			names = append(names, struct {
				ns string
				ServiceName
			}{ns.ID, n})
		}
	}
	for i, n := range names {
		svc, err := r.Service(ctx, n.ns, n.Group, n.Name)
		if err != nil {
			return nil, err
		}
		svc.EphemeralInstances = 0
		d.Services = append(d.Services, *svc)
		if progress != nil {
			progress(i+1, len(names), svc.ID())
		}
	}
	d.Normalize()
	return d, nil
}

// Normalize sorts a dump (namespaces, services, their clusters and instances) and drops
// what carries no data, so that two dumps of the same data are equal.
func (d *Dump) Normalize() {
	slices.SortFunc(d.Namespaces, func(a, b Namespace) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(d.Services, func(a, b Service) int { return strings.Compare(a.ID(), b.ID()) })
	for i := range d.Services {
		d.Services[i].normalize()
	}
}

// WriteDump writes d as indented JSON.
func WriteDump(w io.Writer, d *Dump) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(d)
}

// ReadDump reads and checks an export file: its format and version, and every service
// as an import would validate it from a live source.
func ReadDump(r io.Reader) (*Dump, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var d Dump
	if err := dec.Decode(&d); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, fmt.Errorf("field %q: is %s, want %s", te.Field, te.Value, te.Type)
		}
		return nil, fmt.Errorf("not an export file: %v", err)
	}
	if d.Format != FileFormat {
		return nil, fmt.Errorf("format %q: want %q", d.Format, FileFormat)
	}
	if d.Version < 1 || d.Version > FileVersion {
		return nil, fmt.Errorf("version %d: this roster reads versions 1 to %d", d.Version, FileVersion)
	}
	known := map[string]bool{}
	for i, ns := range d.Namespaces {
		if ns.ID == "" {
			return nil, fmt.Errorf("namespaces[%d]: no id", i)
		}
		known[ns.ID] = true
	}
	seen := map[string]bool{}
	for i := range d.Services {
		s := &d.Services[i]
		if !known[s.Namespace] {
			return nil, fmt.Errorf("services[%d] (%s): namespace %q is not in namespaces", i, s.ID(), s.Namespace)
		}
		if seen[s.ID()] {
			return nil, fmt.Errorf("services[%d]: %s is listed twice", i, s.ID())
		}
		seen[s.ID()] = true
		s.normalize()
		if err := s.validate(); err != nil {
			return nil, fmt.Errorf("services[%d]: %v", i, err)
		}
	}
	return &d, nil
}

// DumpReader reads an export file's content as an import's source.
type DumpReader struct{ d *Dump }

// NewDumpReader returns a reader of d.
func NewDumpReader(d *Dump) *DumpReader { return &DumpReader{d: d} }

// Namespaces lists the dump's namespaces.
func (r *DumpReader) Namespaces(context.Context) ([]Namespace, bool, error) {
	return slices.Clone(r.d.Namespaces), true, nil
}

// ServiceNames lists the dump's services of one namespace.
func (r *DumpReader) ServiceNames(_ context.Context, ns string) ([]ServiceName, error) {
	var out []ServiceName
	for _, s := range r.d.Services {
		if s.Namespace == ns {
			out = append(out, ServiceName{Group: s.Group, Name: s.Name})
		}
	}
	return out, nil
}

// Service answers one service of the dump.
func (r *DumpReader) Service(_ context.Context, ns, group, name string) (*Service, error) {
	for i := range r.d.Services {
		s := r.d.Services[i]
		if s.Namespace == ns && s.Group == group && s.Name == name {
			return &s, nil
		}
	}
	return nil, fmt.Errorf("service %s/%s@@%s is not in the file", ns, group, name)
}
