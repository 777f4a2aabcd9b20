package reconcile

import (
	"fmt"
	"strings"

	"github.com/roster-dev/roster/schema"
	"github.com/roster-dev/roster/schema/account"
	"github.com/roster-dev/roster/state"
)

// Safety holds the numbers the guards of SPEC §5.3 look at.
type Safety struct {
	Removals       int      `json:"removals"` // deletions + deactivations
	Managed        int      `json:"managed"`  // VMRs, devices and active users before the plan
	Fraction       float64  `json:"fraction"`
	EmptyTemplates []string `json:"empty_templates,omitempty"` // own objects, found zero entries
	Emails         int      `json:"emails"`
}

func computeSafety(p *Plan, d *Desired, a *state.Actual) Safety {
	totals := a.Totals()
	s := Safety{Managed: totals.Managed, Emails: p.EmailCount() + p.announcementEmails()}
	for _, c := range p.changes { // creations remove nothing
		if (c.Action == account.ActionDelete && c.Kind != account.KindInvite && c.Kind != account.KindTrackingGroup) || c.Action == account.ActionDeactivate {
			s.Removals++
		}
	}
	if s.Managed > 0 {
		s.Fraction = float64(s.Removals) / float64(s.Managed)
	}
	owned := totals.Owned
	present := map[string]bool{}
	for _, t := range d.Templates {
		present[t.Name] = true
		if t.Err == nil && t.Entries == 0 && owned[t.Name] > 0 {
			s.EmptyTemplates = append(s.EmptyTemplates, t.Name)
		}
	}
	for tag, n := range owned {
		if !present[tag] && tag != account.ManualTag && n > 0 {
			s.EmptyTemplates = append(s.EmptyTemplates, tag+" (removed from the repo)")
		}
	}
	sortStrings(s.EmptyTemplates)
	return s
}

// Allowances are what the operator allowed on the command line.
type Allowances struct {
	Deletions int // --allow-deletions N
	Emails    int // --allow-emails N
}

// RefusalError is why apply refuses a plan; it names the numbers and the flag to pass.
type RefusalError struct{ Reasons []string }

func (e *RefusalError) Error() string {
	return "refusing to apply: " + strings.Join(e.Reasons, "; ")
}

// Check applies the guards of SPEC §5.3 to the plan: errors in the plan, a template that
// owns objects but found no entries, removals above the safety limits, or more emails
// than safety.max_emails — each refused unless allowed.
func (p *Plan) Check(sf schema.Safety, allow Allowances) error {
	var reasons []string
	for _, e := range p.Errors {
		if e.Template == "" {
			reasons = append(reasons, e.Message)
		}
	}
	s := p.Safety
	if len(s.EmptyTemplates) > 0 && allow.Deletions < s.Removals {
		reasons = append(reasons, fmt.Sprintf("template %s owns objects but found 0 entries, which would remove %d objects; "+
			"if that is intended, run again with --allow-deletions %d", strings.Join(s.EmptyTemplates, ", "), s.Removals, s.Removals))
	} else if allow.Deletions < s.Removals {
		maxFrac := sf.MaxDeleteFraction
		if s.Removals > sf.MaxDeleteCount || (s.Managed > 0 && s.Fraction > maxFrac) {
			reasons = append(reasons, fmt.Sprintf("the plan deletes or deactivates %d of %d objects (%.0f%%), above the safety limit "+
				"(max_delete_count %d, max_delete_fraction %.0f%%); if that is intended, run again with --allow-deletions %d",
				s.Removals, s.Managed, 100*s.Fraction, sf.MaxDeleteCount, 100*maxFrac, s.Removals))
		}
	}
	if sf.MaxEmails > 0 && s.Emails > sf.MaxEmails && allow.Emails < s.Emails {
		reasons = append(reasons, fmt.Sprintf("the plan would send %d emails, above safety.max_emails %d; if that is intended, "+
			"run again with --allow-emails %d (or set emails.send: false for the sync and send reminders later)",
			s.Emails, sf.MaxEmails, s.Emails))
	}
	if len(reasons) > 0 {
		return &RefusalError{Reasons: reasons}
	}
	return nil
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}
