package directory

import (
	"context"
	"fmt"
	"strings"
)

// ldifDirectory serves searches from LDIF records parsed once at construction.
type ldifDirectory struct {
	baseDN string
	recs   []Record
	norm   []string // normalizeDN(recs[i].DN)
}

// NewLDIF returns a Directory over the content records of an LDIF file. Searches run under
// SearchDN+","+baseDN (subtree; DN comparison case-insensitive and whitespace-normalised)
// and return entries in file order.
func NewLDIF(data []byte, baseDN string) (Directory, error) {
	recs, err := ParseLDIF(data)
	if err != nil {
		return nil, err
	}
	d := &ldifDirectory{baseDN: baseDN, recs: recs, norm: make([]string, len(recs))}
	for i := range recs {
		d.norm[i] = normalizeDN(recs[i].DN)
	}
	return d, nil
}

func (d *ldifDirectory) Close() error { return nil }

// searchBase joins a template's search DN and the directory's base DN.
func searchBase(searchDN, baseDN string) string {
	searchDN, baseDN = strings.TrimSpace(searchDN), strings.TrimSpace(baseDN)
	switch {
	case searchDN == "":
		return baseDN
	case baseDN == "":
		return searchDN
	}
	return searchDN + "," + baseDN
}

func (d *ldifDirectory) Search(ctx context.Context, req Request, fn func(Entry) error) error {
	base := searchBase(req.SearchDN, d.baseDN)
	nbase := normalizeDN(base)
	filter, err := CompileFilter(req.Filter)
	if err != nil {
		return fmt.Errorf("%w: ldif search under %q: %w", ErrFailClosed, base, err)
	}
	var disabled *Filter
	if strings.TrimSpace(req.DisabledFilter) != "" {
		if disabled, err = CompileFilter(req.DisabledFilter); err != nil {
			return fmt.Errorf("%w: ldif search under %q: disabled filter: %w", ErrFailClosed, base, err)
		}
	}
	key := baseName(req.KeyAttribute)
	type proj struct{ name, lower string }
	var projs []proj
	all := req.Attributes == nil
	for _, a := range req.Attributes {
		if a == "*" {
			all = true
			continue
		}
		projs = append(projs, proj{a, baseName(a)})
	}
	for i := range d.recs {
		if i&1023 == 0 {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("%w: ldif search under %q: %w", ErrFailClosed, base, err)
			}
		}
		n := d.norm[i]
		if nbase != "" && n != nbase && !(len(n) > len(nbase) && n[len(n)-len(nbase)-1] == ',' && strings.HasSuffix(n, nbase)) {
			continue
		}
		r := &d.recs[i]
		if !filter.Match(r) {
			continue
		}
		e := Entry{DN: r.DN, Key: r.DN}
		if key != "" {
			v := r.values(key)
			if len(v) == 0 {
				return fmt.Errorf("%w: ldif line %d: entry %q has no key attribute %q", ErrFailClosed, r.Line, r.DN, req.KeyAttribute)
			}
			e.Key = v[0]
		}
		if disabled != nil {
			e.Disabled = disabled.Match(r)
		}
		if all {
			e.Attrs = make(map[string][]string, len(r.Attrs)+len(projs))
			for _, a := range r.Attrs {
				e.Attrs[a.Name] = a.Values
			}
		} else {
			e.Attrs = make(map[string][]string, len(projs))
		}
		for _, p := range projs {
			if v := r.values(p.lower); v != nil {
				e.Attrs[p.name] = v
			}
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}
