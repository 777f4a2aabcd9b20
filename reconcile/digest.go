package reconcile

import (
	"encoding/binary"
	"hash/maphash"

	"github.com/roster-dev/roster/schema"
	"github.com/roster-dev/roster/state"
)

// digester computes the digests of state.Index: a 64-bit hash of exactly the fields the
// diff compares (vmrFieldChanges, deviceFieldChanges, userFieldChanges), so that an object
// whose digest equals its entry's rendering is one the diff would leave unchanged. The
// fields a template makes overridable are left out, as vmrUpdate keeps the stored ones.
//
// The seed is random per process: digests never leave it, and no one can craft directory
// values that collide (two different objects collide with odds of 2^-64 per comparison).
type digester struct {
	seed             maphash.Seed
	vmrMask, devMask map[string]map[string]bool // overridable fields, by template name
}

func newDigester(repo *schema.Repo) *digester {
	g := &digester{seed: maphash.MakeSeed(), vmrMask: map[string]map[string]bool{}, devMask: map[string]map[string]bool{}}
	for _, t := range repo.Templates {
		if t.VMR != nil && len(t.VMR.Overridable) > 0 {
			g.vmrMask[t.Name] = setOf(t.VMR.Overridable)
		}
		if t.Device != nil && len(t.Device.Overridable) > 0 {
			g.devMask[t.Name] = setOf(t.Device.Overridable)
		}
	}
	return g
}

func setOf(list []string) map[string]bool {
	m := make(map[string]bool, len(list))
	for _, s := range list {
		m[s] = true
	}
	return m
}

func (g *digester) digests() state.Digests {
	return state.Digests{VMR: g.vmr, Device: g.device, User: g.user, Owner: g.owner}
}

// owner hashes an owner (sync tag and owner key; see ownerKey).
func (g *digester) owner(tag, key string) uint64 {
	var h hasher
	h.h.SetSeed(g.seed)
	h.str(tag)
	h.str(key)
	return h.h.Sum64()
}

// email hashes a user's (lower-case) email.
func (g *digester) email(email string) uint64 { return maphash.String(g.seed, email) }

// hasher writes length-prefixed fields, so that no two field lists hash alike by shifting
// bytes from one field to the next.
type hasher struct{ h maphash.Hash }

func (h *hasher) str(s string) {
	var n [binary.MaxVarintLen64]byte
	h.h.Write(n[:binary.PutUvarint(n[:], uint64(len(s)))])
	h.h.WriteString(s)
}

func (h *hasher) int(v int) {
	var n [binary.MaxVarintLen64]byte
	h.h.Write(n[:binary.PutVarint(n[:], int64(v))])
}

func (h *hasher) bool(b bool) {
	if b {
		h.h.WriteByte(1)
	} else {
		h.h.WriteByte(0)
	}
}

func (g *digester) vmr(v *state.VMR) uint64 {
	if ov := g.vmrMask[v.SyncTag]; len(ov) > 0 && v.SyncTag != state.ManualTag {
		w := *v
		applyVMROverrides(&w, &state.VMR{}, &DesiredVMR{Overridable: ov}) // overridable fields → zero
		v = &w
	}
	var h hasher
	h.h.SetSeed(g.seed)
	h.str(v.Name)
	h.str(v.Description)
	h.int(len(v.Aliases))
	for _, a := range v.Aliases {
		h.str(a)
	}
	h.str(v.PIN)
	h.str(v.GuestPIN)
	h.bool(v.AllowGuests)
	h.int(v.MaxCallrateIn)
	h.int(v.MaxCallrateOut)
	h.int(v.ParticipantLimit)
	h.str(v.Tag)
	h.str(v.OwnerEmail)
	h.str(v.SyncTag)
	h.str(v.EntryKey)
	return h.h.Sum64()
}

func (g *digester) device(d *state.Device) uint64 {
	if ov := g.devMask[d.SyncTag]; len(ov) > 0 && d.SyncTag != state.ManualTag {
		w := *d
		applyDeviceOverrides(&w, &state.Device{}, &DesiredDevice{Overridable: ov})
		d = &w
	}
	var h hasher
	h.h.SetSeed(g.seed)
	h.str(d.Alias)
	h.str(d.Description)
	h.str(d.Username)
	h.str(d.Password)
	h.str(d.Tag)
	h.str(d.OwnerEmail)
	h.str(d.SyncTag)
	h.str(d.EntryKey)
	return h.h.Sum64()
}

// user digests what userFieldChanges compares; the email is the user's key, and USERID
// and the activation flag are never changed by a plan.
func (g *digester) user(u *state.User) uint64 {
	var h hasher
	h.h.SetSeed(g.seed)
	h.str(u.FirstName)
	h.str(u.LastName)
	h.str(u.Language)
	h.str(u.HostPrivilege)
	h.str(u.TimeZone)
	h.str(string(u.Tracking))
	h.bool(u.Active)
	h.str(u.Origin)
	h.str(u.License)
	h.str(u.SyncTag)
	h.str(u.EntryKey)
	return h.h.Sum64()
}
