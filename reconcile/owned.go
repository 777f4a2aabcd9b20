package reconcile

// Objects owned by a template or declared by hand (VMRs and devices): who owns what,
// matching desired objects to stored ones, and the field-wise update of either kind.

import (
	"strings"

	"github.com/roster-dev/roster/schema/account"
	"github.com/roster-dev/roster/state"
)

// owner identifies an object across reconciles: its template and entry key, or, for an
// object declared by hand, "manual" and its name. A struct of two strings the object
// already holds: indexing 400,000 objects by owner allocates nothing per object.
type owner struct{ tag, key string }

func ownerKey(syncTag, entryKey, name string) owner {
	return owner{syncTag, state.OwnerKey(syncTag, entryKey, name)}
}

// userOwner is the owner key of a user account, for Desired.Keep.
func userOwner(email string) owner { return owner{"\x00user", email} }

// ident is who owns an object and what it is called.
type ident struct{ tag, entryKey, name string }

func (i ident) owner() owner { return ownerKey(i.tag, i.entryKey, i.name) }

func vmrIdent(v *account.VMR) ident { return ident{v.SyncTag, v.EntryKey, v.Name} }

func deviceIdent(v *account.Device) ident { return ident{v.SyncTag, v.EntryKey, v.Alias} }

// matchOwned is what VMRs and devices share: match each desired object (ids, claims) to
// the actual object with the same owner, plan the deletion of actual objects nobody
// desires any more — unless their template failed or their entry is kept this cycle, in
// which case their claims stay fixed — and resolve claims. It returns, per desired object,
// its actual match (or nil) and whether it must be skipped.
func matchOwned[A any](p *Plan, d *Desired, actual []*A, byOwner map[owner]*A, same []*A, idOf func(*A) ident,
	claimsOf func(*A) []claim, ids []ident, claims [][]claim, settled func(string) bool, deleteChange func(*A) *Change) (olds []*A, skip []bool) {
	matched := make(map[*A]bool, len(actual))
	for _, x := range same {
		if !matched[x] {
			matched[x] = true
			p.Summary.Unchanged++
		}
	}
	flux := map[*A]bool{}
	cs := make([]claimant, len(ids))
	olds = make([]*A, len(ids))
	for i, id := range ids {
		owner := id.owner()
		old := byOwner[owner]
		if old != nil && matched[old] {
			old = nil // two entries with one key: the second is a duplicate, caught by claims
		}
		cs[i] = claimant{owner: owner, key: id.name, claims: claims[i]}
		if old != nil {
			matched[old], flux[old] = true, true
			olds[i] = old
			cs[i].current = claimsOf(old)
		}
	}
	deleted := map[*A]bool{}
	for _, x := range actual {
		if matched[x] {
			continue
		}
		id := idOf(x)
		if settled(id.tag) || d.Keep[id.owner()] {
			continue // left exactly as it is this cycle: its claims stay held
		}
		// Unmatched and its template did not fail: the entry is gone, so the object goes.
		deleted[x] = true
		p.changes = append(p.changes, deleteChange(x))
	}
	// Claims of actual objects that stay as they are, indexed only when some desired
	// object is new or changed (a no-op plan of 400,000 rooms builds nothing here).
	var byClaim map[claim]*A
	held := func(c claim) (holder, bool) {
		if byClaim == nil {
			byClaim = make(map[claim]*A, 3*len(actual))
			for _, x := range actual {
				for _, cl := range claimsOf(x) {
					byClaim[cl] = x
				}
			}
		}
		x := byClaim[c]
		if x == nil || deleted[x] || flux[x] {
			return holder{}, false
		}
		id := idOf(x)
		return holder{owner: id.owner(), tag: id.tag, key: id.name}, true
	}
	skip, warns := resolveClaims(cs, held)
	p.Warnings = append(p.Warnings, warns...)
	return olds, skip
}

// planOwned is the create-or-update step VMRs and devices share: a skipped object is
// unchanged (if it exists), one without an actual match is created, the rest updated —
// update reports false when nothing differs.
func planOwned[A, D any](p *Plan, n int, at func(int) *D, olds []*A, skip []bool, create func(int, *D), update func(*D, *A) bool) {
	for i := range n {
		switch {
		case skip[i]:
			if olds[i] != nil {
				p.Summary.Unchanged++
			}
		case olds[i] == nil:
			create(i, at(i))
		case !update(at(i), olds[i]):
			p.Summary.Unchanged++
		}
	}
}

// applyOverrides applies SPEC §5.4: overridable fields are written on create only,
// and overrides.yaml wins over the pattern and over the stored value.
func applyOverrides[T any](fields []account.Field[T], want, old *T, overridable map[string]bool, overrides map[string]string) {
	for i := range fields {
		f := &fields[i]
		if old != nil && f.OverriddenBy(overridable) {
			f.Copy(want, old)
		}
		if v, ok := overrides[f.Name]; ok && f.Override {
			f.Parse(want, v)
		}
	}
}

