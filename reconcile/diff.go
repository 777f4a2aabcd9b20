package reconcile

import (
	"fmt"
	"sort"
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
	p.Summary.Unchanged += d.SameOther
	p.Templates = templateCounts(p, d, a)
	p.Safety = computeSafety(p, d, a)
	p.finish()
	return p
}

// owner identifies an object across reconciles: its template and entry key, or, for an
// object declared by hand, "manual" and its name. A struct of two strings the object
// already holds: indexing 400,000 objects by owner allocates nothing per object.
type owner struct{ tag, key string }

func ownerKey(syncTag, entryKey, name string) owner {
	return owner{syncTag, state.OwnerKey(syncTag, entryKey, name)}
}

// userOwner is the owner key of a user account, for Desired.Keep.
func userOwner(email string) owner { return owner{"\x00user", email} }

// claim is a unique value an object holds: a VMR name, an alias, a device alias.
type claim struct{ space, value string }

// claimant is one desired object's claims, and the claims its current version holds.
// Its template is owner.tag.
type claimant struct {
	owner   owner
	key     string // for messages
	claims  []claim
	current []claim // held by the matched actual object, kept if this one is skipped
}

// holder is who holds a claim at the end of the plan.
type holder struct {
	owner   owner
	tag     string
	key     string
	desired bool
}

// claimIndex maps claims to ints: one map per space, keyed by the value alone, so a
// first apply's 1.2 million claims take 16-byte keys instead of 32-byte ones.
type claimIndex map[string]map[string]int

func (x claimIndex) get(c claim) (int, bool) {
	v, ok := x[c.space][c.value]
	return v, ok
}

func (x claimIndex) put(c claim, v int) { x[c.space][c.value] = v }

// newClaimIndex sizes one map per space for the claims of cs (desired and current).
func newClaimIndex(cs []claimant) claimIndex {
	n := map[string]int{}
	for i := range cs {
		for _, c := range cs[i].claims {
			n[c.space]++
		}
		for _, c := range cs[i].current {
			n[c.space]++
		}
	}
	x := make(claimIndex, len(n))
	for space, k := range n {
		x[space] = make(map[string]int, k)
	}
	return x
}

// resolveClaims decides which desired objects must be skipped because a claim of theirs
// is held by an object they do not own (conflict, alias_clash) or by another desired
// object earlier in order (duplicate). held answers for actual objects that stay as they
// are (unchanged, or left alone this cycle). Skipping is monotone: a skipped object keeps
// its current claims, which can make others skip in turn, so the loop runs to a fixed point.
func resolveClaims(cs []claimant, held func(claim) (holder, bool)) (skip []bool, warns []Warning) {
	skip = make([]bool, len(cs))
	if len(cs) == 0 {
		return skip, nil
	}
	reason := map[int]Warning{} // of the skipped ones: few
	// taken maps a claim to the claimant holding it: i+1 for a desired claim of cs[i],
	// -(i+1) for the current claim of a skipped cs[i]. Small values keep a first apply's
	// map of 1.2 million claims cheap.
	holderOf := func(v int) holder {
		if v > 0 {
			c := cs[v-1]
			return holder{owner: c.owner, tag: c.owner.tag, key: c.key, desired: true}
		}
		c := cs[-v-1]
		return holder{owner: c.owner, tag: c.owner.tag, key: c.key}
	}
	for changed := true; changed; {
		changed = false
		taken := newClaimIndex(cs)
		for i := range cs {
			if skip[i] {
				for _, c := range cs[i].current {
					taken.put(c, -(i + 1))
				}
			}
		}
		for i := range cs {
			if skip[i] {
				continue
			}
			var blocked *claim
			var by holder
			for j, c := range cs[i].claims {
				var h holder
				v, ok := taken.get(c)
				if ok {
					h = holderOf(v)
				} else {
					h, ok = held(c)
				}
				if ok && h.owner != cs[i].owner {
					blocked, by = &cs[i].claims[j], h
					break
				}
			}
			if blocked == nil {
				for _, c := range cs[i].claims {
					taken.put(c, i+1)
				}
				continue
			}
			skip[i], changed = true, true
			reason[i] = claimWarning(cs[i], *blocked, by)
		}
	}
	for i := range cs {
		if skip[i] {
			warns = append(warns, reason[i])
		}
	}
	return skip, warns
}

