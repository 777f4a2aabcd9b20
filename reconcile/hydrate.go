package reconcile

import (
	"cmp"
	"context"
	"slices"
	"strings"

	"github.com/roster-dev/roster/state"
)

// hydrate loads in full the actual objects the diff must see, after Render compared the
// index with the directory and marked what its entries render unchanged:
//
//   - every object not marked (changed, vanished, of a failed template or entry, declared
//     by hand, or of a template that left the repo);
//   - the object each changed desired object replaces (same owner, or same email);
//   - the holders of every VMR name, alias and device alias a changed object claims, so
//     conflicts with unchanged objects are found;
//   - the accounts of invitation rows (an existing member is not invited);
//   - everything, when a reminder or an announcement is due: it emails about objects,
//     or users, as they are.
//
// When changed objects are many (an eighth of the state or more) it loads everything:
// one scan is cheaper than that many lookups. The marked objects among those loaded
// become d.SameVMRs, SameDevices, SameUsers; the rest are counted in d.SameOther. The
// result is a partial state.Actual whose Totals are the whole state's.
func hydrate(ctx context.Context, db *state.DB, d *Desired) (*state.Actual, error) {
	ri := d.refs
	ix := ri.ix
	var ids state.IDs
	all := d.VMRs.Len()+d.Devices.Len()+d.Users.Len() >= (len(ix.VMRs)+len(ix.Devices)+len(ix.Users))/8+hydrateAllMin
	for _, r := range d.Reminders {
		if !ix.Small.RemindersDone[r.ID] {
			all = true
		}
	}
	all = all || announcementsDue(d.Announcements, ix.Small.Announced)
	if all {
		ids = state.IDs{VMRs: refIDs(ix.VMRs, nil), Devices: refIDs(ix.Devices, nil), Users: refIDs(ix.Users, nil)}
	} else {
		ids = state.IDs{VMRs: refIDs(ix.VMRs, ri.sameVMR), Devices: refIDs(ix.Devices, ri.sameDevice), Users: refIDs(ix.Users, ri.sameUser)}
		var names, aliases, devAliases []string
		for _, dv := range d.VMRs.All() {
			if i, ok := ri.vmr(vmrIdent(&dv.VMR).owner()); ok {
				ids.VMRs = append(ids.VMRs, ix.VMRs[i].ID)
			}
			names = append(names, dv.Name)
			aliases = append(aliases, dv.Aliases...)
		}
		for _, dd := range d.Devices.All() {
			if i, ok := ri.device(deviceIdent(&dd.Device).owner()); ok {
				ids.Devices = append(ids.Devices, ix.Devices[i].ID)
			}
			devAliases = append(devAliases, dd.Alias)
		}
		for k := range d.Users.Len() {
			if i, ok := ri.user(strings.ToLower(d.Users.Key(k))); ok { // a user's key is its email
				ids.Users = append(ids.Users, ix.Users[i].ID)
			}
		}
		for _, in := range d.Invites {
			if i, ok := ri.user(strings.ToLower(in.Email)); ok {
				ids.Users = append(ids.Users, ix.Users[i].ID)
			}
		}
		if len(names)+len(aliases)+len(devAliases) > 0 && len(ix.VMRs)+len(ix.Devices) > 0 {
			vs, ds, err := db.ClaimHolders(ctx, ix, names, aliases, devAliases)
			if err != nil {
				return nil, err
			}
			ids.VMRs, ids.Devices = append(ids.VMRs, vs...), append(ids.Devices, ds...)
		}
	}
	a, err := db.LoadObjects(ctx, ix, ids)
	if err != nil {
		return nil, err
	}
	// The unchanged among the loaded are the diff's to see; the others are only counted.
	d.SameOther = ri.sameVMRs + ri.sameDevs + ri.sameUsers
	for _, v := range a.VMRs {
		if i := refPos(ix.VMRs, v.ID); i >= 0 && ri.sameVMR[i] {
			d.SameVMRs = append(d.SameVMRs, v)
			d.SameOther--
		}
	}
	for _, v := range a.Devices {
		if i := refPos(ix.Devices, v.ID); i >= 0 && ri.sameDevice[i] {
			d.SameDevices = append(d.SameDevices, v)
			d.SameOther--
		}
	}
	for _, u := range a.Users {
		if i := refPos(ix.Users, u.ID); i >= 0 && ri.sameUser[i] {
			d.SameUsers = append(d.SameUsers, u)
			d.SameOther--
		}
	}
	return a, nil
}

// hydrateAllMin: below this many changed objects, hydrate never loads everything (a
// variable for the property test, which tries both ways).
var hydrateAllMin = 64

// refIDs returns the ids of refs not marked same (all when same is nil).
func refIDs[R interface{ RowID() int64 }](refs []R, same []bool) []int64 {
	var out []int64
	for i := range refs {
		if same == nil || !same[i] {
			out = append(out, refs[i].RowID())
		}
	}
	return out
}

// refPos finds id in refs, which the index holds in id order; -1 when absent.
func refPos[R interface{ RowID() int64 }](refs []R, id int64) int {
	i, ok := slices.BinarySearchFunc(refs, id, func(r R, id int64) int { return cmp.Compare(r.RowID(), id) })
	if !ok {
		return -1
	}
	return i
}
