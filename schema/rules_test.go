package schema

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// ruleCase is a small repository and the one error line Load must report for it ("" when
// the repository is valid).
type ruleCase struct {
	name  string
	files map[string]string
	want  string
}

func runRuleCases(t *testing.T, cases []ruleCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, content := range tc.files {
				p := filepath.Join(dir, name)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			_, err := Load(os.DirFS(dir), nil, LoadOptions{})
			if tc.want == "" {
				if err != nil {
					t.Fatalf("want no error, got\n%v", err)
				}
				return
			}
			var list ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("err = %v, want an ErrorList with\n%s", err, tc.want)
			}
			if got := err.Error(); got != tc.want {
				t.Errorf("got\n  %s\nwant exactly\n  %s", strings.ReplaceAll(got, "\n", "\n  "), tc.want)
			}
		})
	}
}

// declaredVMR is vmrs/r.yaml: a VMR named Room with more fields from line 2.
func declaredVMR(fields string) map[string]string {
	return map[string]string{"vmrs/r.yaml": "name: Room\n" + fields}
}

// declaredDevice is devices/d.yaml: a device dev@example.com with more fields from line 2.
func declaredDevice(fields string) map[string]string {
	return map[string]string{"devices/d.yaml": "alias: dev@example.com\n" + fields}
}

// template is templates/t.yaml; its own fields start on line 3.
func template(fields string) map[string]string {
	return map[string]string{"templates/t.yaml": "name: t\nsource: corp\n" + fields}
}

// overrides is a template that lets every VMR and device field be overridden, and
// overrides.yaml with one override of the VMR "Alice" on line 2.
func overrides(field, value string) map[string]string {
	return map[string]string{
		"templates/t.yaml": "name: t\nsource: corp\nvmr:\n  name: \"{{cn}}\"\n  overridable: [name, description, aliases, pin_settings, callrate, participant_limit, tag]\n" +
			"device:\n  alias: \"{{mail}}\"\n  overridable: [description, username, password]\n",
		"overrides.yaml": "vmrs:\n  Alice: {" + field + ": " + value + "}\n",
	}
}

func TestRuleNameAndDescription(t *testing.T) {
	x250, x251 := strings.Repeat("x", 250), strings.Repeat("é", 251)
	runRuleCases(t, []ruleCase{
		{"name of 250", map[string]string{"vmrs/r.yaml": "name: " + x250 + "\n"}, ""},
		{"name of 251", map[string]string{"vmrs/r.yaml": "name: " + x251 + "\n"},
			"vmrs/r.yaml:1:7: name: 251 characters; at most 250 are allowed: shorten it"},
		{"empty name", map[string]string{"vmrs/r.yaml": "name: \"\"\n"},
			"vmrs/r.yaml:1:7: name: empty; a name has 1 to 250 characters"},
		{"description of 251", declaredVMR("description: " + x251 + "\n"),
			"vmrs/r.yaml:2:14: description: 251 characters; at most 250 are allowed: shorten it"},
		{"device description of 251", declaredDevice("description: " + x251 + "\n"),
			"devices/d.yaml:2:14: description: 251 characters; at most 250 are allowed: shorten it"},
		{"list item", map[string]string{"vmrs/r.yaml": "- name: A\n- name: B\n  description: " + x251 + "\n"},
			"vmrs/r.yaml:3:16: [1].description: 251 characters; at most 250 are allowed: shorten it"},
		{"template literal", template("vmr:\n  name: \"{{cn}}\"\n  description: " + x251 + "\n"),
			"templates/t.yaml:5:16: vmr.description: 251 characters; at most 250 are allowed: shorten it"},
		{"template pattern is checked once rendered", template("vmr:\n  name: \"{{cn}}" + x251 + "\"\n"), ""},
		{"override", overrides("description", x251),
			`overrides.yaml:2:24: vmrs."Alice".description: 251 characters; at most 250 are allowed: shorten it`},
	})
}

