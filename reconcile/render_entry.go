package reconcile

// Rendering one directory entry into a VMR, device and user, the objects declared by
// hand, and the limits every rendered object must keep.

import (
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/roster-dev/roster/reconcile/directory"
	"github.com/roster-dev/roster/schema"
	"github.com/roster-dev/roster/schema/account"
)

// declared adds the VMRs and devices declared by hand (sync tag "manual").
func declared(d *Desired, in Inputs) {
	repo := in.Repo
	for _, v := range repo.VMRs {
		dv := &DesiredVMR{VMR: v.VMR}
		dv.SyncTag = account.ManualTag
		if validDeclared(d, &entryOutput{vmr: dv}, v.Name, v.Pos) {
			d.VMRs.Add(dv)
		}
	}
	for _, v := range repo.Devices {
		dd := &DesiredDevice{Device: v.Device}
		dd.SyncTag = account.ManualTag
		if validDeclared(d, &entryOutput{device: dd}, v.Alias, v.Pos) {
			d.Devices.Add(dd)
		}
	}
}

// validDeclared says whether a declared object keeps the limits rendered ones must
// (declared values are literal, but the same limits hold); if not, it warns and keeps
// the stored object unchanged.
func validDeclared(d *Desired, out *entryOutput, key string, pos schema.Pos) bool {
	var msg string
	if out.vmr != nil {
		msg = invalidVMR(&out.vmr.VMR)
	} else if out.device != nil {
		msg = invalidDevice(&out.device.Device)
	}
	if msg == "" {
		return true
	}
	d.Warnings = append(d.Warnings, Warning{Code: "invalid", Key: key, Template: account.ManualTag,
		Message: fmt.Sprintf("%s:%d: %s; left unchanged", pos.Path, pos.Line, msg)})
	d.Keep[ownerKey(account.ManualTag, "", key)] = true
	return false
}

