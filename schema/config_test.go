package schema

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadConfigErrors(t *testing.T) {
	const base = `repo: url: "./examples"
directories: corp: {ldif: "directory.ldif", base_dn: "dc=example,dc=com"}
`
	cases := []struct {
		name, src, want string
	}{
		{"bad security", base + `smtp: default: {host: "mx", port: 25, security: "ssl", from: "r@example.com"}` + "\n",
			`config.cue:3:49: smtp.default.security: "ssl" is not one of "none", "starttls", "tls"`},
		{"port out of range", base + `smtp: default: {host: "mx", port: 70000, security: "tls", from: "r@example.com"}` + "\n",
			"config.cue:3:35: smtp.default.port: invalid value 70000 (out of bound <=65535)"},
		{"bad from", base + `smtp: default: {host: "mx", port: 25, security: "tls", from: "roster"}` + "\n",
			`config.cue:3:56: smtp.default.from: "roster" is not an email address`},
		{"url and ldif", `repo: url: "./examples"
directories: corp: {url: "ldaps://dc1", ldif: "directory.ldif", base_dn: "dc=example,dc=com"}
`, "config.cue:2:41: directories.corp: set url or ldif, not both"},
		{"neither url nor ldif", `repo: url: "./examples"
directories: corp: {base_dn: "dc=example,dc=com"}
`, "config.cue:2:14: directories.corp: set one of url (an LDAP server) or ldif (a file in the repo)"},
		{"bad url scheme", `repo: url: "./examples"
directories: corp: {url: "http://dc1", base_dn: "dc=example,dc=com"}
`, `config.cue:2:26: directories.corp.url: invalid value "http://dc1" (out of bound =~"^ldaps?://")`},
		{"bad duration", base + `repo: interval: "soon"` + "\n",
			`config.cue:3:17: repo.interval: invalid value "soon" (does not satisfy time.Duration)`},
		{"unknown field", base + `colour: "blue"` + "\n",
			`config.cue:3:1: colour: unknown field "colour"`},
		{"type error", base + `safety: max_delete_count: "many"` + "\n",
			`config.cue:3:27: safety.max_delete_count: "many" is not of type int`},
		{"syntax error", base + `repo: {` + "\n",
			"config.cue:3:9: syntax error: expected '}', found 'EOF'"},
		{"ldif traversal", `repo: url: "./examples"
directories: corp: {ldif: "../secret.ldif", base_dn: "dc=example,dc=com"}
`, `config.cue:2:21: directories.corp.ldif: "../secret.ldif" must be a path inside the desired-state repository (no leading / or ..)`},
		{"bad sync mode", `repo: url: "./examples"
directories: corp: {url: "ldap://dc1", base_dn: "dc=example,dc=com", sync: "delta"}
`, `config.cue:2:76: directories.corp.sync: "delta" is not one of "auto", "full"`},
		{"zero full_read", `repo: url: "./examples"
directories: corp: {url: "ldap://dc1", base_dn: "dc=example,dc=com", full_read: "0s"}
`, `config.cue:2:70: directories.corp.full_read: 0s must be a positive duration, such as "24h"`},
		{"bad full_read", `repo: url: "./examples"
directories: corp: {url: "ldap://dc1", base_dn: "dc=example,dc=com", full_read: "daily"}
`, `config.cue:2:81: directories.corp.full_read: invalid value "daily" (does not satisfy time.Duration)`},
		{"missing repo url", `directories: {}` + "\n",
			"config.cue:1:1: repo.url: field is required"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "config.cue")
			if err := os.WriteFile(p, []byte(tc.src), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := LoadConfig(p)
			if err == nil {
				t.Fatalf("no error; want %q", tc.want)
			}
			var list ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("error is %T, want ErrorList: %v", err, err)
			}
			out := strings.ReplaceAll(err.Error(), p, "config.cue")
			for _, line := range strings.Split(out, "\n") {
				if line == tc.want {
					return
				}
			}
			t.Errorf("want line\n  %s\ngot\n  %s", tc.want, strings.ReplaceAll(out, "\n", "\n  "))
		})
	}
}

func TestLoadConfigDefaultsAndSMTP(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "config.cue")
	src := `repo: {url: "https://git.example.com/video/desired.git", path: "state", interval: "5m"}
directories: ad: {url: "ldap://dc1.example.com", start_tls: true, base_dn: "dc=example,dc=com", bind_dn: "cn=roster", bind_password_env: "AD_PASSWORD", timeout: "10s"}
smtp: default: {host: "smtp.example.com", port: 587, security: "starttls", username: "roster", password_env: "SMTP_PASSWORD", from: "Video team <video@example.com>"}
`
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Repo.Interval.Duration != 5*time.Minute || cfg.Repo.Branch != "main" || cfg.Repo.Path != "state" {
		t.Errorf("repo = %+v", cfg.Repo)
	}
	if d := cfg.Directories["ad"]; !d.StartTLS || d.Timeout.Duration != 10*time.Second || d.PageSize != 1000 || d.BindPasswordEnv != "AD_PASSWORD" ||
		d.Sync != SyncAuto || d.FullRead.Duration != 24*time.Hour {
		t.Errorf("directory = %+v", d)
	}
	if s := cfg.SMTP["default"]; s.Port != 587 || s.Security != "starttls" || s.PasswordEnv != "SMTP_PASSWORD" {
		t.Errorf("smtp = %+v", s)
	}
	if cfg.State.DSN != "roster.db" || cfg.Dir != dir {
		t.Errorf("state = %+v, dir = %q", cfg.State, cfg.Dir)
	}
	if _, err := LoadConfig(filepath.Join(dir, "missing.cue")); err == nil || !strings.Contains(err.Error(), "load config") {
		t.Errorf("missing file: %v", err)
	}
}
