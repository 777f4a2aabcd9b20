package reconcile

import (
	"slices"

	"github.com/roster-dev/roster/state"
)

// movedTables returns the lookup tables of fresh, the index refreshed from ix after the
// engine's own apply, made from t, ix's tables: t itself when every object kept its
// position; else a copy of t without the rows deleted, with the positions after them
// moved down, and with the new rows and those whose hash changed put in. Building them
// anew here would take 1.2 million insertions at 400,000 people (~0.1 s); in the next
// cycle, a quiet one (≤ 0.2 s), more.
func movedTables(t *refTables, ix, fresh *state.Index, dg *digester) *refTables {
	if samePositions(ix, fresh) {
		return t
	}
	owner := func(r *state.ObjectRef) uint64 { return r.Owner }
	sameOwner := func(a, b *state.ObjectRef) bool { return a.Owner == b.Owner }
	return &refTables{
		vmrs:    movedTable(t.vmrs, ix.VMRs, fresh.VMRs, owner, sameOwner),
		devices: movedTable(t.devices, ix.Devices, fresh.Devices, owner, sameOwner),
		users: movedTable(t.users, ix.Users, fresh.Users, func(u *state.UserRef) uint64 { return dg.email(u.Email()) },
			func(a, b *state.UserRef) bool { return a.Email() == b.Email() }),
	}
}

// movedTable is t, the table of old (hash gives an object's hash), made the table of
// fresh (both in id order; same says two versions of a row hash alike) without
// rehashing the rows kept: a copy, so that t stays right for old.
func movedTable[R interface{ RowID() int64 }](t posTable, old, fresh []R, hash func(*R) uint64, same func(a, b *R) bool) posTable {
	var gone, out []int32 // old positions: rows deleted; rows deleted or hashed otherwise
	var in []int32        // new positions: rows added or hashed otherwise
	j := 0
	for i := range old {
		id := old[i].RowID()
		if j < len(fresh) && fresh[j].RowID() < id {
			return tableOf(fresh, hash) // a row added among the old ones: positions move up too
		}
		if j < len(fresh) && fresh[j].RowID() == id {
			if !same(&old[i], &fresh[j]) {
				out, in = append(out, int32(i)), append(in, int32(j))
			}
			j++
			continue
		}
		gone, out = append(gone, int32(i)), append(out, int32(i))
	}
	for ; j < len(fresh); j++ {
		in = append(in, int32(j))
	}
	if 2*len(fresh) > len(t.slots) {
		return tableOf(fresh, hash)
	}
	m := posTable{slots: slices.Clone(t.slots), mask: t.mask}
	for _, i := range out {
		if !m.remove(i, hash(&old[i])) {
			return tableOf(fresh, hash)
		}
	}
	if len(gone) > 0 { // a kept row moves down by the rows deleted before it
		for s := range m.slots {
			if p := m.slots[s].pos; p != 0 {
				n, _ := slices.BinarySearch(gone, p-1)
				m.slots[s].pos = p - int32(n)
			}
		}
	}
	for _, j := range in {
		m.insert(hash(&fresh[j]), j)
	}
	return m
}

// tableOf is the table of rows built anew.
func tableOf[R any](rows []R, hash func(*R) uint64) posTable {
	t := newPosTable(len(rows))
	for i := range rows {
		t.insert(hash(&rows[i]), int32(i))
	}
	return t
}

// remove takes pos, hashed h, out of the table, moving back the positions after it in
// its run that would no longer be found. False when the table does not hold pos.
func (t *posTable) remove(pos int32, h uint64) bool {
	i := h & t.mask
	for t.slots[i].pos != pos+1 {
		if t.slots[i].pos == 0 {
			return false
		}
		i = (i + 1) & t.mask
	}
	for j := i; ; {
		j = (j + 1) & t.mask
		s := t.slots[j]
		if s.pos == 0 {
			break
		}
		// The position at j stays when its home slot k lies cyclically in (i, j]: a
		// search from k still reaches it without passing the hole at i.
		k := s.hash() & t.mask
		if (i < j && i < k && k <= j) || (i > j && (k > i || k <= j)) {
			continue
		}
		t.slots[i], i = s, j
	}
	t.slots[i] = posSlot{}
	return true
}

// samePositions says whether every object of b is at its position in a with the same
// owner (a user: the same email), as after a write that only updated objects in place.
func samePositions(a, b *state.Index) bool {
	if len(a.VMRs) != len(b.VMRs) || len(a.Devices) != len(b.Devices) || len(a.Users) != len(b.Users) {
		return false
	}
	for i := range a.VMRs {
		if a.VMRs[i].ID != b.VMRs[i].ID || a.VMRs[i].Owner != b.VMRs[i].Owner {
			return false
		}
	}
	for i := range a.Devices {
		if a.Devices[i].ID != b.Devices[i].ID || a.Devices[i].Owner != b.Devices[i].Owner {
			return false
		}
	}
	for i := range a.Users {
		if a.Users[i].ID != b.Users[i].ID || a.Users[i].Email() != b.Users[i].Email() {
			return false
		}
	}
	return true
}

// moveMarks is marks, by position in old, carried to the positions of fresh by id (both
// lists are in id order); mark computes an object's mark that old does not have.
func moveMarks[R interface{ RowID() int64 }](old []R, marks []bool, fresh []R, mark func(i int) bool) []bool {
	out := make([]bool, len(fresh))
	j := 0
	for i := range fresh {
		id := fresh[i].RowID()
		for j < len(old) && old[j].RowID() < id {
			j++
		}
		if j < len(old) && old[j].RowID() == id {
			out[i] = marks[j]
		} else {
			out[i] = mark(i)
		}
	}
	return out
}
