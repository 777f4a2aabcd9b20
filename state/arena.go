package state

import "unsafe"

// arena holds the strings and structs of a loaded state in a few large allocations.
//
// Why: a state of 400,000 people is some 14 million small strings and structs if each is
// allocated on its own. Every garbage collection during a reconcile — and rendering a
// directory allocates a lot — then has to mark them all, one by one: it was the largest
// cost of a no-op plan. Packed into megabyte chunks they are a few hundred objects, and
// take a third less memory (no per-object size-class rounding).
//
// Strings in the arena are never modified after they are made (unsafe.String over bytes
// nobody writes again), so they are ordinary immutable strings to the rest of the program.
type arena struct {
	buf    []byte
	common map[string]string // low-cardinality values (tags, languages…): one copy each
}

const arenaChunk = 1 << 20

// str copies s into the arena.
func (ar *arena) str(s string) string {
	if s == "" {
		return ""
	}
	if len(ar.buf)+len(s) > cap(ar.buf) {
		// Chunks grow to arenaChunk: a small read (LoadObjects) wastes little.
		ar.buf = make([]byte, 0, max(min(2*cap(ar.buf), arenaChunk), 4096, len(s)))
	}
	start := len(ar.buf)
	ar.buf = append(ar.buf, s...)
	return unsafe.String(&ar.buf[start], len(s))
}

// join copies the parts, end to end, into the arena as one string.
func (ar *arena) join(parts ...string) string {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	if n == 0 {
		return ""
	}
	if len(ar.buf)+n > cap(ar.buf) {
		ar.buf = make([]byte, 0, max(min(2*cap(ar.buf), arenaChunk), 4096, n))
	}
	start := len(ar.buf)
	for _, p := range parts {
		ar.buf = append(ar.buf, p...)
	}
	return unsafe.String(&ar.buf[start], n)
}

// common returns the one arena copy of a value that repeats across rows.
func (ar *arena) intern(s string) string {
	if v, ok := ar.common[s]; ok {
		return v
	}
	if ar.common == nil {
		ar.common = map[string]string{}
	}
	if len(ar.common) > 4096 { // not low-cardinality after all: stop remembering
		return ar.str(s)
	}
	v := ar.str(s)
	ar.common[v] = v
	return v
}

// slab hands out structs from chunks growing to 4096.
type slab[T any] struct{ items []T }

func (s *slab[T]) next() *T {
	if len(s.items) == cap(s.items) {
		s.items = make([]T, 0, max(min(2*cap(s.items), 4096), 16))
	}
	s.items = s.items[:len(s.items)+1]
	return &s.items[len(s.items)-1]
}