// renderEntry renders one entry with r, a renderer of the calling goroutine's own (reused
// from entry to entry). The objects are rendered into r's own and copied out only when
// they are kept, changed: in a no-op plan an entry allocates none.
func renderEntry(in Inputs, c *compiled, idx *refIndex, r *renderer, e *directory.Entry) entryOutput {
	t := c.t
	r.reset(t.Name, e)
	var out entryOutput
	if c.vmr != nil && c.vmr[0] != nil { // the name's pattern (the first field)
		dv := &r.vmr
		*dv = DesiredVMR{VMR: t.VMR.VMR, Overridable: c.vmrOverridable} // numbers and flags are literal
		renderFields(r, vmrPatternNames, account.VMRFields, c.vmr, &dv.VMR)
		dv.Aliases, dv.SyncTag, dv.EntryKey = r.aliases[:0], t.Name, e.Key
		for i, p := range c.vAliases {
			if a := r.s(c.vAliasNames[i], p); a != "" && !slices.Contains(dv.Aliases, a) {
				dv.Aliases = append(dv.Aliases, a)
			}
		}
		if r.aliases = dv.Aliases; len(dv.Aliases) == 0 {
			dv.Aliases = nil
		}
		if dv.Name != "" {
			dv.Overrides = allowedOverrides(in.Repo.Overrides.VMRs[dv.Name], c.vmrOverridable, t.Emails.AllowEmailOverride)
			out.vmr = dv
		}
	}
	if c.device != nil && c.device[0] != nil && (!e.Disabled || t.Device.SyncIfAccountDisabled) { // the alias's pattern
		dd := &r.device
		*dd = DesiredDevice{Device: t.Device.Device, Overridable: c.devOverridable}
		renderFields(r, devicePatternNames, account.DeviceFields, c.device, &dd.Device)
		dd.SyncTag, dd.EntryKey = t.Name, e.Key
		if dd.Alias != "" {
			dd.Overrides = allowedOverrides(in.Repo.Overrides.Devices[dd.Alias], c.devOverridable, t.Emails.AllowEmailOverride)
			out.device = dd
		}
	}
	if c.uEmail != nil {
		u := &r.user
		*u = DesiredUser{User: account.User{
			FirstName: r.s("user.first_name", c.uFirst), LastName: r.s("user.last_name", c.uLast),
			Email: strings.ToLower(r.s("user.email", c.uEmail)), Language: r.s("user.language", c.uLang),
			TimeZone: r.s("user.time_zone", c.uTZ), HostPrivilege: strings.ToUpper(r.s("user.host_privilege", c.uHost)),
			License: strings.ToLower(r.s("user.license", c.uLicense)), Active: !e.Disabled, Origin: "remote",
			SyncTag: t.Name, EntryKey: e.Key,
		}, Disabled: e.Disabled}
		if c.hasTracking {
			var tr [10]string
			for i, p := range c.uTracking {
				if p != nil {
					tr[i] = r.s(trackingPatternNames[i], p)
				}
			}
			u.Tracking = account.MakeTracking(tr)
		}
		if u.HostPrivilege == "" {
			u.HostPrivilege = "HOST"
		}
		if u.License == "" {
			u.License = "paid"
		}
		if u.Email == "" {
			out.warn = noEmailWarning(t.Name, e.DN)
		} else {
			out.user = fillTracking(c.tracking, u)
		}
	}
	if r.err == nil {
		dropInvalid(&out, t.Name, e)
		if idx != nil {
			dropUnchanged(&out, idx)
		}
	}
	if r.err != nil {
		// Keep whatever this entry already has: a render error must never delete.
		pos := t.FieldPos[r.at]
		return entryOutput{
			warn: &Warning{Code: "render_error", Key: e.DN, Template: t.Name,
				Message: fmt.Sprintf("%s:%d:%d: pattern %s: %v; this entry's objects are left unchanged", pos.Path, pos.Line, pos.Col, r.at, r.err)},
			keep: []owner{ownerKey(t.Name, e.Key, "")},
		}
	}
	if out.vmr != nil {
		v := *out.vmr
		v.Aliases = slices.Clone(v.Aliases) // r's, until the next entry
		out.vmr = &v
	}
	if out.device != nil {
		d := *out.device
		out.device = &d
	}
	if out.user != nil {
		u := *out.user
		out.user = &u
	}
	return out
}

// noEmailWarning is the notice of an entry of template tmpl, at dn, without email.
func noEmailWarning(tmpl, dn string) *Warning {
	return &Warning{Code: "no_email", Key: dn, Template: tmpl, Message: "entry has no email address; user not imported"}
}

// allowedOverrides keeps the overrides.yaml fields the template allows (SPEC §5.4).
func allowedOverrides(ov map[string]string, overridable map[string]bool, emailOverride bool) map[string]string {
	if len(ov) == 0 {
		return nil
	}
	out := map[string]string{}
	for f, v := range ov {
		ok := overridable[f] || (f == "primary_owner_email_address" && emailOverride)
		if !ok && (f == "pin" || f == "guest_pin" || f == "allow_guests") {
			ok = overridable["pin_settings"]
		}
		if ok {
			out[f] = v
		}
	}
	return out
}

// hasControl reports a control character (CR, LF, …): directory values carrying them
// would otherwise reach one-line fields, plan lines and email subjects.
func hasControl(fields ...string) bool {
	for _, f := range fields {
		if strings.ContainsFunc(f, unicode.IsControl) {
			return true
		}
	}
	return false
}

