package reconcile

import (
	"hash/maphash"

	"github.com/roster-dev/roster/schema"
	"github.com/roster-dev/roster/schema/account"
	"github.com/roster-dev/roster/state"
)

// digester digests objects as state.Index does (see state.DigestSpec): the fields the diff
// compares (fieldChanges, userFieldChanges), so an object whose digest equals its entry's
// rendering is one the diff would leave unchanged. A template's overridable fields are
// masked, as an update keeps the stored ones (ownedKind.update).
type digester struct{ spec *state.DigestSpec }

func newDigester(repo *schema.Repo) *digester {
	spec := &state.DigestSpec{Seed: maphash.MakeSeed(), VMRMask: map[string][]string{}, DeviceMask: map[string][]string{}}
	for _, t := range repo.Templates {
		if t.VMR != nil && len(t.VMR.Overridable) > 0 {
			spec.VMRMask[t.Name] = overriddenMask(account.VMRFields, setOf(t.VMR.Overridable))
		}
		if t.Device != nil && len(t.Device.Overridable) > 0 {
			spec.DeviceMask[t.Name] = overriddenMask(account.DeviceFields, setOf(t.Device.Overridable))
		}
	}
	return &digester{spec: spec}
}

func setOf(list []string) map[string]bool {
	m := make(map[string]bool, len(list))
	for _, s := range list {
		m[s] = true
	}
	return m
}

// overriddenMask lists the digest fields (by state.MaskName) that a template's
// overridable names make an update keep (applyOverrides): the compared fields but
// ownership ones, as the field lists say.
func overriddenMask[T any](fields []account.Field[T], overridable map[string]bool) []string {
	var mask []string
	for i := range fields {
		if f := &fields[i]; f.Compared && !f.Owned && f.OverriddenBy(overridable) {
			mask = append(mask, state.MaskName(f))
		}
	}
	return mask
}

func (g *digester) vmr(v *account.VMR) uint64       { return g.spec.VMR(v) }
func (g *digester) device(d *account.Device) uint64 { return g.spec.Device(d) }
func (g *digester) user(u *account.User) uint64     { return g.spec.User(u) }
func (g *digester) owner(tag, key string) uint64    { return g.spec.Owner(tag, key) }

// email hashes a user's (lower-case) email.
func (g *digester) email(email string) uint64 { return maphash.String(g.spec.Seed, email) }

// dropUnchanged replaces each rendered object whose digest is its actual counterpart's by
// the counterpart's position: the diff would plan no change for it (see digester). An
// object with overrides.yaml values is always compared in full by the diff.
func dropUnchanged(o *entryOutput, idx *refIndex) {
	if v := o.vmr; v != nil && len(v.Overrides) == 0 {
		if i, ok := idx.vmr(vmrIdent(&v.VMR).owner()); ok && idx.sameDigest(idx.dg.vmr(&v.VMR), lateVMRs, i, v.SyncTag) {
			o.vmr, o.sameVMR = nil, i+1
		}
	}
	if d := o.device; d != nil && !d.Disabled && len(d.Overrides) == 0 {
		if i, ok := idx.device(deviceIdent(&d.Device).owner()); ok && idx.sameDigest(idx.dg.device(&d.Device), lateDevices, i, d.SyncTag) {
			o.device, o.sameDevice = nil, i+1
		}
	}
	if u := o.user; u != nil {
		if i, ok := idx.user(u.Email); ok {
			if ref := &idx.ix.Users[i]; ref.SyncTag() == u.SyncTag && ref.EntryKey() == u.EntryKey && idx.sameDigest(idx.userDigest(u), lateUsers, i, u.SyncTag) {
				o.user, o.sameUser = nil, i+1
			}
		}
	}
}

// userDigest is the digest of the account du would leave (what userUpdate compares).
func (idx *refIndex) userDigest(du *DesiredUser) uint64 {
	u := du.User
	u.Active = du.Active && !du.Disabled
	return idx.dg.user(&u)
}