// fieldChanges lists the compared fields that differ. Values are boxed only for
// differences: a no-op plan compares hundreds of thousands of VMRs.
func fieldChanges[T any](fields []account.Field[T], old, want *T) []FieldChange {
	var fc []FieldChange
	for i := range fields {
		f := &fields[i]
		if !f.Compared || f.Equal(old, want) {
			continue
		}
		if f.Type == account.Strings {
			fc = append(fc, FieldChange{Name: f.Name, Old: strings.Join(*f.List(old), ", "), New: strings.Join(*f.List(want), ", ")})
		} else {
			fc = append(fc, FieldChange{Name: f.Name, Old: f.Value(old), New: f.Value(want)})
		}
	}
	return fc
}

// ownedKind is what differs between the two kinds of owned objects, VMRs and devices:
// the diff plans either with the same code.
type ownedKind[T any] struct {
	kind   account.Kind
	fields []account.Field[T]
	id     func(*T) *int64
	// name is the object's key (a VMR's name, a device's alias); owner its primary
	// owner's email; tag its sync tag.
	name, owner, tag *account.Field[T]
	mail             func(*TemplateMail) *MailSpec
}

func newOwnedKind[T any](kind account.Kind, fields []account.Field[T], key string, id func(*T) *int64,
	mail func(*TemplateMail) *MailSpec) *ownedKind[T] {
	return &ownedKind[T]{kind: kind, fields: fields, id: id, name: account.Lookup(fields, key),
		owner: account.Lookup(fields, "primary_owner_email_address"), tag: account.Lookup(fields, "sync_tag"), mail: mail}
}

var (
	vmrKind = newOwnedKind(account.KindVMR, account.VMRFields, "name", func(v *account.VMR) *int64 { return &v.ID },
		func(m *TemplateMail) *MailSpec { return m.VMR })
	deviceKind = newOwnedKind(account.KindDevice, account.DeviceFields, "alias", func(d *account.Device) *int64 { return &d.ID },
		func(m *TemplateMail) *MailSpec { return m.Device })
)

// update is what the desired x makes of the existing old: the object to write and the
// fields that differ. (The accessors are func values: an object on the stack passed to
// them would move to the heap, so the one to write is allocated once, here.)
func (k *ownedKind[T]) update(old, x *T, overridable map[string]bool, overrides map[string]string) (*T, []FieldChange) {
	want := new(T)
	*want = *x
	applyOverrides(k.fields, want, old, overridable, overrides)
	*k.id(want) = *k.id(old)
	return want, fieldChanges(k.fields, old, want)
}

// overrideNew applies overrides.yaml to a creation; it reports whether there were any.
func (k *ownedKind[T]) overrideNew(x *T, overridable map[string]bool, overrides map[string]string) bool {
	if len(overrides) == 0 {
		return false
	}
	applyOverrides(k.fields, x, nil, overridable, overrides)
	return true
}

// deletion is the change that deletes x.
func (k *ownedKind[T]) deletion(x *T) *Change {
	return &Change{Kind: k.kind, Action: account.ActionDelete, Key: *k.name.Str(x), Template: *k.tag.Str(x), oldObj: x}
}

// planUpdate adds the update of old to the desired x, and its email if the template's
// notify_on asks for one; false when nothing differs.
func (k *ownedKind[T]) planUpdate(p *Plan, d *Desired, old, x *T, overridable map[string]bool, overrides map[string]string) bool {
	want, fields := k.update(old, x, overridable, overrides)
	if len(fields) == 0 {
		return false
	}
	p.changes = append(p.changes, &Change{Kind: k.kind, Action: account.ActionUpdate, Key: *k.name.Str(want),
		Template: *k.tag.Str(want), Fields: fields, newObj: want, oldObj: old})
	if mail := d.mailFor(*k.tag.Str(x), *k.name.Str(x)); mail != nil && mail.notifies(fields) {
		k.email(p, mail, want, account.EmailUpdated)
	}
	return true
}

// addEmail adds the email of x, as its template or declaration says; it returns it, or
// nil when there is none.
func (k *ownedKind[T]) addEmail(p *Plan, d *Desired, x *T, action account.Action) *Email {
	return k.email(p, d.mailFor(*k.tag.Str(x), *k.name.Str(x)), x, action)
}

// addCreated adds the email of the creation at (x, as it was recorded), as addEmail;
// x is not held: the plan's creations have it (planemails.go).
func (k *ownedKind[T]) addCreated(p *Plan, d *Desired, x *T, at int32) {
	if e, ok := k.emailOf(d.mailFor(*k.tag.Str(x), *k.name.Str(x)), x, account.EmailCreated); ok {
		p.emails.addCreation(&e, at, 0)
	}
}

// email adds the email m says x's owner gets. It returns the email, or nil.
func (k *ownedKind[T]) email(p *Plan, m *TemplateMail, x *T, action account.Action) *Email {
	e, ok := k.emailOf(m, x, action)
	if !ok {
		return nil
	}
	p.emails.add(&e)
	return &e
}

// emailOf is the email m says x's owner gets; a reminder goes out even when the template
// sends none on its own. false when there is none.
func (k *ownedKind[T]) emailOf(m *TemplateMail, x *T, action account.Action) (Email, bool) {
	to := *k.owner.Str(x)
	if m == nil || k.mail(m) == nil || (!m.Send && action != account.EmailReminder) || to == "" {
		return Email{}, false
	}
	return Email{To: to, Kind: k.kind, Action: action, Key: *k.name.Str(x), Template: *k.tag.Str(x), mail: k.mail(m), obj: x}, true
}
