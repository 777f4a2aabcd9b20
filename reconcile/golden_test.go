package reconcile

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// TestPlanFormatsGolden pins the three plan formats. Regenerate with
// `go test ./reconcile -run Golden -update` and review the diff.
func TestPlanFormatsGolden(t *testing.T) {
	h := newHarness(t, alice, bob, carol, dave)
	h.mustApply()
	renamed := bob
	renamed.sn = "Dylan"
	off := dave
	off.disabled = true
	h.directory(alice, renamed, off, person{uid: "erin", given: "Érin", sn: "Ñúñez", mail: "erin@example.com", phone: "+1 555 0100"})
	h.write("tracking-codes.yaml", "groups:\n  - {slot: PROJECT, name: Project, input_mode: text, usage: optional, sort: none}\n")
	h.write("vmrs/rooms.yaml", "- name: Lobby\n  aliases: [erin@vc.example.com]\n")
	p := h.plan()
	for _, f := range []struct{ format, file string }{{"text", "plan.txt"}, {"json", "plan.json"}, {"markdown", "plan.md"}} {
		var buf bytes.Buffer
		if err := p.Write(&buf, f.format, OutputOptions{}); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join("testdata", f.file)
		if *update {
			os.MkdirAll("testdata", 0o755)
			if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run with -update to create)", err)
		}
		if !bytes.Equal(buf.Bytes(), want) {
			t.Errorf("%s differs from %s (run with -update and review):\n%s", f.format, path, buf.String())
		}
		if f.format == "json" {
			var shape struct {
				FormatVersion int `json:"format_version"`
				Changes       []struct {
					Kind, Action, Key string
					Before, After     map[string]any
				} `json:"changes"`
			}
			if err := json.Unmarshal(buf.Bytes(), &shape); err != nil || shape.FormatVersion != 1 || len(shape.Changes) != p.Len() {
				t.Errorf("plan JSON does not parse into the SPEC shape: %v", err)
			}
		}
		// Secrets never appear unless --show-secrets.
		for _, c := range p.All() {
			if c.newVMR() != nil && c.newVMR().PIN != "" && strings.Contains(buf.String(), c.newVMR().PIN) {
				t.Errorf("%s shows PIN %s", f.format, c.newVMR().PIN)
			}
		}
	}
	var shown bytes.Buffer
	p.Write(&shown, "text", OutputOptions{ShowSecrets: true})
	if strings.Contains(shown.String(), mask) && !strings.Contains(shown.String(), "password") {
		t.Error("--show-secrets still masks")
	}
}

