package reconcile

// Tracking-code groups: the ten groups of tracking-codes.yaml against the stored ones.

import (
	"fmt"

	"github.com/roster-dev/roster/schema/account"
	"github.com/roster-dev/roster/state"
)

// byKey indexes xs by key.
func byKey[T any](xs []*T, key func(*T) string) map[string]*T {
	m := make(map[string]*T, len(xs))
	for _, x := range xs {
		m[key(x)] = x
	}
	return m
}

// diffTracking plans the tracking-code groups: created, updated or deleted by slot.
func diffTracking(p *Plan, d *Desired, a *state.Actual) {
	have := byKey(a.Tracking, func(g *account.TrackingGroup) string { return g.Slot })
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
