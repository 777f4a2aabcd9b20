package reconcile

// Digests read late. A command whose render cache holds a template's entries loads the
// index without that template's digests (state.DigestSpec.Undigested): the entries the
// cache skips need none. An entry rendered after all (changed, or not settled) is
// compared by digest as always, with the digests of its objects read now: one by one for
// the first few, then all of a kind's at once, so a plan that renders many costs at most
// what reading the digests with the index would have. The same objects are so marked
// unchanged as with a full index, and the plan is the same.

import (
	"context"
	"errors"
	"slices"
	"sync"

	"github.com/roster-dev/roster/state"
)

// Kinds of lateDigests, with the tables they read.
const (
	lateVMRs = iota
	lateDevices
	lateUsers
)

var lateTables = [3]string{"vmrs", "devices", "users"}

// lateSingles is how many objects of a kind are read one by one before the whole kind is
// (a variable: the property test reads them all at once too).
var lateSingles = 256

type lateDigests struct {
	ctx  context.Context
	db   *state.DB
	ix   *state.Index
	spec *state.DigestSpec

	mu      sync.Mutex
	kinds   [3]lateKind
	failed  bool // a read failed: later ones are not tried (the objects compare in full)
	changed bool // the state moved since the index: the plan must be made again
}

type lateKind struct {
	single map[int32]uint64
	all    []uint64
	reads  int
}

// digest returns the digest of the object of kind at position pos in the index; false
// when it could not be read (the object is then compared in full, which is never wrong).
func (l *lateDigests) digest(kind int, pos int32) (uint64, bool) {
	if l == nil {
		return 0, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	k := &l.kinds[kind]
	if k.all != nil {
		return k.all[pos], true
	}
	if d, ok := k.single[pos]; ok {
		return d, true
	}
	if l.failed {
		return 0, false
	}
	var want []int64 // nil: all
	if k.reads < lateSingles {
		want = []int64{l.id(kind, pos)}
	}
	k.reads++
	got, ds, err := l.db.Digests(l.ctx, l.ix, l.spec, lateTables[kind], want)
	if err != nil {
		l.failed, l.changed = true, errors.Is(err, state.ErrStateChanged)
		return 0, false
	}
	if want == nil {
		if !slices.Equal(got, l.ids(kind)) { // not the index's rows: the state moved
			l.failed, l.changed = true, true
			return 0, false
		}
		k.all = ds
		return ds[pos], true
	}
	if len(got) != 1 || got[0] != want[0] {
		l.failed, l.changed = true, true
		return 0, false
	}
	if k.single == nil {
		k.single = map[int32]uint64{}
	}
	k.single[pos] = ds[0]
	return ds[0], true
}

// id is the id of the object of kind at position pos of the index.
func (l *lateDigests) id(kind int, pos int32) int64 {
	switch kind {
	case lateVMRs:
		return l.ix.VMRs[pos].ID
	case lateDevices:
		return l.ix.Devices[pos].ID
	}
	return l.ix.Users[pos].ID
}

// ids are the ids of kind's objects in the index, in its order (id order).
func (l *lateDigests) ids(kind int) []int64 {
	switch kind {
	case lateVMRs:
		return refIDs(l.ix.VMRs, nil)
	case lateDevices:
		return refIDs(l.ix.Devices, nil)
	}
	return refIDs(l.ix.Users, nil)
}

// reads is how many reads were made.
func (l *lateDigests) reads() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, k := range l.kinds {
		n += k.reads
	}
	return n
}

// stateChanged says whether a late read found the state moved on.
func (l *lateDigests) stateChanged() bool {
	if l == nil {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.changed
}

// storedDigest is the stored digest of the object of kind at position i of the index,
// of sync tag tag: from the index, or read late; false when unknown.
func (ri *refIndex) storedDigest(kind int, i int32, tag string) (uint64, bool) {
	if !ri.dg.spec.Digested(tag) {
		return ri.late.digest(kind, i)
	}
	switch kind {
	case lateVMRs:
		return ri.ix.VMRs[i].Digest, true
	case lateDevices:
		return ri.ix.Devices[i].Digest, true
	}
	return ri.ix.Users[i].Digest, true
}

// sameDigest says whether digest is the stored one of the object of kind at position i.
func (ri *refIndex) sameDigest(digest uint64, kind int, i int32, tag string) bool {
	d, ok := ri.storedDigest(kind, i, tag)
	return ok && d == digest
}
