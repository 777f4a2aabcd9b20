package directory

import (
	"sync"
	"unsafe"
)

// slab copies the strings an entry returns out of a reader's reused buffers into chunks
// shared by consecutive entries: an entry kept by the caller holds only what it returns,
// and a few entries make one allocation instead of one per value.
type slab struct {
	text []byte   // string bytes are copied here (never rewritten)
	strs []string // value slices are carved from here
}

// keep returns a copy of s that does not share the reader's buffer.
func (sl *slab) keep(s string) string {
	if s == "" {
		return ""
	}
	if len(s) > cap(sl.text)-len(sl.text) {
		sl.text = make([]byte, 0, max(len(s), 8<<10))
	}
	start := len(sl.text)
	sl.text = append(sl.text, s...)
	return unsafe.String(&sl.text[start], len(s))
}

// attrMaps holds attribute maps handed back by Recycle. A map of ten attributes is a
// hash table of its own, allocated and cleared for every entry: some 7% of a no-op plan's
// CPU, and as much garbage again for the collector.
var attrMaps sync.Pool

// newAttrs returns an empty attribute map for about n attributes: a recycled one if any.
func newAttrs(n int) map[string][]string {
	if m, ok := attrMaps.Get().(map[string][]string); ok {
		return m
	}
	return make(map[string][]string, n)
}

// Recycle hands e's attribute map back to be filled by a later entry, and clears e.Attrs.
// The caller must hold no other reference to the map (a renderer's, an entry kept for
// the next cycle); the values themselves stay valid.
func Recycle(e *Entry) {
	if e.Attrs != nil {
		clear(e.Attrs)
		attrMaps.Put(e.Attrs)
		e.Attrs = nil
	}
}

// noValues is what take returns for an attribute present with no values.
var noValues = []string{}

// take returns a copy of the values v (capped, so appending to it is safe); nil for nil.
func (sl *slab) take(v []string) []string {
	switch {
	case v == nil:
		return nil
	case len(v) == 0:
		return noValues
	}
	if len(sl.strs) < len(v) {
		sl.strs = make([]string, max(len(v), 4096))
	}
	out := sl.strs[:len(v):len(v)]
	for i, s := range v {
		out[i] = sl.keep(s)
	}
	sl.strs = sl.strs[len(v):]
	return out
}

// projection is an attribute a request asks for: as the template writes it (the key of
// Entry.Attrs) and as a lower-case base name.
type projection struct{ name, lower string }

// projections reads a request's attribute list: the projected attributes, whether all
// attributes are asked for (Attributes nil or holding "*"), and the key's base name.
func projections(req Request) (projs []projection, all bool, key string) {
	all = req.Attributes == nil
	for _, a := range req.Attributes {
		if a == "*" {
			all = true
			continue
		}
		projs = append(projs, projection{a, baseName(a)})
	}
	return projs, all, baseName(req.KeyAttribute)
}

// entryOf makes the Entry of a record read under a request, copying what it returns
// through sl. The record's Attrs must hold lower-case base names.
func entryOf(r *Record, projs []projection, all bool, sl *slab) Entry {
	e := Entry{DN: sl.keep(r.DN)}
	e.Key = e.DN
	if all {
		e.Attrs = make(map[string][]string, len(r.Attrs)+len(projs))
		for _, a := range r.Attrs {
			e.Attrs[a.Name] = sl.take(a.Values)
		}
	} else {
		// sized by what the record holds: a template's attribute list errs on the side
		// of more names, and a map sized for them all was most of an entry's cost
		e.Attrs = newAttrs(min(len(r.Attrs), len(projs)))
	}
	for _, p := range projs {
		if v := r.values(p.lower); v != nil {
			e.Attrs[p.name] = sl.take(v)
		}
	}
	return e
}
