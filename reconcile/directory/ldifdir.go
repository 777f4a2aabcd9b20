package directory

import (
	"context"
	"fmt"
	"strings"
	"unsafe"
)

// ldifDirectory serves searches from an LDIF text validated once at construction and
// re-read, one record at a time, by every search: it holds the text and nothing per record.
type ldifDirectory struct {
	baseDN string
	src    string // the caller's bytes, not copied
}

// NewLDIF returns a Directory over the content records of an LDIF file. Searches run under
// SearchDN+","+baseDN (subtree; DN comparison case-insensitive and whitespace-normalised)
// and return entries in file order.
//
// The whole text is checked here (syntax errors are *LDIFError values, as from ParseLDIF),
// but no record is kept: each Search streams through data again. The Directory references
// data without copying it, so the caller must not modify data while the Directory or any
// Entry it returned is in use; entries' strings point into data.
func NewLDIF(data []byte, baseDN string) (Directory, error) {
	src := unsafe.String(unsafe.SliceData(data), len(data))
	if _, err := validateLDIF(src); err != nil {
		return nil, err
	}
	return &ldifDirectory{baseDN: baseDN, src: src}, nil
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
	want := map[string]bool{}
	for _, a := range req.Attributes {
		if a == "*" {
			all = true
			continue
		}
		projs = append(projs, proj{a, baseName(a)})
		want[baseName(a)] = true
	}
	if key != "" {
		want[key] = true
	}
	for _, a := range filter.Attributes() {
		want[a] = true
	}
	if disabled != nil {
		for _, a := range disabled.Attributes() {
			want[a] = true
		}
	}
	sc := newLDIFScanner(d.src, false, want, all)
	var slab []string // values of the entries passed to fn are carved from here
	for i := 0; ; i++ {
		if i&1023 == 0 {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("%w: ldif search under %q: %w", ErrFailClosed, base, err)
			}
		}
		ok, err := sc.next()
		if err != nil {
			// Only when data changed after NewLDIF validated it.
			return fmt.Errorf("%w: ldif search under %q: %w", ErrFailClosed, base, err)
		}
		if !ok {
			return nil
		}
		n := normalizeDN(sc.dn)
		if nbase != "" && n != nbase && !(len(n) > len(nbase) && n[len(n)-len(nbase)-1] == ',' && strings.HasSuffix(n, nbase)) {
			continue
		}
		r := sc.record()
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
		// Copy the projected values out of the scanner's buffers into a slab shared by
		// many entries (each entry's slices are capped, so appending to one is safe).
		nv := 0
		if all {
			nv = len(sc.pairs)
		}
		for _, p := range projs {
			nv += len(r.values(p.lower))
		}
		if len(slab) < nv {
			slab = make([]string, max(nv, 4096))
		}
		take := func(v []string) []string {
			out := slab[:len(v):len(v)]
			copy(out, v)
			slab = slab[len(v):]
			return out
		}
		if all {
			e.Attrs = make(map[string][]string, len(r.Attrs)+len(projs))
			for _, a := range r.Attrs {
				e.Attrs[a.Name] = take(a.Values)
			}
			for _, p := range projs {
				if v := r.values(p.lower); v != nil {
					e.Attrs[p.name] = take(v)
				}
			}
		} else {
			e.Attrs = make(map[string][]string, len(projs))
			for _, p := range projs {
				if v := r.values(p.lower); v != nil {
					e.Attrs[p.name] = take(v)
				}
			}
		}
		if err := fn(e); err != nil {
			return err
		}
	}
}