func TestRuleAliases(t *testing.T) {
	forms := "want a plain alias (meet.alice), a SIP or H.323 URI (meet.alice@example.com, sip:meet.alice@example.com, h323:meet.alice@example.com) or a number (+441632960123)"
	cases := []ruleCase{
		{"8 aliases", declaredVMR("aliases: [a1, a2, a3, a4, a5, a6, a7, a8]\n"), ""},
		{"9 aliases", declaredVMR("aliases: [a1, a2, a3, a4, a5, a6, a7, a8, a9]\n"),
			"vmrs/r.yaml:2:10: aliases: 9 aliases; a VMR may have at most 8: remove 1"},
		{"9 aliases in a template", template("vmr:\n  name: \"{{cn}}\"\n  aliases: [a1, a2, a3, a4, a5, a6, a7, a8, a9]\n"),
			"templates/t.yaml:5:12: vmr.aliases: 9 aliases; a VMR may have at most 8: remove 1"},
		{"9 aliases overridden", overrides("aliases", "[a1, a2, a3, a4, a5, a6, a7, a8, a9]"),
			`overrides.yaml:2:20: vmrs."Alice".aliases: 9 aliases; a VMR may have at most 8: remove 1`},
		{"space", declaredVMR("aliases: [\"meet alice\"]\n"),
			`vmrs/r.yaml:2:11: aliases[0]: "meet alice" contains ' '; ` + forms + ", without spaces or any of <>\"\\`{}|^"},
		{"two @", declaredVMR("aliases: [ok@example.com, a@b@example.com]\n"),
			`vmrs/r.yaml:2:27: aliases[1]: "a@b@example.com" has more than one "@"; ` + forms},
		{"nothing before @", declaredVMR("aliases: [\"@example.com\"]\n"),
			`vmrs/r.yaml:2:11: aliases[0]: "@example.com" has nothing before "@"; ` + forms},
		{"bad host", declaredVMR("aliases: [alice@exa_mple.com]\n"),
			`vmrs/r.yaml:2:11: aliases[0]: "alice@exa_mple.com": "exa_mple.com" is not a host name; ` + forms},
		{"unknown scheme", declaredVMR("aliases: [\"skype:alice\"]\n"),
			`vmrs/r.yaml:2:11: aliases[0]: "skype:alice" has the unknown scheme "skype:"; ` + forms},
		{"scheme alone", declaredVMR("aliases: [\"sip:\"]\n"),
			`vmrs/r.yaml:2:11: aliases[0]: "sip:" has nothing after its scheme; ` + forms},
		{"empty", declaredVMR("aliases: [\"\"]\n"),
			"vmrs/r.yaml:2:11: aliases[0]: empty; " + forms},
		{"device alias", map[string]string{"devices/d.yaml": "alias: \"dev <1>@example.com\"\n"},
			`devices/d.yaml:1:8: alias: "dev <1>@example.com" contains ' '; ` + forms + ", without spaces or any of <>\"\\`{}|^"},
		{"literal template alias", template("vmr:\n  name: \"{{cn}}\"\n  aliases: [\"{{uid}}@example.com\", \"bad alias\"]\n"),
			`templates/t.yaml:5:36: vmr.aliases[1]: "bad alias" contains ' '; ` + forms + ", without spaces or any of <>\"\\`{}|^"},
		{"overridden alias", overrides("aliases", "[ok, \"x y\"]"),
			`overrides.yaml:2:20: vmrs."Alice".aliases: [1]: "x y" contains ' '; ` + forms + ", without spaces or any of <>\"\\`{}|^"},
		{"every valid form", declaredVMR("aliases: [meet.alice, meet.alice@example.com, \"sip:meet.alice@example.com\", \"SIPS:bob@vc.example.com:5061\", \"h323:4400@10.0.0.1\", \"+441632960123\", \"4400\", \"alice@[2001:db8::1]\"]\n"), ""},
		{"pattern with a space is checked once rendered", template("vmr:\n  name: \"{{cn}}\"\n  aliases: [\"{{ uid }} room\"]\n"), ""},
	}
	runRuleCases(t, cases)
}

func TestRuleCallrate(t *testing.T) {
	msg := func(n string) string {
		return n + " kbps is out of range: Pexip accepts 128 to 8192 kbps; use a value in that range, or leave the field out for no limit"
	}
	runRuleCases(t, []ruleCase{
		{"128 and 8192", declaredVMR("max_callrate_in: 128\nmax_callrate_out: 8192\n"), ""},
		{"left out", declaredVMR(""), ""},
		{"127", declaredVMR("max_callrate_in: 127\n"), "vmrs/r.yaml:2:18: max_callrate_in: " + msg("127")},
		{"8193 out", declaredVMR("max_callrate_out: 8193\n"), "vmrs/r.yaml:2:19: max_callrate_out: " + msg("8193")},
		{"negative", declaredVMR("max_callrate_in: -5\n"), "vmrs/r.yaml:2:18: max_callrate_in: " + msg("-5")},
		{"99999 in a template", template("vmr:\n  name: \"{{cn}}\"\n  max_callrate_in: 99999\n"),
			"templates/t.yaml:5:20: vmr.max_callrate_in: " + msg("99999")},
		{"overridden", overrides("max_callrate_out", "64"),
			`overrides.yaml:2:29: vmrs."Alice".max_callrate_out: ` + msg("64")},
		{"overridden with text", overrides("max_callrate_out", "fast"),
			`overrides.yaml:2:29: vmrs."Alice".max_callrate_out: "fast" is not a whole number`},
	})
}

