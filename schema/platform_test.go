package schema

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func writeConfig(t *testing.T, src string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.cue")
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const platformBase = `repo: url: "./examples"
directories: corp: {ldif: "directory.ldif", base_dn: "dc=example,dc=com"}
`

func TestPlatformConfigErrors(t *testing.T) {
	pexip := func(fields string) string { return platformBase + "platforms: pexip: {" + fields + "}\n" }
	const ok = `url: "https://pexip.example.com", username: "roster", password_env: "PEXIP_PASSWORD", mode: "push"`
	cases := []struct {
		name, src, want string
	}{
		{"http on a remote host", pexip(`url: "http://pexip.example.com", username: "roster", password_env: "P", mode: "push"`),
			`config.cue:3:20: platforms.pexip.url: "http://pexip.example.com" uses http:// on a non-loopback address: use https:// (the password would cross the network in clear)`},
		{"http on a private address", pexip(`url: "http://10.0.0.5:8080", username: "roster", password_env: "P", mode: "push"`),
			`config.cue:3:20: platforms.pexip.url: "http://10.0.0.5:8080" uses http:// on a non-loopback address: use https:// (the password would cross the network in clear)`},
		{"credentials in the url", pexip(`url: "https://roster:secret@pexip.example.com", username: "roster", password_env: "P", mode: "push"`),
			`config.cue:3:20: platforms.pexip.url: "https://roster:secret@pexip.example.com" must not hold credentials (use username and password_env)`},
		{"api path in the url", pexip(`url: "https://pexip.example.com/api/admin/", username: "roster", password_env: "P", mode: "push"`),
			`config.cue:3:20: platforms.pexip.url: "https://pexip.example.com/api/admin/" must be the node's address only (roster adds /api/admin/configuration/v1/)`},
		{"bad scheme", pexip(`url: "ftp://pexip", username: "roster", password_env: "P", mode: "push"`),
			`config.cue:3:25: platforms.pexip.url: invalid value "ftp://pexip" (out of bound =~"^https?://")`},
		{"rate zero", pexip(ok + `, rate: 0`),
			`config.cue:3:126: platforms.pexip.rate: invalid value 0 (out of bound >0)`},
		{"rate negative", pexip(ok + `, rate: -5`),
			`config.cue:3:126: platforms.pexip.rate: invalid value -5 (out of bound >0)`},
		{"no password_env", pexip(`url: "https://pexip.example.com", username: "roster", mode: "push"`),
			`config.cue:3:19: platforms.pexip.password_env: field is required`},
		{"empty password_env", pexip(`url: "https://pexip.example.com", username: "roster", password_env: "", mode: "push"`),
			`config.cue:3:88: platforms.pexip.password_env: invalid value "" (out of bound !="")`},
		{"unknown mode", pexip(`url: "https://pexip.example.com", username: "roster", password_env: "P", mode: "pull"`),
			`config.cue:3:99: platforms.pexip.mode: "pull" is not one of "policy", "push"`},
		{"push without url", pexip(`username: "roster", password_env: "P", mode: "push"`),
			`config.cue:3:12: platforms.pexip.url: push mode needs the management node's url`},
		{"policy without listen", pexip(`username: "pexip", password_env: "P", mode: "policy"`),
			`config.cue:3:12: platforms.pexip.policy_listen: policy mode needs the host:port the conferencing nodes call`},
		{"policy listen not host:port", pexip(`username: "pexip", password_env: "P", mode: "policy", policy_listen: "8443"`),
			`config.cue:3:74: platforms.pexip.policy_listen: "8443" is not host:port`},
		{"policy plain off loopback", pexip(`username: "pexip", password_env: "P", mode: "policy", policy_listen: "0.0.0.0:8443"`),
			`config.cue:3:74: platforms.pexip.policy_listen: "0.0.0.0:8443" is not a loopback address: give policy_cert_file and policy_key_file (the answers carry PINs and passwords)`},
		{"policy cert without key", pexip(`username: "pexip", password_env: "P", mode: "policy", policy_listen: "0.0.0.0:8443", policy_cert_file: "c.pem"`),
			`config.cue:3:12: platforms.pexip: give both policy_cert_file and policy_key_file, or neither`},
		{"bad policy_unknown", pexip(ok + `, policy_unknown: "drop"`),
			`config.cue:3:136: platforms.pexip.policy_unknown: "drop" is not one of "continue", "reject"`},
		{"unknown platform", platformBase + `platforms: webex: {}` + "\n",
			`config.cue:3:12: platforms.webex: unknown field "webex"`},
		{"bad role", platformBase + `role: "secondary"` + "\n",
			`config.cue:3:7: role: "secondary" is not one of "primary", "replica"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := writeConfig(t, tc.src)
			_, err := LoadConfig(p)
			if lines := errorLines(t, err, p); !slices.Contains(lines, tc.want) {
				t.Errorf("want line\n  %s\ngot\n  %s", tc.want, strings.Join(lines, "\n  "))
			}
		})
	}
}

// errorLines is a config error as lines, with the file's path shortened to config.cue;
// it fails the test unless err is an ErrorList.
func errorLines(t *testing.T, err error, path string) []string {
	t.Helper()
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("error is %T, want ErrorList: %v", err, err)
	}
	return strings.Split(strings.ReplaceAll(err.Error(), path, "config.cue"), "\n")
}

func TestPlatformConfigValid(t *testing.T) {
	cases := []struct {
		name, src string
		want      *PexipConfig
		role      string
	}{
		{"none", platformBase, nil, RolePrimary},
		{"push with defaults", platformBase + `platforms: pexip: {url: "https://pexip.example.com", username: "roster", password_env: "PEXIP_PASSWORD", mode: "push"}` + "\n",
			&PexipConfig{URL: "https://pexip.example.com", Username: "roster", PasswordEnv: "PEXIP_PASSWORD", Mode: PexipPush, Rate: 900, PolicyUnknown: "continue", CheckInterval: day, PushTimeout: quarter}, RolePrimary},
		{"http on loopback", platformBase + `platforms: pexip: {url: "http://127.0.0.1:8081/", username: "r", password_env: "P", mode: "push", rate: 60, ca_file: "/etc/ca.pem"}` + "\n",
			&PexipConfig{URL: "http://127.0.0.1:8081/", Username: "r", PasswordEnv: "P", CAFile: "/etc/ca.pem", Mode: PexipPush, Rate: 60, PolicyUnknown: "continue", CheckInterval: day, PushTimeout: quarter}, RolePrimary},
		{"http on localhost and ipv6 loopback", platformBase + `platforms: pexip: {url: "http://[::1]:8081", username: "r", password_env: "P", mode: "push"}` + "\n",
			&PexipConfig{URL: "http://[::1]:8081", Username: "r", PasswordEnv: "P", Mode: PexipPush, Rate: 900, PolicyUnknown: "continue", CheckInterval: day, PushTimeout: quarter}, RolePrimary},
		{"policy replica", platformBase + `role: "replica"
platforms: pexip: {username: "pexip", password_env: "P", mode: "policy", policy_listen: "0.0.0.0:8443", policy_cert_file: "/etc/roster/policy.pem", policy_key_file: "/etc/roster/policy.key", policy_unknown: "reject"}` + "\n",
			&PexipConfig{Username: "pexip", PasswordEnv: "P", Mode: PexipPolicy, Rate: 900, PolicyListen: "0.0.0.0:8443", PolicyCert: "/etc/roster/policy.pem", PolicyKey: "/etc/roster/policy.key", PolicyUnknown: "reject", CheckInterval: day, PushTimeout: quarter}, RoleReplica},
		{"policy plain on loopback", platformBase + `platforms: pexip: {username: "pexip", password_env: "P", mode: "policy", policy_listen: "127.0.0.1:8443"}` + "\n",
			&PexipConfig{Username: "pexip", PasswordEnv: "P", Mode: PexipPolicy, Rate: 900, PolicyListen: "127.0.0.1:8443", PolicyUnknown: "continue", CheckInterval: day, PushTimeout: quarter}, RolePrimary},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := LoadConfig(writeConfig(t, tc.src))
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Role != tc.role {
				t.Errorf("role = %q, want %q", cfg.Role, tc.role)
			}
			got := cfg.Platforms.Pexip
			if (got == nil) != (tc.want == nil) || got != nil && *got != *tc.want {
				t.Errorf("pexip = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestIsLoopbackHost(t *testing.T) {
	for host, want := range map[string]bool{"localhost": true, "LOCALHOST": true, "127.0.0.1": true, "127.8.9.1": true,
		"::1": true, "10.0.0.1": false, "pexip.example.com": false, "localhost.example.com": false, "": false, "0.0.0.0": false} {
		if got := IsLoopbackHost(host); got != want {
			t.Errorf("IsLoopbackHost(%q) = %v, want %v", host, got, want)
		}
	}
}

// The shipped deployment example loads and names a push platform; the embedded default
// (the repository's config.cue) names none, so SQLite stays the only record.
func TestShippedConfigsPlatforms(t *testing.T) {
	cases := []struct {
		path string
		want *PexipConfig
	}{
		{"../examples/deploy/config.cue", &PexipConfig{URL: "https://pexip-mgr.example.com", Username: "roster",
			PasswordEnv: "PEXIP_PASSWORD", CAFile: "/etc/roster/pexip-ca.pem", Mode: PexipPush, Rate: 900, PolicyUnknown: "continue", CheckInterval: day, PushTimeout: quarter}},
		{"../config.cue", nil},
	}
	for _, tc := range cases {
		cfg, err := LoadConfig(tc.path)
		if err != nil {
			t.Fatalf("%s: %v", tc.path, err)
		}
		got := cfg.Platforms.Pexip
		if (got == nil) != (tc.want == nil) || got != nil && *got != *tc.want {
			t.Errorf("%s: pexip = %+v, want %+v", tc.path, got, tc.want)
		}
		if cfg.Role != RolePrimary {
			t.Errorf("%s: role = %q", tc.path, cfg.Role)
		}
	}
}

// day is check_interval's default.
var day = Duration{24 * time.Hour}

// quarter is push_timeout's default, 15 minutes.
var quarter = Duration{15 * time.Minute}
