package directory

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
)

// ldifDirectory serves searches from an LDIF file validated once at construction and read
// again, in blocks, by every search: between searches it holds nothing of the file.
type ldifDirectory struct {
	baseDN string
	open   func() (io.ReadCloser, error)
	size   int64  // of the file validated
	crc    uint32 // its CRC-32C
}

// OpenLDIF returns a Directory over the content records of the LDIF file that open opens
// (each call must return the file from its start). Searches run under
// SearchDN+","+baseDN (subtree; DN comparison case-insensitive and whitespace-normalised)
// and return entries in file order.
//
// The whole file is checked here, in one pass through a buffer of a few MiB (syntax errors
// are *LDIFError values, as from ParseLDIF), and nothing of it is kept: each Search opens the
// file again and reads it through such a buffer, copying the strings of the entries it returns
// (DN, key, projected values) into slabs of 8 KiB shared by consecutive entries, so entries
// kept by the caller hold only what they return. A Search that finds the file changed since
// it was checked (other size or checksum) fails closed after the last entry.
func OpenLDIF(open func() (io.ReadCloser, error), baseDN string) (Directory, error) {
	rc, err := open()
	if err != nil {
		return nil, fmt.Errorf("ldif: open: %w", err)
	}
	defer rc.Close()
	size, crc, err := validateLDIF(rc)
	if err != nil {
		return nil, err
	}
	return &ldifDirectory{baseDN: baseDN, open: open, size: size, crc: crc}, nil
}

// NewLDIF is OpenLDIF over data, which the caller must not modify while the Directory is in
// use (entries do not point into data).
func NewLDIF(data []byte, baseDN string) (Directory, error) {
	return OpenLDIF(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }, baseDN)
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

// compileFilters compiles a request's filter and disabled filter (nil when none); an
// error fails the search closed.
func compileFilters(req Request, base string) (filter, disabled *Filter, err error) {
	if filter, err = CompileFilter(req.Filter); err != nil {
		return nil, nil, fmt.Errorf("%w: ldif search under %q: %w", ErrFailClosed, base, err)
	}
	if strings.TrimSpace(req.DisabledFilter) != "" {
		if disabled, err = CompileFilter(req.DisabledFilter); err != nil {
			return nil, nil, fmt.Errorf("%w: ldif search under %q: disabled filter: %w", ErrFailClosed, base, err)
		}
	}
	return filter, disabled, nil
}

// underBase says whether the normalised DN n is nbase or below it ("" is everything).
func underBase(n, nbase string) bool {
	return nbase == "" || n == nbase || len(n) > len(nbase) && n[len(n)-len(nbase)-1] == ',' && strings.HasSuffix(n, nbase)
}

func (d *ldifDirectory) Search(ctx context.Context, req Request, fn func(Entry) error) error {
	base := searchBase(req.SearchDN, d.baseDN)
	nbase := normalizeDN(base)
	filter, disabled, err := compileFilters(req, base)
	if err != nil {
		return err
	}
	projs, all, key := projections(req)
	want := map[string]bool{}
	for _, p := range projs {
		want[p.lower] = true
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
	rc, err := d.open()
	if err != nil {
		return fmt.Errorf("%w: ldif search under %q: %w", ErrFailClosed, base, err)
	}
	defer rc.Close()
	sc := newLDIFScanner("", false, want, all)
	st := ldifStream{sc: sc, br: newBlockReader(rc)}
	var sl slab // the strings of the entries passed to fn are copied here (the read buffer is reused)
	for i := 0; ; i++ {
		if i&1023 == 0 {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("%w: ldif search under %q: %w", ErrFailClosed, base, err)
			}
		}
		ok, err := st.next()
		if err != nil {
			// A read error, or a syntax error when the file changed after OpenLDIF checked it.
			return fmt.Errorf("%w: ldif search under %q: %w", ErrFailClosed, base, err)
		}
		if !ok {
			if st.br.read != d.size || st.br.crc != d.crc {
				return fmt.Errorf("%w: ldif search under %q: the file changed after it was checked (%d bytes, was %d)", ErrFailClosed, base, st.br.read, d.size)
			}
			return nil
		}
		n := normalizeDN(sc.dn)
		if !underBase(n, nbase) {
			continue
		}
		r := sc.record()
		if !filter.Match(r) {
			continue
		}
		e := entryOf(r, projs, all, &sl)
		if key != "" {
			v := r.values(key)
			if len(v) == 0 {
				return fmt.Errorf("%w: ldif line %d: entry %q has no key attribute %q", ErrFailClosed, r.Line, r.DN, req.KeyAttribute)
			}
			e.Key = sl.keep(v[0])
		}
		if disabled != nil {
			e.Disabled = disabled.Match(r)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
}