// TestPropertyApplyThenPlanIsEmpty: for random small desired states reached one after
// another, applying the plan and planning again gives an empty plan.
func TestPropertyApplyThenPlanIsEmpty(t *testing.T) {
	pool := []person{alice, bob, carol, dave,
		{uid: "erin", given: "Erin", sn: "Ng", mail: "erin@example.com", phone: "555 0100"},
		{uid: "frank", given: "Frank", sn: "Ng", mail: "frank@example.com"},
		{uid: "gina", given: "Gina", sn: "Ng", mail: "bob@example.com", phone: "555 0101"}, // shares bob's email
		{uid: "hal", given: "Hal", sn: "Ng"},                                               // no email
	}
	defer func(m int) { hydrateAllMin = m }(hydrateAllMin)
	for seed := int64(1); seed <= 60; seed++ {
		rng := rand.New(rand.NewSource(seed))
		hydrateAllMin = 1 << 30 // load only what the diff must see…
		if seed%2 == 0 {
			hydrateAllMin = -1 << 30 // …or everything
		}
		h := newHarness(t)
		for step := 0; step < 4; step++ {
			var ps []person
			for _, p := range pool {
				if rng.Intn(3) > 0 {
					if rng.Intn(4) == 0 {
						p.disabled = true
					}
					if rng.Intn(4) == 0 {
						p.sn += "x"
					}
					ps = append(ps, p)
				}
			}
			h.directory(ps...)
			if rng.Intn(2) == 0 { // local users, some sharing a directory user's email
				csv := usersHeader
				for _, email := range []string{"local1@example.com", "local2@example.com", "carol@example.com"} {
					if rng.Intn(3) > 0 {
						active := "Y"
						if rng.Intn(4) == 0 {
							active = "N"
						}
						csv += fmt.Sprintf(",%s,Lo%d,Cal,%s,en-us,HOST,London,,,,,,,,,,\n", active, rng.Intn(2), email)
					}
				}
				h.write("users/local.csv", csv)
			} else {
				h.remove("users/local.csv")
			}
			if rng.Intn(3) == 0 {
				h.write("vmrs/rooms.yaml", fmt.Sprintf("- name: Room %d\n  aliases: [alice@vc.example.com, room%d@example.com]\n", rng.Intn(2), rng.Intn(2)))
			} else {
				h.remove("vmrs/rooms.yaml")
			}
			if rng.Intn(3) == 0 { // a manual value for an object that may be unchanged otherwise
				h.write("overrides.yaml", fmt.Sprintf("vmrs:\n  \"Alice Parkes VMR\": {pin: \"%d\"}\n", 100000+rng.Intn(2)))
			} else {
				h.remove("overrides.yaml")
			}
			if rng.Intn(2) == 0 { // licences counted over unchanged users; an invitation of a member
				h.write("settings.yaml", fmt.Sprintf("auto_activation_emails: true\nadmins: [ops@example.com]\nlicenses: {paid: %d}\n", 3+rng.Intn(6)))
				h.write("invites/i.csv", "name;email;username\nBob M;bob@example.com;bobmarley@t.com\nNew One;new1@t.com;newone1@t.com\n")
			} else {
				h.write("settings.yaml", "auto_activation_emails: true\nadmins: [ops@example.com]\n")
				h.remove("invites/i.csv")
			}
			// Rendering with the actual state (dropping unchanged entries) must plan
			// exactly the changes and emails that rendering without it plans. Its warnings
			// may only be fewer: an unchanged object holds its claims outright, where a
			// full desired copy could lose a claim race it then keeps anyway.
			a, b := h.planWithout(), h.plan()
			if a.Fingerprint != b.Fingerprint || !subset(warningCodes(b), warningCodes(a)) {
				t.Fatalf("seed %d step %d: plans differ:\nwithout actual: %v %v\nwith actual:    %v %v", seed, step,
					changes(a), warningCodes(a), changes(b), warningCodes(b))
			}
			// The counts too: the index's totals stand in for objects never loaded.
			if a.Summary != b.Summary || fmt.Sprint(a.Safety) != fmt.Sprint(b.Safety) ||
				fmt.Sprint(noWarnings(a.Templates)) != fmt.Sprint(noWarnings(b.Templates)) || fmt.Sprint(a.Licenses) != fmt.Sprint(b.Licenses) ||
				fmt.Sprint(a.Errors) != fmt.Sprint(b.Errors) {
				t.Fatalf("seed %d step %d: counts differ:\nwithout actual: %+v %+v %+v %+v %v\nwith actual:    %+v %+v %+v %+v %v", seed, step,
					a.Summary, a.Safety, a.Templates, a.Licenses, a.Errors, b.Summary, b.Safety, b.Templates, b.Licenses, b.Errors)
			}
			if b.HasChanges() && len(b.Errors) > 0 {
				continue // licences exceeded: nothing to apply this step
			}
			if _, err := h.apply(Allowances{Deletions: 1000, Emails: 1000}); err != nil {
				t.Fatalf("seed %d step %d: apply: %v", seed, step, err)
			}
			if p := h.plan(); p.HasChanges() {
				t.Fatalf("seed %d step %d: plan after apply not empty: %v %v", seed, step, changes(p), emails(p))
			}
		}
	}
}

func subset(a, b []string) bool {
	for _, x := range a {
		if !contains(b, x) {
			return false
		}
	}
	return true
}

// noWarnings drops the warning counts, which may differ as the warnings may (see above).
func noWarnings(ts []Template) []Template {
	out := append([]Template(nil), ts...)
	for i := range out {
		out[i].Warnings = 0
	}
	return out
}