func TestRuleParticipantLimit(t *testing.T) {
	const outOfRange = " is out of range: Pexip accepts 0 to 1000000; use a value in that range, or leave the field out for no limit"
	runRuleCases(t, []ruleCase{
		{"0", declaredVMR("participant_limit: 0\n"), ""},
		{"1000000", declaredVMR("participant_limit: 1000000\n"), ""},
		{"1000001", declaredVMR("participant_limit: 1000001\n"), "vmrs/r.yaml:2:20: participant_limit: 1000001" + outOfRange},
		{"negative", declaredVMR("participant_limit: -1\n"), "vmrs/r.yaml:2:20: participant_limit: -1" + outOfRange},
		{"template", template("vmr:\n  name: \"{{cn}}\"\n  participant_limit: 2000000\n"),
			"templates/t.yaml:5:22: vmr.participant_limit: 2000000" + outOfRange},
		{"overridden", overrides("participant_limit", "-3"), `overrides.yaml:2:30: vmrs."Alice".participant_limit: -3` + outOfRange},
	})
}

func TestRulePIN(t *testing.T) {
	msg := `not a valid PIN: a PIN is 4 to 20 digits, optionally followed by # (e.g. "0123" or "0123#"); use digits only, quoted in YAML so leading zeros are kept`
	runRuleCases(t, []ruleCase{
		{"4 digits", declaredVMR("pin: \"0123\"\n"), ""},
		{"20 digits and #", declaredVMR("pin: \"12345678901234567890#\"\n"), ""},
		{"no PIN", declaredVMR("pin: \"\"\n"), ""},
		{"3 digits", declaredVMR("pin: \"123\"\n"), "vmrs/r.yaml:2:6: pin: " + msg},
		{"21 digits", declaredVMR("pin: \"123456789012345678901\"\n"), "vmrs/r.yaml:2:6: pin: " + msg},
		{"letters", declaredVMR("pin: \"12ab\"\n"), "vmrs/r.yaml:2:6: pin: " + msg},
		{"# inside", declaredVMR("pin: \"12#34\"\n"), "vmrs/r.yaml:2:6: pin: " + msg},
		{"# alone", declaredVMR("pin: \"1234##\"\n"), "vmrs/r.yaml:2:6: pin: " + msg},
		{"guest PIN", declaredVMR("pin: \"1234\"\nguest_pin: \"5 6 7 8\"\nallow_guests: true\n"), "vmrs/r.yaml:3:12: guest_pin: " + msg},
		{"template literal", template("vmr:\n  name: \"{{cn}}\"\n  pin: \"12\"\n"), "templates/t.yaml:5:8: vmr.pin: " + msg},
		{"template pattern", template("vmr:\n  name: \"{{cn}}\"\n  pin: \"{{ ''|pex_random_pin(6) }}\"\n"), ""},
		{"overridden", overrides("guest_pin", "\"1x34\""), `overrides.yaml:2:22: vmrs."Alice".guest_pin: ` + msg},
	})
}

func TestRulePINSettings(t *testing.T) {
	runRuleCases(t, []ruleCase{
		{"guests with a host PIN", declaredVMR("pin: \"1234\"\nallow_guests: true\n"), ""},
		{"guests with both PINs", declaredVMR("pin: \"1234\"\nguest_pin: \"5678\"\nallow_guests: true\n"), ""},
		{"guests without a host PIN", declaredVMR("allow_guests: true\n"),
			"vmrs/r.yaml:2:15: allow_guests: true needs a host PIN: set pin (4 to 20 digits), or allow_guests: false"},
		{"guest PIN equals host PIN", declaredVMR("pin: \"1234\"\nguest_pin: \"1234\"\nallow_guests: true\n"),
			"vmrs/r.yaml:3:12: guest_pin: the same as the host PIN, so guests would join as hosts: choose a different guest PIN"},
		{"equal but for the #", declaredVMR("pin: \"1234#\"\nguest_pin: \"1234\"\nallow_guests: true\n"),
			"vmrs/r.yaml:3:12: guest_pin: the same as the host PIN, so guests would join as hosts: choose a different guest PIN"},
		{"template without a host PIN", template("vmr:\n  name: \"{{cn}}\"\n  allow_guests: true\n"),
			"templates/t.yaml:5:17: vmr.allow_guests: true needs a host PIN: set pin (4 to 20 digits), or allow_guests: false"},
		{"template host PIN a pattern", template("vmr:\n  name: \"{{cn}}\"\n  pin: \"{{ ''|pex_random_pin(6) }}\"\n  guest_pin: \"\"\n  allow_guests: true\n"), ""},
	})
}

