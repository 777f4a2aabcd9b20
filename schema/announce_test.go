package schema

import (
	"os"
	"path/filepath"
	"testing"
)

// announcement is announcements/a.yaml with the given body, plus files.
func announcement(yaml string, files ...string) map[string]string {
	m := map[string]string{
		"announcements/a.yaml": yaml,
		"emails/m.html":        "<p>Maintenance on Saturday</p>\n",
		"users/local.csv":      "USERID,ACTIVE,FIRSTNAME,LASTNAME,EMAIL,LANGUAGE,HOSTPRIVILEGE,TIMEZONE,DIVISION,DEPARTMENT,PROJECT,OTHER,CUSTOM5,CUSTOM6,CUSTOM7,CUSTOM8,CUSTOM9,CUSTOM10\n,Y,Ann,Lee,ann@example.com,en-us,HOST,London,,,,,,,,,,\n",
		"templates/staff.yaml": "name: staff\nsource: corp\nuser_filter: (mail=*)\n",
	}
	for i := 0; i+1 < len(files); i += 2 {
		m[files[i]] = files[i+1]
	}
	return m
}

func TestAnnouncementRules(t *testing.T) {
	const head = "id: 2026-12-maintenance\nsubject: Maintenance\n"
	runRuleCases(t, []ruleCase{
		{"valid: every recipient form, HTML body file", announcement(head +
			"to: [all_active_users, \"template:staff\", \"csv:users/local.csv\", ops@example.com]\nbcc: it@example.com\nbody_file: emails/m.html\n"), ""},
		{"valid: one recipient as a string, inline body", announcement(head + "to: all_active_users\nbody: Hello\n"), ""},
		{"unknown template", announcement(head + "to: [\"template:sales\"]\nbody: Hi\n"),
			`announcements/a.yaml:3:6: to: "template:sales": unknown template "sales" (templates: staff)`},
		{"csv file missing", announcement(head + "to: [\"csv:users/other.csv\"]\nbody: Hi\n"),
			`announcements/a.yaml:3:6: to: "csv:users/other.csv": users/other.csv does not exist (have: csv:users/local.csv)`},
		{"csv outside users/", announcement(head + "to: [\"csv:../x.csv\"]\nbody: Hi\n"),
			`announcements/a.yaml:3:6: to: "csv:../x.csv": name a user file of the repository as csv:users/FILE.csv`},
		{"bad address", announcement(head + "to: [ops@example.com, not-an-address]\nbody: Hi\n"),
			`announcements/a.yaml:3:23: to: "not-an-address" is not a recipient; use all_active_users, template:NAME, csv:users/FILE.csv or an email address`},
		{"bcc takes addresses only", announcement(head + "to: all_active_users\nbcc: [all_active_users]\nbody: Hi\n"),
			`announcements/a.yaml:4:7: bcc: "all_active_users" is not a valid email address (bcc takes addresses only; each gets one copy)`},
		{"no body", announcement(head + "to: all_active_users\n"),
			`announcements/a.yaml:1:5: announcement "2026-12-maintenance" has no body: add body_file: emails/FILE.html (or .txt), or body: "…"`},
		{"body and body_file", announcement(head + "to: all_active_users\nbody: Hi\nbody_file: emails/m.html\n"),
			`announcements/a.yaml:4:7: body and body_file are both set; keep one`},
		{"body file outside the repo", announcement(head + "to: all_active_users\nbody_file: ../../etc/passwd\n"),
			`announcements/a.yaml:4:12: body_file: "../../etc/passwd" must be a path inside the repository, relative to it, without .. (e.g. emails/vmr.html)`},
		{"absolute body file", announcement(head + "to: all_active_users\nbody_file: /etc/passwd\n"),
			`announcements/a.yaml:4:12: body_file: "/etc/passwd" must be a path inside the repository, relative to it, without .. (e.g. emails/vmr.html)`},
		{"body file missing", announcement(head + "to: all_active_users\nbody_file: emails/none.txt\n"),
			`announcements/a.yaml:4:12: body_file: emails/none.txt does not exist in the repository`},
		{"duplicate id across files", announcement(head+"to: all_active_users\nbody: Hi\n",
			"announcements/b.yaml", "subject: Again\nto: all_active_users\nbody: Hi\nid: 2026-12-maintenance\n"),
			`announcements/b.yaml:4:5: id: "2026-12-maintenance" is already the id of the announcement at announcements/a.yaml:1:5; give this one an id of its own`},
		{"id with a space", announcement("id: dec maintenance\nsubject: S\nto: all_active_users\nbody: Hi\n"),
			`announcements/a.yaml:1:5: id: "dec maintenance": use letters, digits, '.', '_' and '-', starting with a letter or digit (e.g. 2026-12-maintenance)`},
	})
}

func TestAnnouncementLoadedAndDigests(t *testing.T) {
	dir := t.TempDir()
	for name, content := range announcement("id: a1\nsubject: S\nto: [\"csv:users/local.csv\", Ops@Example.com]\nbody_file: emails/m.html\n") {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755)
		if err := os.WriteFile(dir+"/"+name, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	repo, err := Load(os.DirFS(dir), nil, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(repo.Announcements) != 1 {
		t.Fatalf("announcements = %d, want 1", len(repo.Announcements))
	}
	a := repo.Announcements[0]
	if !a.HTML || a.Body != "<p>Maintenance on Saturday</p>\n" || len(a.Targets) != 2 ||
		a.Targets[0] != (Target{TargetCSV, "users/local.csv"}) || a.Targets[1] != (Target{TargetAddress, "Ops@Example.com"}) {
		t.Errorf("loaded %+v", a)
	}
	d := a.FieldDigests()
	// Reordering or re-casing recipients says the same; a new subject or body does not.
	b := *a
	b.To = Recipients{"ops@example.com", "csv:users/local.csv"}
	if b.FieldDigests()["to"] != d["to"] {
		t.Error("reordered recipients changed the digest")
	}
	b.Subject, b.Body = "S2", "<p>x</p>"
	if nd := b.FieldDigests(); nd["subject"] == d["subject"] || nd["body"] == d["body"] || nd["bcc"] != d["bcc"] {
		t.Errorf("digests %v vs %v", nd, d)
	}
}
