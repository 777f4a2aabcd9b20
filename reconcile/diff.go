package reconcile

import (
	"strings"

	"github.com/roster-dev/roster/schema/account"
	"github.com/roster-dev/roster/state"
)

// Diff compares desired with actual and returns the plan. It is pure: no I/O, and the
// same inputs always give the same plan. Objects are matched by owner (sync tag + entry
// key for template objects, name for declared ones), so a renamed entry is an update.
func Diff(d *Desired, a *state.Actual) *Plan {
	p := &Plan{FormatVersion: FormatVersion, Commit: d.Commit, StateVersion: a.StateVersion}
	// Room for a change per rendered object (unchanged ones are not in d): a first apply's
	// 1.2 million changes fill it without growing it.
	// A warning's key is often an entry's DN, a string in the directory reader's slab:
	// held as it is, 8,000 no_email warnings of 400,000 people kept a third of the slab
	// (tens of megabytes) alive until the apply ended. Copied, the slab is freed.
	for i := range d.Warnings {
		d.Warnings[i].Key = strings.Clone(d.Warnings[i].Key)
	}
	p.Warnings = append(p.Warnings, d.Warnings...)
	p.Errors = append(p.Errors, d.Errors...)
	failed := map[string]bool{}
	for _, t := range d.Templates {
		if t.Err != nil {
			failed[t.Name] = true
			p.Errors = append(p.Errors, Problem{Template: t.Name, Message: t.Err.Error()})
		}
	}
	// A template's objects are "settled" — changed by nobody — when the template failed.
	settled := func(syncTag string) bool { return failed[syncTag] }

	diffTracking(p, d, a)
	diffVMRs(p, d, a, settled)
	diffDevices(p, d, a, settled)
	diffUsers(p, d, a, settled)
	diffInvites(p, d, a)
	planReminders(p, d, a)
	planAnnouncements(p, d, a)
	p.Summary.Unchanged += d.SameOther
	p.Templates = templateCounts(p, d, a)
	p.Safety = computeSafety(p, d, a)
	p.finish()
	return p
}

// diffVMRs matches VMRs by owner. A VMR whose entry vanished — or whose template left
// the repo — is deleted; the safety guard stops a mass removal.
func diffVMRs(p *Plan, d *Desired, a *state.Actual, settled func(string) bool) {
	n := d.VMRs.Len()
	ids := make([]ident, n)
	claims := make([][]claim, n)
	for i, dv := range d.VMRs.All() {
		ids[i], claims[i] = vmrIdent(&dv.VMR), vmrClaims(&dv.VMR)
	}
	idx := d.indexFor(a)
	olds, skip := matchOwned(p, d, a.VMRs, idx.vmrs, d.SameVMRs, vmrIdent, vmrClaims, ids, claims, settled, vmrKind.deletion)
	planOwned(p, n, d.VMRs.At, olds, skip, func(i int, dv *DesiredVMR) {
		var own *DesiredVMR // the creation is the VMR as overridden
		if vmrKind.overrideNew(&dv.VMR, dv.Overridable, dv.Overrides) {
			own = dv
		}
		p.created.addVMR(&d.VMRs, i, own, dv.SyncTag)
		vmrKind.addCreated(p, d, &dv.VMR, p.created.vmr[len(p.created.vmr)-1])
	}, func(dv *DesiredVMR, old *account.VMR) bool {
		return vmrKind.planUpdate(p, d, old, &dv.VMR, dv.Overridable, dv.Overrides)
	})
}

// diffDevices matches devices by owner as diffVMRs does VMRs; the devices of disabled
// accounts go, unless their template keeps them.
func diffDevices(p *Plan, d *Desired, a *state.Actual, settled func(string) bool) {
	var want []int32 // the devices to have: those of disabled accounts go
	var ids []ident
	var claims [][]claim
	for i, dd := range d.Devices.All() {
		if !dd.Disabled {
			want = append(want, int32(i))
			ids, claims = append(ids, deviceIdent(&dd.Device)), append(claims, deviceClaims(&dd.Device))
		}
	}
	idx := d.indexFor(a)
	olds, skip := matchOwned(p, d, a.Devices, idx.devices, d.SameDevices, deviceIdent, deviceClaims, ids, claims, settled, deviceKind.deletion)
	at := func(k int) *DesiredDevice { return d.Devices.At(int(want[k])) }
	planOwned(p, len(want), at, olds, skip, func(k int, dd *DesiredDevice) {
		var own *DesiredDevice // the creation is the device as overridden
		if deviceKind.overrideNew(&dd.Device, dd.Overridable, dd.Overrides) {
			own = dd
		}
		p.created.addDevice(&d.Devices, int(want[k]), own, dd.SyncTag)
		deviceKind.addCreated(p, d, &dd.Device, p.created.device[len(p.created.device)-1])
	}, func(dd *DesiredDevice, old *account.Device) bool {
		return deviceKind.planUpdate(p, d, old, &dd.Device, dd.Overridable, dd.Overrides)
	})
}