func claimWarning(c claimant, cl claim, by holder) Warning {
	w := Warning{Key: c.key, Template: c.owner.tag}
	owner := by.tag
	if owner == account.ManualTag {
		owner = "declared in the repo"
	} else {
		owner = "owned by template " + owner
	}
	switch {
	case by.desired && cl.space != "vmr-name":
		w.Code = "duplicate_alias"
		w.Message = fmt.Sprintf("%s %q is also rendered for %q (%s); skipped", cl.space, cl.value, by.key, owner)
	case by.desired:
		w.Code = "conflict"
		w.Message = fmt.Sprintf("VMR name %q is also rendered for %q (%s); skipped", cl.value, by.key, owner)
	case cl.space == "vmr-name" || cl.space == "device":
		w.Code = "conflict"
		w.Message = fmt.Sprintf("%s %q exists and is %s; roster never overwrites it; skipped", spaceName(cl.space), cl.value, owner)
	default:
		w.Code = "alias_clash"
		w.Message = fmt.Sprintf("alias %q is held by %q (%s); skipped", cl.value, by.key, owner)
	}
	return w
}

func spaceName(space string) string {
	switch space {
	case "vmr-name":
		return "VMR"
	case "device":
		return "device alias"
	}
	return space
}

func vmrClaims(v *account.VMR) []claim {
	out := make([]claim, 0, 1+len(v.Aliases))
	out = append(out, claim{"vmr-name", v.Name})
	for _, a := range v.Aliases {
		out = append(out, claim{"alias", a})
	}
	return out
}

// ident is who owns an object and what it is called.
type ident struct{ tag, entryKey, name string }

func (i ident) owner() owner { return ownerKey(i.tag, i.entryKey, i.name) }

func vmrIdent(v *account.VMR) ident       { return ident{v.SyncTag, v.EntryKey, v.Name} }
func deviceIdent(v *account.Device) ident { return ident{v.SyncTag, v.EntryKey, v.Alias} }
func deviceClaims(v *account.Device) []claim {
	return []claim{{"device", v.Alias}}
}

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
	olds, skip := matchOwned(p, d, a.VMRs, idx.vmrs, d.SameVMRs, vmrIdent, vmrClaims, ids, claims, settled, func(v *account.VMR) *Change {
		return &Change{Kind: account.KindVMR, Action: account.ActionDelete, Key: v.Name, Template: v.SyncTag, oldObj: v}
	})
	planOwned(p, n, d.VMRs.At, olds, skip, func(i int, dv *DesiredVMR) {
		var own *DesiredVMR // the creation is the VMR as overridden
		if len(dv.Overrides) > 0 {
			applyOverrides(account.VMRFields, &dv.VMR, nil, dv.Overridable, dv.Overrides)
			own = dv
		}
		p.created.addVMR(&d.VMRs, i, own, dv.SyncTag)
		p.addVMREmail(d.mailFor(dv.SyncTag, dv.Name), &dv.VMR, account.EmailCreated)
	}, func(dv *DesiredVMR, old *account.VMR) bool {
		want, fields := vmrUpdate(old, dv)
		if len(fields) == 0 {
			return false
		}
		p.changes = append(p.changes, &Change{Kind: account.KindVMR, Action: account.ActionUpdate, Key: want.Name, Template: want.SyncTag,
			Fields: fields, newObj: &want, oldObj: old})
		if mail := d.mailFor(dv.SyncTag, dv.Name); mail != nil && mail.notifies(fields) {
			p.addVMREmail(mail, &want, account.EmailUpdated)
		}
		return true
	})
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

