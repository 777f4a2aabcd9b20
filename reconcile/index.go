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
