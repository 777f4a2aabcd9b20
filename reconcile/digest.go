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
// masked, as vmrUpdate keeps the stored ones.
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