// vmrUpdate is what dv makes of the existing old: the VMR to write and the fields that
// differ. Render uses it too, to drop entries that change nothing before the diff.
func vmrUpdate(old *account.VMR, dv *DesiredVMR) (account.VMR, []FieldChange) {
	want := dv.VMR
	applyOverrides(account.VMRFields, &want, old, dv.Overridable, dv.Overrides)
	want.ID = old.ID
	return want, fieldChanges(account.VMRFields, old, &want)
}

// deviceUpdate is what dd makes of the existing old.
func deviceUpdate(old *account.Device, dd *DesiredDevice) (account.Device, []FieldChange) {
	w := dd.Device
	applyOverrides(account.DeviceFields, &w, old, dd.Overridable, dd.Overrides)
	w.ID = old.ID
	return w, fieldChanges(account.DeviceFields, old, &w)
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

// notifyGroups maps a changed field to the names notify_on may use for it.
var notifyGroups = map[string][]string{
	"pin": {"pin_settings", "pin"}, "guest_pin": {"pin_settings", "guest_pin"},
	"allow_guests":    {"pin_settings", "allow_guests"},
	"max_callrate_in": {"callrate", "max_callrate_in"}, "max_callrate_out": {"callrate", "max_callrate_out"},
	"alias": {"device_alias", "alias"}, "description": {"description", "device_description"},
	"username": {"device_username", "username"}, "password": {"device_password", "password"},
	"tag": {"tag", "device_tag"},
}

// notifies says whether an update touching fields warrants an email (SPEC §5.3 notify_on).
func (m *TemplateMail) notifies(fields []FieldChange) bool {
	if len(m.NotifyOn) == 0 {
		for _, f := range fields {
			if f.Name != "entry_key" {
				return true
			}
		}
		return false
	}
	for _, f := range fields {
		if m.NotifyOn[f.Name] {
			return true
		}
		for _, g := range notifyGroups[f.Name] {
			if m.NotifyOn[g] {
				return true
			}
		}
	}
	return false
}

func (p *Plan) addVMREmail(m *TemplateMail, v *account.VMR, action account.Action) {
	if m == nil || m.VMR == nil || (!m.Send && action != account.EmailReminder) || v.OwnerEmail == "" {
		return
	}
	p.Emails = append(p.Emails, &Email{To: v.OwnerEmail, Kind: account.KindVMR, Action: action, Key: v.Name,
		Template: v.SyncTag, mail: m.VMR, vars: VMRVars(v, action)})
}

func (p *Plan) addDeviceEmail(m *TemplateMail, dv *account.Device, action account.Action) {
	if m == nil || m.Device == nil || (!m.Send && action != account.EmailReminder) || dv.OwnerEmail == "" {
		return
	}
	p.Emails = append(p.Emails, &Email{To: dv.OwnerEmail, Kind: account.KindDevice, Action: action, Key: dv.Alias,
		Template: dv.SyncTag, mail: m.Device, vars: DeviceVars(dv, action)})
}

// emailVars are the email variables of x's emailed fields (lists joined by ", ") and
// the action.
func emailVars[T any](fields []account.Field[T], x *T, action account.Action, extra int) map[string]any {
	vars := make(map[string]any, len(fields)+extra+1)
	for i := range fields {
		f := &fields[i]
		switch {
		case f.Email == "":
		case f.Type == account.Strings:
			vars[f.Email] = strings.Join(*f.List(x), ", ")
		default:
			vars[f.Email] = f.Value(x)
		}
	}
	vars["action"] = string(action)
	return vars
}

// VMRVars are the seed's VMR email variables: its emailed fields, the aliases also as a
// list, and its first URI and numeric aliases.
func VMRVars(v *account.VMR, action account.Action) map[string]any {
	uri, numeric := "", ""
	for _, a := range v.Aliases {
		if uri == "" && strings.Contains(a, "@") {
			uri = a
		}
		if numeric == "" && a != "" && strings.Trim(a, "0123456789") == "" {
			numeric = a
		}
	}
	vars := emailVars(account.VMRFields, v, action, 3)
	vars["aliases_list"], vars["uri_alias"], vars["numeric_alias"] = append([]string(nil), v.Aliases...), uri, numeric
	return vars
}

// DeviceVars are the seed's device email variables.
func DeviceVars(dv *account.Device, action account.Action) map[string]any {
	return emailVars(account.DeviceFields, dv, action, 0)
}

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
	olds, skip := matchOwned(p, d, a.Devices, idx.devices, d.SameDevices, deviceIdent, deviceClaims, ids, claims, settled, func(v *account.Device) *Change {
		return &Change{Kind: account.KindDevice, Action: account.ActionDelete, Key: v.Alias, Template: v.SyncTag, oldObj: v}
	})
	at := func(k int) *DesiredDevice { return d.Devices.At(int(want[k])) }
	planOwned(p, len(want), at, olds, skip, func(k int, dd *DesiredDevice) {
		var own *DesiredDevice // the creation is the device as overridden
		if len(dd.Overrides) > 0 {
			applyOverrides(account.DeviceFields, &dd.Device, nil, dd.Overridable, dd.Overrides)
			own = dd
		}
		p.created.addDevice(&d.Devices, int(want[k]), own, dd.SyncTag)
		p.addDeviceEmail(d.mailFor(dd.SyncTag, dd.Alias), &dd.Device, account.EmailCreated)
	}, func(dd *DesiredDevice, old *account.Device) bool {
		w, fields := deviceUpdate(old, dd)
		if len(fields) == 0 {
			return false
		}
		p.changes = append(p.changes, &Change{Kind: account.KindDevice, Action: account.ActionUpdate, Key: w.Alias, Template: w.SyncTag,
			Fields: fields, newObj: &w, oldObj: old})
		if mail := d.mailFor(dd.SyncTag, dd.Alias); mail != nil && mail.notifies(fields) {
			p.addDeviceEmail(mail, &w, account.EmailUpdated)
		}
		return true
	})
}

