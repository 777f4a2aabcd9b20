package reconcile

import (
	"strings"

	"github.com/roster-dev/roster/schema/account"
	"github.com/roster-dev/roster/state"
)

// actualIndex finds actual objects by owner (VMRs, devices) and by email (users). It is
// built once per reconcile and shared by Render (to drop entries that change nothing)
// and Diff.
type actualIndex struct {
	of      *state.Actual
	vmrs    map[owner]*account.VMR
	devices map[owner]*account.Device
	users   map[string]*account.User
}

func indexActual(a *state.Actual) *actualIndex {
	idx := &actualIndex{of: a,
		vmrs:    make(map[owner]*account.VMR, len(a.VMRs)),
		devices: make(map[owner]*account.Device, len(a.Devices)),
		users:   make(map[string]*account.User, len(a.Users)),
	}
	for _, v := range a.VMRs {
		idx.vmrs[vmrIdent(v).owner()] = v
	}
	for _, v := range a.Devices {
		idx.devices[deviceIdent(v).owner()] = v
	}
	for _, u := range a.Users {
		idx.users[strings.ToLower(u.Email)] = u
	}
	return idx
}

// indexFor returns the index of a, reusing the one Render built when it is of a.
func (d *Desired) indexFor(a *state.Actual) *actualIndex {
	if d.index == nil || d.index.of != a {
		d.index = indexActual(a)
	}
	return d.index
}

// refIndex is the state.Index as Render uses it: each rendered object is looked up by
// owner (users by email) and, when its digest is the stored one, marked unchanged. Only
// what is not marked is then loaded in full (see hydrate).
type refIndex struct {
	ix                  *state.Index
	dg                  *digester
	vmrs, devices       posTable // by owner hash
	users               posTable // by email hash
	sameVMR, sameDevice []bool   // by position: rendered unchanged
	sameUser            []bool
	sameVMRs, sameDevs  int
	sameUsers           int
	late                *lateDigests // the digests the index left out (nil: none)
}

func newRefIndex(ix *state.Index, dg *digester) *refIndex {
	return newRefIndexWith(ix, dg, nil)
}

// refTables are a refIndex's lookup tables, which depend on the index alone: an
// incremental plan at an unchanged state reuses them (engine cache).
type refTables struct{ vmrs, devices, users posTable }

func buildRefTables(ix *state.Index, dg *digester) *refTables {
	t := &refTables{vmrs: newPosTable(len(ix.VMRs)), devices: newPosTable(len(ix.Devices)), users: newPosTable(len(ix.Users))}
	for i, r := range ix.VMRs {
		t.vmrs.insert(r.Owner, int32(i))
	}
	for i, r := range ix.Devices {
		t.devices.insert(r.Owner, int32(i))
	}
	for i, u := range ix.Users {
		t.users.insert(dg.email(u.Email()), int32(i))
	}
	return t
}

// newRefIndexWith is newRefIndex with the tables of ix already built (nil: build them).
func newRefIndexWith(ix *state.Index, dg *digester, t *refTables) *refIndex {
	if t == nil {
		t = buildRefTables(ix, dg)
	}
	return &refIndex{ix: ix, dg: dg, vmrs: t.vmrs, devices: t.devices, users: t.users,
		sameVMR: make([]bool, len(ix.VMRs)), sameDevice: make([]bool, len(ix.Devices)), sameUser: make([]bool, len(ix.Users))}
}

// vmr, device and user find an object of the index: its position, or false.
func (ri *refIndex) vmr(o owner) (int32, bool) {
	return ri.vmrs.findHash(ri.dg.owner(o.tag, o.key))
}

func (ri *refIndex) device(o owner) (int32, bool) {
	return ri.devices.findHash(ri.dg.owner(o.tag, o.key))
}

func (ri *refIndex) user(email string) (int32, bool) {
	return ri.users.find(ri.dg.email(email), func(i int32) bool { return ri.ix.Users[i].Email() == email })
}

// near is where the render cache's next lookup of each kind looks first: the position
// after the last one found, plus one (0: none yet; -1: guessing stopped). The directory
// returns its entries in the order the cache recorded them, and in about the order the
// first apply made their devices (not their VMRs, made in name order, nor their users,
// in email order): where the guess holds, the next slot of an array in place of a hash
// probe; after the first wrong guess the kind is looked up in its table only.
type near struct{ cached, vmr, device, user int32 }