// dropInvalid checks an entry's rendered objects against the value rules (SPEC §3): an
// object that breaks one is dropped with an `invalid` warning and its stored self is kept
// as it is (not created, updated or deleted), while the entry's other objects go on.
// Keeping is by the entry's owner key, which the entry's objects share: only objects the
// entry no longer renders at all could be held back with it, never a valid one.
func dropInvalid(o *entryOutput, tmpl string, e *directory.Entry) {
	var msgs []string
	if o.vmr != nil {
		if msg := invalidVMR(&o.vmr.VMR); msg != "" {
			msgs, o.vmr = append(msgs, msg+"; this VMR is left unchanged"), nil
		}
	}
	if o.device != nil {
		if msg := invalidDevice(&o.device.Device); msg != "" {
			msgs, o.device = append(msgs, msg+"; this device is left unchanged"), nil
		}
	}
	if o.user != nil {
		if msg := invalidUser(&o.user.User); msg != "" {
			msgs, o.user = append(msgs, msg+"; this user is left unchanged"), nil
		}
	}
	if len(msgs) == 0 {
		return
	}
	o.keep = append(o.keep, ownerKey(tmpl, e.Key, ""))
	if o.warn != nil { // the entry's own warning (no email) yields to the value rule
		msgs = append(msgs, o.warn.Message)
	}
	o.warn = &Warning{Code: "invalid", Key: e.DN, Template: tmpl, Message: strings.Join(msgs, "; ")}
}

// invalidVMR is why a VMR breaks the value rules (schema.VMRViolations), or "". The
// message names the fields and their allowed ranges, never a PIN.
func invalidVMR(v *account.VMR) string {
	if hasControl(v.Name, v.Description, v.Tag, v.OwnerEmail) {
		return fmt.Sprintf("VMR %.60q: name, description, tag or owner email contains a control character (line break?)", v.Name)
	}
	return violations("VMR", v.Name, schema.VMRViolations(v, nil))
}

// invalidDevice is why a device breaks the value rules (schema.DeviceViolations), or "".
func invalidDevice(d *account.Device) string {
	if hasControl(d.Description, d.Username, d.Tag, d.OwnerEmail) {
		return fmt.Sprintf("device %.60q: description, username, tag or owner email contains a control character (line break?)", d.Alias)
	}
	return violations("device", d.Alias, schema.DeviceViolations(d, nil))
}

// violations joins an object's rule violations into one message, or "". The object's
// name is formatted only then: every rendered VMR and device passes through here.
func violations(kind, name string, vs []schema.Violation) string {
	if len(vs) == 0 {
		return ""
	}
	what := fmt.Sprintf("%s %.60q", kind, name)
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = v.Field + ": " + v.Err.Error()
	}
	return what + ": " + strings.Join(parts, "; ")
}

// invalidUser is why a rendered user breaks WebEx's rules, or "".
func invalidUser(u *account.User) string {
	switch {
	case hasControl(u.FirstName, u.LastName):
		return fmt.Sprintf("user %q: first or last name contains a control character (line break?)", u.Email)
	case len(u.Email) > maxEmailLen || !schema.ValidEmail(u.Email):
		return fmt.Sprintf("user email %q is not a valid address of at most %d characters", u.Email, maxEmailLen)
	case utf8.RuneCountInString(u.FirstName) > maxUserName || utf8.RuneCountInString(u.LastName) > maxUserName:
		return fmt.Sprintf("user %s: first and last names must be at most %d characters", u.Email, maxUserName)
	case !schema.IsLanguage(u.Language) && u.Language != "":
		return fmt.Sprintf("user %s: language %q is not a WebEx LANGUAGE value", u.Email, u.Language)
	case !schema.IsTimeZone(u.TimeZone) && u.TimeZone != "":
		return fmt.Sprintf("user %s: time zone %q is not a WebEx TIMEZONE value", u.Email, u.TimeZone)
	case u.HostPrivilege != "HOST" && u.HostPrivilege != "ADMN":
		return fmt.Sprintf("user %s: host privilege %q must be HOST or ADMN", u.Email, u.HostPrivilege)
	case u.License != "paid" && u.License != "free":
		return fmt.Sprintf("user %s: license %q must be paid or free", u.Email, u.License)
	}
	return ""
}