func diffTracking(p *Plan, d *Desired, a *state.Actual) {
	have := map[string]*account.TrackingGroup{}
	for _, g := range a.Tracking {
		have[g.Slot] = g
	}
	seen := map[string]bool{}
	for _, g := range d.Tracking {
		seen[g.Slot] = true
		old := have[g.Slot]
		switch {
		case old == nil:
			p.changes = append(p.changes, &Change{Kind: account.KindTrackingGroup, Action: account.ActionCreate, Key: g.Slot, newObj: g})
		case fmt.Sprint(trackingFields(old)) != fmt.Sprint(trackingFields(g)):
			p.changes = append(p.changes, &Change{Kind: account.KindTrackingGroup, Action: account.ActionUpdate, Key: g.Slot,
				oldObj: old, newObj: g,
				Fields: []FieldChange{{Name: "group", Old: trackingSummary(old), New: trackingSummary(g)}}})
		default:
			p.Summary.Unchanged++
		}
	}
	for _, g := range a.Tracking {
		if !seen[g.Slot] {
			p.changes = append(p.changes, &Change{Kind: account.KindTrackingGroup, Action: account.ActionDelete, Key: g.Slot, oldObj: g})
		}
	}
}

func trackingSummary(g *account.TrackingGroup) string {
	return fmt.Sprintf("%s %s/%s, %d codes", g.Name, g.InputMode, g.Usage, len(g.Codes))
}

// mailedKey names an object a plan emails: its kind and key.
type mailedKey struct {
	kind account.Kind
	key  string
}