func TestRuleDeviceCredentials(t *testing.T) {
	x100, x101 := strings.Repeat("u", 100), strings.Repeat("ü", 101)
	runRuleCases(t, []ruleCase{
		{"100 each", declaredDevice("username: " + x100 + "\npassword: " + x100 + "\n"), ""},
		{"username of 101", declaredDevice("username: " + x101 + "\n"),
			"devices/d.yaml:2:11: username: 101 characters; at most 100 are allowed: shorten it"},
		{"password of 101", declaredDevice("password: " + x101 + "\n"),
			"devices/d.yaml:2:11: password: 101 characters; at most 100 are allowed: use a shorter password"},
		{"template literal username", template("device:\n  alias: \"{{mail}}\"\n  username: " + x101 + "\n"),
			"templates/t.yaml:5:13: device.username: 101 characters; at most 100 are allowed: shorten it"},
		{"template pattern password", template("device:\n  alias: \"{{mail}}\"\n  password: \"{{ ''|pex_random_pin(12) }}" + x101 + "\"\n"), ""},
		{"overridden password", map[string]string{
			"templates/t.yaml": "name: t\nsource: corp\ndevice:\n  alias: \"{{mail}}\"\n  overridable: [password]\n",
			"overrides.yaml":   "devices:\n  dev@example.com: {password: " + x101 + "}\n"},
			`overrides.yaml:2:31: devices."dev@example.com".password: 101 characters; at most 100 are allowed: use a shorter password`},
	})
	// The password itself is never in the message.
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "devices"), 0o755)
	os.WriteFile(filepath.Join(dir, "devices/d.yaml"), []byte("alias: d@example.com\npassword: "+x101+"\n"), 0o644)
	if _, err := Load(os.DirFS(dir), nil, LoadOptions{}); err == nil || strings.Contains(err.Error(), x101) {
		t.Errorf("err = %v: want an error without the password", err)
	}
}

func TestRuleLDAPFilter(t *testing.T) {
	paren := `every "(" needs its ")", e.g. (&(objectClass=inetOrgPerson)(mail=*))`
	runRuleCases(t, []ruleCase{
		{"valid filters", template("user_filter: (&(objectClass=inetOrgPerson)(mail=*))\ndisabled_filter: \"(!(employeeType=active))\"\n"), ""},
		{"blank", template("user_filter: \"\"\n"), ""},
		{"unbalanced", template("user_filter: (objectClass=inetOrgPerson\n"),
			`templates/t.yaml:3:40: user_filter: "(objectClass=inetOrgPerson" is not a valid LDAP filter (RFC 4515): unexpected end of filter; ` + paren},
		{"no parentheses", template("disabled_filter: employeeType=disabled\n"),
			`templates/t.yaml:3:18: disabled_filter: "employeeType=disabled" is not a valid LDAP filter (RFC 4515): filter does not start with an '('; enclose it in parentheses: (employeeType=disabled)`},
		{"two filters side by side", template("user_filter: \"(uid=*)(mail=*)\"\n"),
			`templates/t.yaml:3:22: user_filter: "(uid=*)(mail=*)" is not a valid LDAP filter (RFC 4515): extra text after the filter's last ")"; combine filters with (&…) or (|…), e.g. (&(objectClass=inetOrgPerson)(mail=*))`},
		{"not with two filters", template("user_filter: (!(a=b)(c=d))\n"),
			`templates/t.yaml:3:21: user_filter: "(!(a=b)(c=d))" is not a valid LDAP filter (RFC 4515): expected ')' at position 7; ` + paren},
		{"bad escape", template("user_filter: (cn=a\\zz)\n"),
			`templates/t.yaml:3:14: user_filter: "(cn=a\\zz)" is not a valid LDAP filter (RFC 4515): invalid characters for escape in filter: encoding/hex: invalid byte: U+007A 'z'; write "*", "(", ")" and "\" inside a value as \2a, \28, \29 and \5c`},
	})
}
