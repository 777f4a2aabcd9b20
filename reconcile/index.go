package reconcile

import (
	"strings"

	"github.com/roster-dev/roster/state"
)

// actualIndex finds actual objects by owner (VMRs, devices) and by email (users). It is
// built once per reconcile and shared by Render (to drop entries that change nothing)
// and Diff.
type actualIndex struct {
	of      *state.Actual
	vmrs    map[owner]*state.VMR
	devices map[owner]*state.Device
	users   map[string]*state.User
}

func indexActual(a *state.Actual) *actualIndex {
	idx := &actualIndex{of: a,
		vmrs:    make(map[owner]*state.VMR, len(a.VMRs)),
		devices: make(map[owner]*state.Device, len(a.Devices)),
		users:   make(map[string]*state.User, len(a.Users)),
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
	vmrs, devices       map[owner]int32 // position in ix.VMRs / ix.Devices
	users               map[string]int32
	sameVMR, sameDevice []bool // by position: rendered unchanged
	sameUser            []bool
	sameVMRs, sameDevs  int
	sameUsers           int
}

func newRefIndex(ix *state.Index, dg *digester) *refIndex {
	ri := &refIndex{ix: ix, dg: dg,
		vmrs:    make(map[owner]int32, len(ix.VMRs)),
		devices: make(map[owner]int32, len(ix.Devices)),
		users:   make(map[string]int32, len(ix.Users)),
		sameVMR: make([]bool, len(ix.VMRs)), sameDevice: make([]bool, len(ix.Devices)), sameUser: make([]bool, len(ix.Users)),
	}
	for i, r := range ix.VMRs {
		ri.vmrs[owner{r.Tag, r.Key}] = int32(i)
	}
	for i, r := range ix.Devices {
		ri.devices[owner{r.Tag, r.Key}] = int32(i)
	}
	for i, u := range ix.Users {
		ri.users[u.Email] = int32(i)
	}
	return ri
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
