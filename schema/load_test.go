package schema

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

func TestLoadReportsAllErrorsSorted(t *testing.T) {
	fsys := fstest.MapFS{
		"state/settings.yaml":        {Data: []byte("domain_hosting: maybe\n")},
		"state/templates/a.yaml":     {Data: []byte("name: a\nsource: corp\nbogus: 1\n")},
		"state/users/x.csv":          {Data: []byte("USERID,EMAIL\n")},
		"state/invites/i.csv":        {Data: []byte("Ann;ann@example.com;ann@example.com\n")},
		"state/reminders.yaml":       {Data: []byte("- id: x\n  template: a\n")},
		"state/README.md":            {Data: []byte("docs")},
		"state/notes/anything.bin":   {Data: []byte{0, 1, 2}},
		"state/templates/.gitignore": {Data: []byte("")},
	}
	cfg := &Config{Repo: RepoConfig{Path: "state"}, Directories: map[string]DirConfig{"corp": {LDIF: "people.ldif"}}}
	_, err := Load(fsys, cfg, LoadOptions{})
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("err = %v", err)
	}
	got := err.Error()
	for _, want := range []string{
		"state/people.ldif: not found in the repository (named by directories.corp.ldif in config.cue)",
		"state/settings.yaml:1:17: domain_hosting: \"maybe\" is not of type bool",
		"state/templates/a.yaml:3:1: bogus: unknown field \"bogus\"",
		"state/users/x.csv:1: Incorrect file format. CUSTOM10 is required.",
		"state/invites/i.csv:1:21: username: \"ann@example.com\" has 3 characters before \"@\"; at least 6 are needed unless settings.domain_hosting is true",
	} {
		if !strings.Contains(got, want+"\n") && !strings.HasSuffix(got, want) {
			t.Errorf("missing %q in\n%s", want, got)
		}
	}
	if n := strings.Count(got, "is required."); n != 16 {
		t.Errorf("%d missing-column errors, want 16 (one per missing column)", n)
	}
	for i := 1; i < len(list); i++ {
		a, b := list[i-1], list[i]
		if a.Path > b.Path || a.Path == b.Path && a.Line > b.Line {
			t.Errorf("not sorted: %v before %v", a, b)
		}
	}
	// The reminder names a template whose file failed: no cascading error.
	if strings.Contains(got, "unknown template") {
		t.Errorf("cascading error: %s", got)
	}
}

func TestLoadCSVVariants(t *testing.T) {
	hdrTab := strings.ReplaceAll(strings.ToLower(csvHeader), ",", "\t")
	fsys := fstest.MapFS{
		"users/bom.csv":        {Data: []byte("\xef\xbb\xbf" + strings.ReplaceAll(csvHeader, "\n", "\r\n") + ",,Ann,Lee,ann.lee@example.com,,,,,,,,,,,,,\r\n")},
		"users/tab.csv":        {Data: []byte(hdrTab + "\tN\tBo\tKim\tbo.kim@example.com\tFR\tadmn\tParis\t\t\t\t\t\t\t\t\t\t\n")},
		"invites/noheader.csv": {Data: []byte("Carl Jung;carl@example.com;carl.jung@example.com\n")},
		"invites/header.csv":   {Data: []byte("Name;Email;Username\r\nDora Maar;dora@example.com;dora.maar@example.com\r\n")},
	}
	repo, err := Load(fsys, nil, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(repo.Users) != 2 || len(repo.Invites) != 2 {
		t.Fatalf("users %d invites %d", len(repo.Users), len(repo.Invites))
	}
	a, b := repo.Users[0], repo.Users[1]
	if a.FirstName != "Ann" || !a.Active || a.Language != "en-us" || a.HostPrivilege != "HOST" || a.Pos.Line != 2 {
		t.Errorf("bom row = %+v", a)
	}
	if b.FirstName != "Bo" || b.Active || b.Language != "fr" || b.HostPrivilege != "ADMN" || b.TimeZone != "Paris" {
		t.Errorf("tab row = %+v", b)
	}
	if repo.Invites[0].Name != "Dora Maar" || repo.Invites[1].Username != "carl.jung@example.com" {
		t.Errorf("invites = %+v %+v", repo.Invites[0], repo.Invites[1])
	}
	// domain_hosting lifts the 6-character rule.
	fsys = fstest.MapFS{
		"settings.yaml": {Data: []byte("domain_hosting: true\n")},
		"invites/a.csv": {Data: []byte("Al;al@example.com;al@example.com\n")},
	}
	if _, err := Load(fsys, nil, LoadOptions{}); err != nil {
		t.Errorf("domain_hosting: %v", err)
	}
}

func TestLoadDefaultsWithoutFiles(t *testing.T) {
	repo, err := Load(fstest.MapFS{}, nil, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s := repo.Settings
	if s.LifetimeUserLimit != 400000 || s.InviteTTL.Duration != 336*time.Hour || !s.AutoActivationEmails || s.Licenses.Paid != 0 {
		t.Errorf("defaults = %+v", s)
	}
}

func TestPatternPositions(t *testing.T) {
	tmpl := "name: t\nsource: corp\nsync_vmrs: true\nvmr:\n  name: |\n    Room of\n    {{cn|nosuch}}\n  aliases: ['{{uid|nosuch}}@example.com']\n"
	fsys := fstest.MapFS{"templates/t.yaml": {Data: []byte(tmpl)}}
	repo, err := Load(fsys, &Config{Directories: map[string]DirConfig{"corp": {LDIF: "x.ldif"}}}, LoadOptions{CheckPattern: checkFake})
	got := ""
	if err != nil {
		got = err.Error()
	}
	for _, want := range []string{
		`templates/t.yaml:7:10: vmr.name: unknown filter "nosuch"`,
		`templates/t.yaml:8:20: vmr.aliases[0]: unknown filter "nosuch"`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in\n%s", want, got)
		}
	}
	if p := repo.Templates[0].FieldPos["vmr.aliases[0]"]; p.Line != 8 || p.Col != 13 {
		t.Errorf("FieldPos = %+v", p)
	}
}

func TestCheckPatternPanicIsAnError(t *testing.T) {
	fsys := fstest.MapFS{"templates/t.yaml": {Data: []byte("name: t\nsource: corp\nvmr: {name: x}\n")}}
	_, err := Load(fsys, nil, LoadOptions{CheckPattern: func(string) error { panic("boom") }})
	if err == nil || !strings.Contains(err.Error(), "templates/t.yaml:3:13: vmr.name: pattern checker failed: boom") {
		t.Errorf("err = %v", err)
	}
}

func TestDurationJSON(t *testing.T) {
	var d Duration
	if err := json.Unmarshal([]byte(`"336h"`), &d); err != nil || d.Duration != 336*time.Hour {
		t.Fatalf("%v %v", d, err)
	}
	b, _ := json.Marshal(Duration{90 * time.Second})
	if string(b) != `"1m30s"` {
		t.Errorf("marshal = %s", b)
	}
	if err := json.Unmarshal([]byte(`"soon"`), &d); err == nil {
		t.Error("bad duration accepted")
	}
}
