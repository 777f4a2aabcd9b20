package reconcile

import (
	"strings"
	"testing"
)

// dept renders departmentNumber, or fallback when the entry has none: a template field
// that is good for everyone but the one person given a bad departmentNumber.
func dept(fallback string) string {
	return "{% if departmentNumber %}{{departmentNumber}}{% else %}" + fallback + "{% endif %}"
}

// TestRenderedValueRules: each value rule of SPEC §3 on a rendered value. A template field
// renders a bad value for bob only: bob's object gets an `invalid` warning naming the field
// and the allowed range (never the PIN or password) and is left unchanged, while alice's
// change and bob's other objects still apply. (At most 8 aliases is checked at validate
// time: a VMR renders at most as many aliases as its template lists.)
func TestRenderedValueRules(t *testing.T) {
	const bobDN = "uid=bob,ou=people,dc=example,dc=com"
	for _, tc := range []struct {
		name     string
		old, new string // a line of staffTemplate and its replacement
		bad      string // bob's departmentNumber
		kind     string // "vmr" or "device": the object left unchanged
		want     []string
		secret   bool // bad is a PIN or password: never shown
	}{
		{"vmr name length", `name: "{{givenName}} {{sn}} VMR"`, `name: "{{givenName}} {{sn}} VMR{% if departmentNumber %} {{departmentNumber}}{% endif %}"`,
			strings.Repeat("n", 250), "vmr", []string{"name: ", "at most 250"}, false},
		{"vmr description length", `description: "Room of {{cn}}"`, `description: "Room of ` + dept("{{cn}}") + `"`,
			strings.Repeat("d", 251), "vmr", []string{"description: 259 characters", "at most 250"}, false},
		{"alias form", `aliases: ["{{uid}}@vc.example.com", "{{telephoneNumber|pex_clean_phone_number|pex_tail(6)}}"]`,
			`aliases: ["{{uid}}@vc.example.com", "{{departmentNumber}}"]`, "not an alias", "vmr", []string{"aliases[1]", "SIP or H.323 URI"}, false},
		{"pin digits", `pin: "{{ ''|pex_random_pin(6) }}"`, `pin: "` + dept("{{ ''|pex_random_pin(6) }}") + `"`,
			"98765432109876543210987", "vmr", []string{"pin: not a valid PIN", "4 to 20 digits"}, true},
		{"allow_guests needs a PIN", `pin: "{{ ''|pex_random_pin(6) }}"`, `pin: "{% if departmentNumber != 'nopin' %}{{ ''|pex_random_pin(6) }}{% endif %}"`,
			"nopin", "vmr", []string{"allow_guests: true needs a host PIN"}, false},
		{"guest pin differs", `pin: "{{ ''|pex_random_pin(6) }}"`, `pin: "` + dept("{{ ''|pex_random_pin(6) }}") + `"` + "\n  guest_pin: \"" + dept("{{ ''|pex_random_pin(8) }}") + `"`,
			"48151623", "vmr", []string{"guest_pin: the same as the host PIN"}, true},
		{"device alias form", `alias: "{{uid}}@dev.example.com"`, `alias: "{{uid}}{{departmentNumber}}@dev.example.com"`,
			"x y", "device", []string{"alias: ", "SIP or H.323 URI"}, false},
		{"device description length", `description: "Soft client of {{cn}}"`, `description: "Soft client of ` + dept("{{cn}}") + `"`,
			strings.Repeat("s", 251), "device", []string{"description: 266 characters", "at most 250"}, false},
		{"device username length", `username: "{{uid}}"`, `username: "{{uid}}{{departmentNumber}}"`,
			strings.Repeat("u", 98), "device", []string{"username: 101 characters", "at most 100"}, false},
		{"device password length", `password: "{{ ''|pex_random_pin(12) }}"`, `password: "` + dept("{{ ''|pex_random_pin(12) }}") + `"`,
			strings.Repeat("7", 101), "device", []string{"password: 101 characters", "at most 100"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tmpl := strings.Replace(staffTemplate, tc.old, tc.new, 1)
			if tmpl == staffTemplate {
				t.Fatalf("staffTemplate has no line %q", tc.old)
			}
			h := newHarness(t, alice, bob)
			h.write("templates/staff.yaml", tmpl)
			h.mustApply()
			before := h.count(`SELECT COUNT(*) FROM vmrs`) + 100*h.count(`SELECT COUNT(*) FROM devices`)
			b, a := bob, alice
			b.dept, a.sn = tc.bad, "Parkes-Lee"
			h.directory(a, b)
			p := h.plan()
			var msg string
			for _, w := range p.Warnings {
				if w.Code == "invalid" && w.Key == bobDN {
					msg = w.Message
				}
			}
			for _, s := range tc.want {
				if !strings.Contains(msg, s) {
					t.Errorf("bob's invalid warning %q lacks %q (warnings %+v)", msg, s, p.Warnings)
				}
			}
			if tc.secret && strings.Contains(msg, tc.bad) {
				t.Errorf("the warning shows the secret value: %s", msg)
			}
			aliceChanged := false
			for _, c := range p.All() {
				aliceChanged = aliceChanged || strings.Contains(c.Key, "Alice") || strings.Contains(c.Key, "alice")
				if string(c.Kind) == tc.kind && (strings.Contains(c.Key, "Bob") || strings.Contains(c.Key, "bob")) {
					t.Errorf("bob's %s changes: %s %s", tc.kind, c.Action, c.Key)
				}
			}
			if !aliceChanged {
				t.Errorf("alice's change is not planned: %v", changes(p))
			}
			h.mustApply()
			if after := h.count(`SELECT COUNT(*) FROM vmrs`) + 100*h.count(`SELECT COUNT(*) FROM devices`); after != before {
				t.Errorf("VMRs+100×devices %d → %d: an object was created or deleted", before, after)
			}
			if n := h.count(`SELECT COUNT(*) FROM vmrs WHERE name = 'Alice Parkes-Lee VMR'`); n != 1 {
				t.Errorf("alice's VMR was not renamed (%d)", n)
			}
			kept := map[string]string{"vmr": `SELECT COUNT(*) FROM vmrs WHERE name = 'Bob Marley VMR'`,
				"device": `SELECT COUNT(*) FROM devices WHERE alias = 'bob@dev.example.com'`}
			for kind, q := range kept {
				if n := h.count(q); n != 1 {
					t.Errorf("bob's %s: %d rows, want 1 (left unchanged or, the other kind, updated in place)", kind, n)
				}
			}
		})
	}
}
