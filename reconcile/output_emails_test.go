package reconcile

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/roster-dev/roster/schema/account"
)

// WriteJSON writes the emails one at a time; the list must be what json.MarshalIndent
// makes of it, escapes included.
func TestPlanJSONEmailsAsMarshalIndent(t *testing.T) {
	odd := []string{"plain@example.com", "a&b <c>@example.com", `quote " back \ slash`, "Zoë Ångström", "line\nbreak\ttab\x01",
		"sep\u2028\u2029", "bad \xff utf-8", ""}
	for _, emails := range [][]*Email{{}, {{To: "a@example.com", Kind: account.KindVMR, Action: account.EmailCreated, Key: "A VMR", Template: "staff"}}, nil} {
		if emails == nil {
			for i, s := range odd {
				emails = append(emails, &Email{To: s, Kind: account.KindDevice, Action: account.EmailUpdated, Key: odd[len(odd)-1-i], Template: s})
			}
		}
		p := &Plan{FormatVersion: FormatVersion, Warnings: []Warning{}}
		for _, e := range emails {
			p.emails.add(e)
		}
		var b strings.Builder
		if err := p.WriteJSON(&b, OutputOptions{}); err != nil {
			t.Fatal(err)
		}
		want, err := json.MarshalIndent(emails, "  ", "  ")
		if err != nil {
			t.Fatal(err)
		}
		out := b.String()
		start := strings.Index(out, "\n  \"emails\": ") + 1 // the plan's, not the summary's count
		end := strings.Index(out, ",\n  \"warnings\"")
		if start < 1 || end < start {
			t.Fatalf("no emails in\n%s", out)
		}
		if got := out[start+len(`  "emails": `) : end]; got != string(want) {
			t.Errorf("emails:\n%s\nwant\n%s", got, want)
		}
	}
}
