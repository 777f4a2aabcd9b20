package reconcile

// Reminders: the operator's reminders.yaml entries that are due, as emails.

import (
	"fmt"
	"sort"

	"github.com/roster-dev/roster/schema/account"
	"github.com/roster-dev/roster/state"
)

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
	for _, e := range p.AllEmails() {
		done[mailedKey{e.Kind, e.Key}] = true
	}
	vmrs, devices := endOwned(p, a)
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
				vmrKind.addEmail(p, d, v, account.EmailReminder)
			}
		}
		for _, dv := range ds {
			if !done[mailedKey{account.KindDevice, dv.Alias}] {
				deviceKind.addEmail(p, d, dv, account.EmailReminder)
			}
		}
	}
}

// endOwned are the VMRs (by name) and devices (by alias) as they are after the plan: what
// is desired wins over what is stored.
func endOwned(p *Plan, a *state.Actual) (map[string]*account.VMR, map[string]*account.Device) {
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
	return vmrs, devices
}
