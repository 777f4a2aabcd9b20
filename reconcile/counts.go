package reconcile

// Template counts: each sync template's part of the plan, for sync status.

import (
	"github.com/roster-dev/roster/schema/account"
	"github.com/roster-dev/roster/state"
)

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