func planReminders(p *Plan, d *Desired, a *state.Actual) {
	due := false
	for _, r := range d.Reminders {
		due = due || !a.RemindersDone[r.ID]
	}
	if !due {
		return
	}
	// Objects this plan already emails (created, updated) get no reminder on top.
	done := map[mailedKey]bool{}
	for _, e := range p.Emails {
		done[mailedKey{e.Kind, e.Key}] = true
	}
	// End-state objects: what is desired (after this plan) wins over what is stored.
	vmrs := map[string]*account.VMR{}
	devices := map[string]*account.Device{}
	for _, v := range a.VMRs {
		vmrs[v.Name] = v
	}
	for _, dv := range a.Devices {
		devices[dv.Alias] = dv
	}
	for c := range p.unordered() {
		v, dv := c.newVMR(), c.newDevice()
		switch {
		case v != nil:
			vmrs[v.Name] = v
		case c.Kind == account.KindVMR && c.Action == account.ActionDelete:
			delete(vmrs, c.Key)
		case dv != nil:
			devices[dv.Alias] = dv
		case c.Kind == account.KindDevice && c.Action == account.ActionDelete:
			delete(devices, c.Key)
		}
	}
	for _, r := range d.Reminders {
		if a.RemindersDone[r.ID] {
			continue
		}
		p.reminders = append(p.reminders, r.ID)
		var vs []*account.VMR
		var ds []*account.Device
		if r.Template != "" {
			for _, v := range vmrs {
				if v.SyncTag == r.Template {
					vs = append(vs, v)
				}
			}
			for _, dv := range devices {
				if dv.SyncTag == r.Template {
					ds = append(ds, dv)
				}
			}
		}
		for _, n := range r.VMRs {
			if v := vmrs[n]; v != nil {
				vs = append(vs, v)
			} else {
				p.Warnings = append(p.Warnings, Warning{Code: "unknown_vmr", Key: n, Message: fmt.Sprintf("reminder %s names VMR %q, which does not exist", r.ID, n)})
			}
		}
		for _, n := range r.Devices {
			if dv := devices[n]; dv != nil {
				ds = append(ds, dv)
			} else {
				p.Warnings = append(p.Warnings, Warning{Code: "unknown_device", Key: n, Message: fmt.Sprintf("reminder %s names device %q, which does not exist", r.ID, n)})
			}
		}
		sort.Slice(vs, func(i, j int) bool { return vs[i].Name < vs[j].Name })
		sort.Slice(ds, func(i, j int) bool { return ds[i].Alias < ds[j].Alias })
		for _, v := range vs {
			if !done[mailedKey{account.KindVMR, v.Name}] { // its created/updated email already says it all
				p.addVMREmail(d.mailFor(v.SyncTag, v.Name), v, account.EmailReminder)
			}
		}
		for _, dv := range ds {
			if !done[mailedKey{account.KindDevice, dv.Alias}] {
				p.addDeviceEmail(d.mailFor(dv.SyncTag, dv.Alias), dv, account.EmailReminder)
			}
		}
	}
}

func templateCounts(p *Plan, d *Desired, a *state.Actual) []Template {
	byName := map[string]*Template{}
	var out []Template
	for _, t := range d.Templates {
		tt := Template{Name: t.Name, Entries: t.Entries}
		if t.Err != nil {
			tt.Error = t.Err.Error()
		}
		out = append(out, tt)
	}
	for i := range out {
		byName[out[i].Name] = &out[i]
	}
	for tag, n := range a.Totals().Owned {
		if t := byName[tag]; t != nil {
			t.Owned += n
		}
	}
	for tag, n := range p.created.perTemplate {
		if t := byName[tag]; t != nil {
			t.Created += n
		}
	}
	for _, c := range p.changes {
		t := byName[c.Template]
		if t == nil {
			continue
		}
		switch c.Action {
		case account.ActionCreate, account.ActionReactivate:
			t.Created++
		case account.ActionUpdate:
			t.Updated++
		case account.ActionDelete:
			t.Deleted++
		case account.ActionDeactivate:
			t.Deactivated++
		}
	}
	for _, w := range p.Warnings {
		if t := byName[w.Template]; t != nil {
			t.Warnings++
		}
	}
	for i := range out {
		if out[i].Error == "" {
			out[i].Unchanged = max(0, out[i].Owned-out[i].Updated-out[i].Deleted-out[i].Deactivated)
		}
	}
	return out
}