// findNear is findHash trying first the position *at names (of n; is says whether the
// object at a position has hash h), *at updated.
func (t *posTable) findNear(at *int32, n int, h uint64, is func(int32) bool) (int32, bool) {
	if g := *at - 1; g >= 0 && int(g) < n {
		if is(g) {
			*at = g + 2
			return g, true
		}
		*at = -1
	}
	i, ok := t.findHash(h)
	if ok && *at == 0 {
		*at = i + 2
	}
	return i, ok
}

// vmrNear, deviceNear and userNear are vmr, device and user with the owner's hash (the
// email for a user) and a guess at.
func (ri *refIndex) vmrNear(h uint64, at *int32) (int32, bool) {
	return ri.vmrs.findNear(at, len(ri.ix.VMRs), h, func(i int32) bool { return ri.ix.VMRs[i].Owner == h })
}

func (ri *refIndex) deviceNear(h uint64, at *int32) (int32, bool) {
	return ri.devices.findNear(at, len(ri.ix.Devices), h, func(i int32) bool { return ri.ix.Devices[i].Owner == h })
}

func (ri *refIndex) userNear(email string, at *int32) (int32, bool) {
	if g := *at - 1; g >= 0 && int(g) < len(ri.ix.Users) {
		if ri.ix.Users[g].Email() == email {
			*at = g + 2
			return g, true
		}
		*at = -1
	}
	i, ok := ri.user(email)
	if ok && *at == 0 {
		*at = i + 2
	}
	return i, ok
}

// posTable maps a 64-bit hash to a position, with open addressing over 12-byte slots
// that hold the hash beside the position: a probe compares hashes in the table itself,
// and reads the object only for the one that matches (for VMRs and devices, whose
// equality is their owner hash, not at all). A probe of the positions alone read an
// object at random for every slot it passed, twice the cache misses of a no-op plan's
// 1.2 million lookups. Still a fifth of a Go map of owner keys (some 70 bytes an object).
// Two owners whose hashes collide (odds 2^-64 a pair) would share a slot chain and the
// eq check tells them apart by hash only; the digest, which covers the owner's fields,
// still has to match before anything counts as unchanged.
type posTable struct {
	slots []posSlot
	mask  uint64
}

// posSlot is one slot: a hash in two halves (no 8-byte alignment: 12 bytes, not 16) and
// its position+1; 0 is empty.
type posSlot struct {
	lo, hi uint32
	pos    int32
}

func (s *posSlot) hash() uint64 { return uint64(s.hi)<<32 | uint64(s.lo) }

func newPosTable(n int) posTable {
	size := 16
	for size < 2*n {
		size *= 2
	}
	return posTable{slots: make([]posSlot, size), mask: uint64(size - 1)}
}

func (t *posTable) insert(h uint64, pos int32) {
	for i := h & t.mask; ; i = (i + 1) & t.mask {
		if t.slots[i].pos == 0 {
			t.slots[i] = posSlot{lo: uint32(h), hi: uint32(h >> 32), pos: pos + 1}
			return
		}
	}
}

// find returns the first position in h's chain inserted with hash h for which eq holds.
func (t *posTable) find(h uint64, eq func(int32) bool) (int32, bool) {
	for i := h & t.mask; ; i = (i + 1) & t.mask {
		s := &t.slots[i]
		if s.pos == 0 {
			return 0, false
		}
		if s.hash() == h && eq(s.pos-1) {
			return s.pos - 1, true
		}
	}
}

// findHash is find where equal hashes are equal objects.
func (t *posTable) findHash(h uint64) (int32, bool) {
	return t.find(h, func(int32) bool { return true })
}

// markVMR, markDevice and markUser record an object rendered unchanged (once each).
func (ri *refIndex) markVMR(i int32) {
	if !ri.sameVMR[i] {
		ri.sameVMR[i] = true
		ri.sameVMRs++
	}
}

func (ri *refIndex) markDevice(i int32) {
	if !ri.sameDevice[i] {
		ri.sameDevice[i] = true
		ri.sameDevs++
	}
}

func (ri *refIndex) markUser(i int32) {
	if !ri.sameUser[i] {
		ri.sameUser[i] = true
		ri.sameUsers++
	}
}

func (ri *refIndex) unmarkUser(i int32) {
	if ri.sameUser[i] {
		ri.sameUser[i] = false
		ri.sameUsers--
	}
}
