package reconcile

import (
	"hash/maphash"

	"github.com/roster-dev/roster/schema"
	"github.com/roster-dev/roster/schema/account"
	"github.com/roster-dev/roster/state"
)

// digester digests objects as state.Index does (see state.DigestSpec): the fields the diff
// compares (vmrFieldChanges, deviceFieldChanges, userFieldChanges), so an object whose
// digest equals its entry's rendering is one the diff would leave unchanged. A template's
// overridable fields are masked, as vmrUpdate keeps the stored ones.
type digester struct{ spec *state.DigestSpec }

func newDigester(repo *schema.Repo) *digester {
	spec := &state.DigestSpec{Seed: maphash.MakeSeed(), VMRMask: map[string][]string{}, DeviceMask: map[string][]string{}}
	for _, t := range repo.Templates {
		if t.VMR != nil && len(t.VMR.Overridable) > 0 {
			spec.VMRMask[t.Name] = vmrMask(setOf(t.VMR.Overridable))
		}
		if t.Device != nil && len(t.Device.Overridable) > 0 {
			spec.DeviceMask[t.Name] = deviceMask(setOf(t.Device.Overridable))
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

// vmrMask lists the digest fields that overridable makes vmrUpdate keep: those a probe VMR
// loses when the overridable fields are taken from an empty stored one. So the mask can
// never disagree with applyVMROverrides.
func vmrMask(overridable map[string]bool) []string {
	probe := account.VMR{Name: "n", Description: "d", Aliases: []string{"a"}, PIN: "p", GuestPIN: "g", AllowGuests: true,
		MaxCallrateIn: 1, MaxCallrateOut: 1, ParticipantLimit: 1, Tag: "t", OwnerEmail: "o"}
	w := probe
	applyVMROverrides(&w, &account.VMR{}, &DesiredVMR{Overridable: overridable})
	var mask []string
	for _, f := range []struct {
		name    string
		emptied bool
	}{
		{"name", w.Name == ""}, {"description", w.Description == ""}, {"aliases", len(w.Aliases) == 0},
		{"pin", w.PIN == ""}, {"guest_pin", w.GuestPIN == ""}, {"allow_guests", !w.AllowGuests},
		{"max_callrate_in", w.MaxCallrateIn == 0}, {"max_callrate_out", w.MaxCallrateOut == 0},
		{"participant_limit", w.ParticipantLimit == 0}, {"tag", w.Tag == ""}, {"owner_email", w.OwnerEmail == ""},
	} {
		if f.emptied {
			mask = append(mask, f.name)
		}
	}
	return mask
}

func deviceMask(overridable map[string]bool) []string {
	w := account.Device{Alias: "a", Description: "d", Username: "u", Password: "p", Tag: "t", OwnerEmail: "o"}
	applyDeviceOverrides(&w, &account.Device{}, &DesiredDevice{Overridable: overridable})
	var mask []string
	for _, f := range []struct {
		name    string
		emptied bool
	}{
		{"description", w.Description == ""}, {"username", w.Username == ""}, {"password", w.Password == ""},
		{"tag", w.Tag == ""}, {"owner_email", w.OwnerEmail == ""},
	} {
		if f.emptied {
			mask = append(mask, f.name)
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
