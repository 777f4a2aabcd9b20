package schema

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakePatternErr mimics the pattern package's error: a place inside the pattern.
type fakePatternErr struct{ line, col int }

func (e fakePatternErr) Error() string {
	return fmt.Sprintf("%d:%d: unknown filter \"nosuch\"", e.line, e.col)
}
func (e fakePatternErr) Position() (int, int) { return e.line, e.col }
func checkFake(src string) error {
	if i := strings.Index(src, "nosuch"); i >= 0 {
		line := 1 + strings.Count(src[:i], "\n")
		col := i + 1 - (strings.LastIndex(src[:i], "\n") + 1)
		return fakePatternErr{line, col}
	}
	if strings.Contains(src, "PLAINFAIL") {
		return errors.New("plain failure")
	}
	return nil
}

type mutation func(t *testing.T, dir string)

func set(path, content string) mutation {
	return func(t *testing.T, dir string) {
		p := filepath.Join(dir, path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func replace(path, old, new string) mutation {
	return func(t *testing.T, dir string) {
		p := filepath.Join(dir, path)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), old) {
			t.Fatalf("mutation: %q not in %s", old, path)
		}
		if err := os.WriteFile(p, []byte(strings.Replace(string(b), old, new, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func remove(path string) mutation {
	return func(t *testing.T, dir string) {
		if err := os.Remove(filepath.Join(dir, path)); err != nil {
			t.Fatal(err)
		}
	}
}

const csvHeader = "USERID,ACTIVE,FIRSTNAME,LASTNAME,EMAIL,LANGUAGE,HOSTPRIVILEGE,TIMEZONE,DIVISION,DEPARTMENT,PROJECT,OTHER,CUSTOM5,CUSTOM6,CUSTOM7,CUSTOM8,CUSTOM9,CUSTOM10\n"

// loadMutated copies examples/ into a temp dir, applies muts and loads it.
func loadMutated(t *testing.T, muts ...mutation) error {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("../examples")); err != nil {
		t.Fatal(err)
	}
	for _, m := range muts {
		m(t, dir)
	}
	cfg := loadRootConfig(t)
	cfg.SMTP = map[string]SMTPConfig{"default": {Host: "localhost", Port: 25, Security: "none", From: "roster@example.com"}}
	_, err := Load(os.DirFS(dir), cfg, LoadOptions{CheckPattern: checkFake})
	return err
}

func TestBrokenRepos(t *testing.T) {
	long := strings.Repeat("x", 251)
	cases := []struct {
		name string
		muts []mutation
		want string // one exact line of the output
	}{
		// settings.yaml
		{"settings bad yaml", []mutation{replace("settings.yaml", "admins: [ops@example.com]", "admins: [ops@example.com")},
			"settings.yaml:3: syntax error: did not find expected ',' or ']'"},
		{"settings type error", []mutation{replace("settings.yaml", "lifetime_user_limit: 400000", "lifetime_user_limit: lots")},
			`settings.yaml:5:22: lifetime_user_limit: "lots" is not of type int`},
		{"settings unknown field", []mutation{replace("settings.yaml", "domain_hosting: false", "domain_hosting: false\ncolour: blue")},
			`settings.yaml:9:1: colour: unknown field "colour"`},
		{"settings bad duration", []mutation{replace("settings.yaml", "invite_ttl: 336h", "invite_ttl: 2 weeks")},
			`settings.yaml:7:13: invite_ttl: invalid value "2 weeks" (does not satisfy time.Duration)`},
		{"settings bad admin", []mutation{replace("settings.yaml", "admins: [ops@example.com]", "admins: [ops at example.com]")},
			`settings.yaml:4:10: admins[0]: "ops at example.com" is not a valid email address`},
		{"settings both yaml and cue", []mutation{set("settings.cue", "notify_admins: true\n")},
			"settings.yaml: both settings.cue and settings.yaml exist; keep one"},
		// templates
		{"template unknown field", []mutation{replace("templates/staff.yaml", "  tag: staff\n  primary", "  colour: red\n  tag: staff\n  primary")},
			`templates/staff.yaml:24:3: vmr.colour: unknown field "colour"`},
		{"template bad enum", []mutation{replace("templates/staff.yaml", "license: paid", "license: gold")},
			`templates/staff.yaml:43:12: user.license: "gold" is not one of "paid", "free"`},
		{"template overridable enum", []mutation{replace("templates/staff.yaml", "overridable: [pin_settings,", "overridable: [pin,")},
			`templates/staff.yaml:26:17: vmr.overridable[0]: "pin" is not one of "name", "description", "aliases", "pin_settings", "callrate", "participant_limit", "tag", "primary_owner_email_address"`},
		{"template name too long", []mutation{replace("templates/contractors.yaml", "name: contractors", "name: "+long)},
			"templates/contractors.yaml:2:7: name: too long: at most 250 characters"},
		{"template type error", []mutation{replace("templates/staff.yaml", "participant_limit: 50", "participant_limit: fifty")},
			`templates/staff.yaml:23:22: vmr.participant_limit: "fifty" is not of type int`},
		{"template bool type", []mutation{replace("templates/staff.yaml", "sync_vmrs: true", "sync_vmrs: 3")},
			`templates/staff.yaml:9:12: sync_vmrs: 3 is not of type bool`},
		{"template too many aliases", []mutation{replace("templates/contractors.yaml", `aliases: ["c.{{uid}}@example.com"]`, `aliases: [a1, a2, a3, a4, a5, a6, a7, a8, a9]`)},
			"templates/contractors.yaml:12:12: vmr.aliases: 9 aliases; a VMR may have at most 8: remove 1"},
		{"template duplicate name", []mutation{replace("templates/contractors.yaml", "name: contractors", "name: staff")},
			`templates/staff.yaml:2:7: name: template "staff" is already defined at templates/contractors.yaml:2`},
		{"template reserved name", []mutation{replace("templates/contractors.yaml", "name: contractors", "name: manual")},
			`templates/contractors.yaml:2:7: name: "manual" is reserved for the VMRs and devices declared in vmrs/ and devices/`},
		{"template unknown source", []mutation{replace("templates/contractors.yaml", "source: corp", "source: ad")},
			`templates/contractors.yaml:4:9: source: unknown directory "ad"; config.cue defines: corp`},
		{"body_file traversal", []mutation{replace("templates/contractors.yaml", "body_file: emails/vmr.html", "body_file: ../../etc/passwd")},
			`templates/contractors.yaml:23:72: emails.vmr.body_file: "../../etc/passwd" must be a path inside the repository, relative to it, without .. (e.g. emails/vmr.html)`},
		{"body_file absolute", []mutation{replace("templates/contractors.yaml", "body_file: emails/vmr.html", "body_file: /etc/passwd")},
			`templates/contractors.yaml:23:72: emails.vmr.body_file: "/etc/passwd" must be a path inside the repository, relative to it, without .. (e.g. emails/vmr.html)`},
		{"body_file missing", []mutation{remove("emails/device.txt")},
			"templates/staff.yaml:50:72: emails.device.body_file: emails/device.txt does not exist in the repository"},
		{"body too large", []mutation{set("emails/vmr.html", strings.Repeat("a", MaxEmailBody+1))},
			"templates/contractors.yaml:23:72: emails.vmr.body_file: emails/vmr.html is 24577 bytes; an email body may be at most 24576 bytes"},
		{"body not utf8", []mutation{set("emails/device.txt", "Hello\nbad \xff byte\n")},
			"emails/device.txt:2:5: email body is not valid UTF-8"},
		{"body pattern error", []mutation{set("emails/device.txt", "Hello\n  {{ device_alias|nosuch }}\n")},
			`emails/device.txt:2:19: unknown filter "nosuch"`},
		{"pattern error offset", []mutation{replace("templates/staff.yaml", `name: "{{givenName}} {{sn}} VMR"`, `name: "{{givenName|nosuch}} VMR"`)},
			`templates/staff.yaml:13:22: vmr.name: unknown filter "nosuch"`},
		{"pattern error plain", []mutation{replace("templates/staff.yaml", `username: "{{uid}}"`, `username: "PLAINFAIL"`)},
			`templates/staff.yaml:30:13: device.username: plain failure`},
		{"subject too long", []mutation{replace("templates/staff.yaml", `subject: "Your meeting room {{ name }}"`, `subject: "`+strings.Repeat("y", 256)+`"`)},
			"templates/staff.yaml:49:18: emails.vmr.subject: too long: at most 255 characters"},
		{"unknown smtp server", []mutation{replace("templates/staff.yaml", "  send: true\n", "  send: true\n  smtp_server: relay\n")},
			`templates/staff.yaml:47:16: emails.smtp_server: unknown SMTP server "relay"; config.cue has: default`},
		{"sync without section", []mutation{replace("templates/contractors.yaml", "sync_vmrs: true", "sync_vmrs: true\nsync_devices: true")},
			"templates/contractors.yaml:9:15: sync_devices is true but the template has no device: section"},
		{"template bad language", []mutation{replace("templates/staff.yaml", "language: en-us", "language: english")},
			`templates/staff.yaml:40:13: user.language: "english" is not a WebEx language; use one of en-us, zh-cn, zh-tw, jp, ko, fr, de, it, es-me, es, nl, pt-br, ru`},
		{"template as cue with type error", []mutation{remove("templates/contractors.yaml"), set("templates/contractors.cue", "name: \"contractors\"\nsource: \"corp\"\nsync_vmrs: \"yes\"\n")},
			`templates/contractors.cue:3:12: sync_vmrs: "yes" is not of type bool`},
		{"template unexpected file", []mutation{set("templates/notes.txt", "hi")},
			"templates/notes.txt: unexpected file in templates/: want one sync template per .yaml, .yml or .cue file"},
		// vmrs/ and devices/
		{"vmr duplicate name", []mutation{set("vmrs/more.yaml", "name: Board Room\n")},
			`vmrs/team-rooms.yaml:2:9: [0].name: VMR "Board Room" is already declared at vmrs/more.yaml:1`},
		{"vmr bad pin", []mutation{replace("vmrs/team-rooms.yaml", `pin: "246810"`, `pin: "12ab"`)},
			`vmrs/team-rooms.yaml:5:8: [0].pin: not a valid PIN: a PIN is 4 to 20 digits, optionally followed by # (e.g. "0123" or "0123#"); use digits only, quoted in YAML so leading zeros are kept`},
		{"vmr unknown field", []mutation{replace("vmrs/team-rooms.yaml", "  tag: team\n  primary", "  tags: team\n  primary")},
			`vmrs/team-rooms.yaml:11:3: [0].tags: unknown field "tags"`},
		{"device alias clash", []mutation{replace("devices/lobby.yaml", "alias: lobby@dev.example.com", "alias: Board@example.com")},
			`devices/lobby.yaml:2:8: alias: alias "Board@example.com" is already used at vmrs/team-rooms.yaml:4`},
		{"device missing alias", []mutation{set("devices/other.yaml", "description: no alias\n")},
			"devices/other.yaml:1:1: alias: field is required"},
		// users/*.csv
		{"users missing column", []mutation{replace("users/local.csv", ",CUSTOM9,CUSTOM10", ",CUSTOM9")},
			"users/local.csv:1: Incorrect file format. CUSTOM10 is required."},
		{"users tab missing column", []mutation{replace("users/partners.csv", "\tLANGUAGE", "")},
			"users/partners.csv:1: Incorrect file format. LANGUAGE is required."},
		{"users bad active", []mutation{replace("users/local.csv", ",Y,Jean,", ",Yes,Jean,")},
			`users/local.csv:3:2: ACTIVE: "Yes": want Y or N`},
		{"users long first name", []mutation{replace("users/local.csv", ",Jean,", ","+strings.Repeat("J", 33)+",")},
			"users/local.csv:3:4: FIRSTNAME: 33 characters; at most 32"},
		{"users empty last name", []mutation{replace("users/local.csv", ",Dupont,", ",,")},
			"users/local.csv:3:9: LASTNAME: required (1 to 32 characters)"},
		{"users bad email", []mutation{replace("users/local.csv", "jean.dupont@example.com", "Jean <jean.dupont@example.com>")},
			`users/local.csv:3:16: EMAIL: "Jean <jean.dupont@example.com>" is not a valid email address`},
		{"users duplicate email across files", []mutation{replace("users/partners.csv", "raj.iyer@partner.example", "Maria.Lopez@example.com")},
			"users/partners.csv:4:13: EMAIL Maria.Lopez@example.com is already used at users/local.csv:2; an email may appear once across all user files"},
		{"users bad language", []mutation{replace("users/local.csv", ",fr,", ",french,")},
			`users/local.csv:3:40: LANGUAGE: "french" is not a WebEx language; use one of en-us, zh-cn, zh-tw, jp, ko, fr, de, it, es-me, es, nl, pt-br, ru`},
		{"users bad timezone", []mutation{replace("users/local.csv", ",Paris,", ",Europe/Paris,")},
			`users/local.csv:3:48: TIMEZONE: "Europe/Paris" is not a WebEx time zone (e.g. London, New York, Berlin, Tokyo)`},
		{"users bad host privilege", []mutation{replace("users/local.csv", ",ADMN,", ",ROOT,")},
			`users/local.csv:5:47: HOSTPRIVILEGE: "ROOT": want ADMN or HOST`},
		{"users not utf8", []mutation{replace("users/local.csv", "Müller", "M\xfcller")},
			"users/local.csv:5:10: LASTNAME: not valid UTF-8 (save the file as UTF-8)"},
		{"users inactive dropdown code", []mutation{replace("users/local.csv", ",Paris,OPS,", ",Paris,LEGACY,")},
			`users/local.csv:3:54: DIVISION: "LEGACY" is not an active code of tracking code group "Division"`},
		{"users bad userid", []mutation{replace("users/local.csv", "\r\n,Y,Jean", "\r\njean-1,Y,Jean")},
			`users/local.csv:3:1: USERID: "jean-1": want 1 to 19 letters and digits (or leave it blank: roster generates it)`},
		{"users short row", []mutation{replace("users/local.csv", ",Y,Jean,Dupont,jean.dupont@example.com,fr,HOST,Paris,OPS,,,,,,,,,", ",Y,Jean")},
			"users/local.csv:3: row has 3 fields; the header has 18"},
		{"users bad quote", []mutation{replace("users/local.csv", `"Wei"`, `"Wei" x`)},
			`users/local.csv:8:8: extraneous or missing " in quoted-field`},
		{"users tracking too long", []mutation{replace("users/local.csv", ",Atlas,", ","+strings.Repeat("p", 129)+",")},
			"users/local.csv:2:62: PROJECT: 129 characters; at most 128"},
		{"users required tracking", []mutation{replace("tracking-codes.yaml", "name: Project\n    input_mode: text\n    usage: optional", "name: Project\n    input_mode: text\n    usage: required")},
			`users/local.csv:3:59: PROJECT: required by tracking code group "Project"`},
		// tracking-codes.yaml
		{"tracking reserved name", []mutation{replace("tracking-codes.yaml", "name: Project", "name: Email")},
			`tracking-codes.yaml:17:11: groups[1].name: "Email" is a reserved user field name (USERID, ACTIVE, FIRSTNAME, LASTNAME, EMAIL, LANGUAGE, HOSTPRIVILEGE, TIMEZONE)`},
		{"tracking duplicate slot", []mutation{replace("tracking-codes.yaml", "slot: PROJECT", "slot: DIVISION")},
			"tracking-codes.yaml:16:11: groups[1].slot: DIVISION is already used at line 3; each slot at most once"},
		{"tracking bad slot", []mutation{replace("tracking-codes.yaml", "slot: PROJECT", "slot: CUSTOM11")},
			`tracking-codes.yaml:16:11: groups[1].slot: "CUSTOM11" is not one of "DIVISION", "DEPARTMENT", "PROJECT", "OTHER", "CUSTOM5", "CUSTOM6", "CUSTOM7", "CUSTOM8", "CUSTOM9", "CUSTOM10"`},
		{"tracking two defaults", []mutation{replace("tracking-codes.yaml", "{code: HR}", "{code: HR, default: true}")},
			"tracking-codes.yaml:14:30: groups[0].codes[5].default: a group may have at most one default code"},
		{"tracking dropdown without codes", []mutation{replace("tracking-codes.yaml", "name: Project\n    input_mode: text", "name: Project\n    input_mode: dropdown")},
			"tracking-codes.yaml:18:5: groups[1].codes: a dropdown group in use (usage optional) needs at least one code"},
		{"tracking long code", []mutation{replace("tracking-codes.yaml", "{code: FIN}", "{code: "+strings.Repeat("F", 129)+"}")},
			"tracking-codes.yaml:13:16: groups[0].codes[4].code: 129 characters; want 1 to 128"},
		{"tracking bad input mode", []mutation{replace("tracking-codes.yaml", "input_mode: text\n    usage: not_used", "input_mode: free\n    usage: not_used")},
			`tracking-codes.yaml:22:17: groups[2].input_mode: "free" is not one of "dropdown", "text"`},
		// invites/*.csv
		{"invite short username", []mutation{replace("invites/2026-q4.csv", "davids@partner.example", "dave@partner.example")},
			`invites/2026-q4.csv:3:41: username: "dave@partner.example" has 4 characters before "@"; at least 6 are needed unless settings.domain_hosting is true`},
		{"invite bad email", []mutation{replace("invites/2026-q4.csv", "David Smith;david.smith@partner.example", "David Smith;david.smith")},
			`invites/2026-q4.csv:3:13: email: "david.smith" is not a valid email address`},
		{"invite duplicate email", []mutation{set("invites/more.csv", "John Again;JOHN.DOE@partner.example;johnagain@partner.example\n")},
			"invites/more.csv:1:12: email: JOHN.DOE@partner.example is already invited at invites/2026-q4.csv:2"},
		{"invite comma delimited", []mutation{set("invites/more.csv", "name,email,username\nAnn Lee,ann.lee@x.example,ann.lee@x.example\n")},
			"invites/more.csv:1: want 3 fields name;email;username, found 1 (the delimiter must be a semicolon)"},
		// overrides.yaml
		{"override not overridable", []mutation{replace("overrides.yaml", "{primary_owner_email_address: alice.private@example.net}", "{tag: vip}")},
			`overrides.yaml:3:24: vmrs."Alice Parkes VMR".tag: no template allows overriding tag (overridable fields: allow_guests, description, guest_pin, max_callrate_in, max_callrate_out, pin, primary_owner_email_address)`},
		{"override declared vmr", []mutation{replace("overrides.yaml", `"Ravi Patel (contractor)"`, `"Board Room"`)},
			`overrides.yaml:4:3: vmrs."Board Room": declared in vmrs/; edit it there instead of overriding it`},
		{"override bad email", []mutation{replace("overrides.yaml", "alice.private@example.net", "alice.private")},
			`overrides.yaml:3:53: vmrs."Alice Parkes VMR".primary_owner_email_address: "alice.private" is not a valid email address`},
		{"override unknown section", []mutation{replace("overrides.yaml", "devices:", "device:")},
			`overrides.yaml:5:1: device: unknown field "device"`},
		// reminders.yaml
		{"reminder duplicate id", []mutation{replace("reminders.yaml", "id: 2026-11-alice", "id: 2026-11-launch")},
			`reminders.yaml:4:7: [1].id: "2026-11-launch" is already used at line 2; reminder ids are unique`},
		{"reminder unknown template", []mutation{replace("reminders.yaml", "template: staff", "template: staf")},
			`reminders.yaml:3:13: [0].template: unknown template "staf" (templates: contractors, staff)`},
		{"reminder empty", []mutation{set("reminders.yaml", "- id: nothing\n")},
			`reminders.yaml:1:3: [0]: reminder "nothing" names no template, vmrs or devices`},
		// LDIF named by config.cue
		{"ldif missing", []mutation{remove("directory.ldif")},
			"directory.ldif: not found in the repository (named by directories.corp.ldif in config.cue)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := loadMutated(t, tc.muts...)
			if err == nil {
				t.Fatalf("no error; want %q", tc.want)
			}
			var list ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("error is %T, want ErrorList: %v", err, err)
			}
			out := err.Error()
			if strings.Contains(out, "goroutine ") || strings.Contains(out, "panic") {
				t.Fatalf("stack trace in output:\n%s", out)
			}
			for _, line := range strings.Split(out, "\n") {
				if line == tc.want {
					return
				}
			}
			t.Errorf("want line\n  %s\ngot\n  %s", tc.want, strings.ReplaceAll(out, "\n", "\n  "))
		})
	}
}
