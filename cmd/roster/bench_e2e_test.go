package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/roster-dev/roster/reconcile/directory"
	"github.com/roster-dev/roster/reconcile/directory/ldaptest"
)

// measured is one command's wall time and peak resident memory.
type measured struct {
	Seconds float64 `json:"seconds"`
	RSSMiB  float64 `json:"peak_rss_mib"`
	// UserSeconds and SysSeconds are the process's CPU time: on a shared machine wall
	// time varies with the load, CPU time much less.
	UserSeconds float64 `json:"user_seconds"`
	SysSeconds  float64 `json:"sys_seconds"`
}

type benchRow struct {
	N            int      `json:"n"`
	LDAPSearch   measured `json:"ldapsearch"`
	NoopPlan     measured `json:"roster_plan_noop"`
	InitialApply measured `json:"roster_apply_initial"`
	PlanRatio    float64  `json:"noop_plan_over_ldapsearch"`
	ApplyRatio   float64  `json:"initial_apply_over_ldapsearch"`
	// LDIF is the same apply + no-op plan with the same N people read from an LDIF file in
	// the repo instead of the slapd (issue #4's input).
	LDIF applyPlan `json:"ldif"`
}

// applyPlan is roster's initial apply and the no-op plan after it on one repo.
type applyPlan struct {
	InitialApply measured `json:"roster_apply_initial"`
	NoopPlan     measured `json:"roster_plan_noop"`
}

// mixedRow is issue #7's input: Directory people from an LDIF file (a sync_users template)
// plus CSV local users in users/local.csv. Validate loads and checks the same repo (the CSV
// included), so PlanOverValidate is the no-op plan's time beyond reading the inputs.
type mixedRow struct {
	Directory        int      `json:"directory_people"`
	CSV              int      `json:"csv_users"`
	InitialApply     measured `json:"roster_apply_initial"`
	Validate         measured `json:"roster_validate"`
	NoopPlan         measured `json:"roster_plan_noop"`
	PlanOverValidate float64  `json:"plan_minus_validate_seconds"`
}

// measure runs cmd and measures its wall time, CPU and peak RSS.
//
// The peak RSS the kernel reports for a child (ru_maxrss) starts from this process's own:
// Go starts it with clone(CLONE_VM), sharing this process's memory until the exec, and the
// high-water mark survives the exec. A child started after the test decoded a large plan
// or generated 400,000 people so reported the test's peak, not its own (seen: a 90 MiB
// no-op plan measured as 250 MiB). Returning freed memory and resetting this process's
// high-water mark (clear_refs 5, Linux 4.0+) first leaves a few MiB of the test's in it.
func measure(t *testing.T, cmd *exec.Cmd) measured {
	t.Helper()
	debug.FreeOSMemory()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		t.Logf("peak RSS figures include the test's own: %v", err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, stderr.String())
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return measured{Seconds: time.Since(start).Seconds(), RSSMiB: float64(ru.Maxrss) / 1024,
		UserSeconds: time.Duration(ru.Utime.Nano()).Seconds(), SysSeconds: time.Duration(ru.Stime.Nano()).Seconds()}
}

// TestEndToEndBench is `make bench`'s side-by-side run (skipped unless ROSTER_BENCH=1): for
// each N in $ROSTER_BENCH_SIZES (default 50000,400000) it slapadds N generated people into a
// test slapd and measures, in the same run, ldapsearch's paged fetch of the same entries and
// attributes, roster's initial apply and its no-op plan (wall time and peak RSS of each
// process), then the same apply and plan with the N people read from an LDIF file in the
// repo. Then one mixed run of $ROSTER_BENCH_MIXED users (default 400000, 0 skips): half
// directory people from an LDIF file, half CSV users; apply, validate, no-op plan. That is
// the simple profile. The realistic profile (benchRealistic: a Pexip-style template with
// emails on, CSV users and invitations) runs for the same sizes after it and lands under
// the "realistic" key. $ROSTER_BENCH_PROFILES picks them (default "simple,realistic");
// $ROSTER_BENCH_PROFILE_DIR, when set, receives CPU profiles of the realistic apply and
// plan. It prints the figures and writes them to $ROSTER_BENCH_OUT (default
// bench-results/e2e.json).
func TestEndToEndBench(t *testing.T) {
	if os.Getenv("ROSTER_BENCH") != "1" {
		t.Skip("set ROSTER_BENCH=1 (make bench) to run the end-to-end benchmark")
	}
	sizes := []int{50000, 400000}
	if s := os.Getenv("ROSTER_BENCH_SIZES"); s != "" {
		sizes = nil
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil {
				t.Fatalf("ROSTER_BENCH_SIZES: %v", err)
			}
			sizes = append(sizes, n)
		}
	}
	mixedN := 400000
	if s := os.Getenv("ROSTER_BENCH_MIXED"); s != "" {
		var err error
		if mixedN, err = strconv.Atoi(strings.TrimSpace(s)); err != nil {
			t.Fatalf("ROSTER_BENCH_MIXED: %v", err)
		}
	}
	profiles := map[string]bool{"simple": true, "realistic": true}
	if s := os.Getenv("ROSTER_BENCH_PROFILES"); s != "" {
		profiles = map[string]bool{}
		for _, p := range strings.Split(s, ",") {
			p = strings.TrimSpace(p)
			if p != "simple" && p != "realistic" {
				t.Fatalf("ROSTER_BENCH_PROFILES: unknown profile %q (simple, realistic)", p)
			}
			profiles[p] = true
		}
	}
	bin := filepath.Join(t.TempDir(), "roster")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build roster: %v\n%s", err, out)
	}
	results := map[string]any{"date": time.Now().UTC().Format(time.RFC3339)}
	if profiles["simple"] {
		benchSimple(t, bin, sizes, mixedN, results)
	}
	if profiles["realistic"] {
		var rows []realisticRow
		for _, n := range sizes {
			rows = append(rows, benchRealistic(t, bin, n, os.Getenv("ROSTER_BENCH_PROFILE_DIR")))
		}
		growth := printRealistic(rows)
		results["realistic"] = map[string]any{"rows": rows, "growth": growth}
	}
	writeBenchJSON(t, "ROSTER_BENCH_OUT", "e2e.json", results)
}

// writeBenchJSON writes v as indented JSON to the file $env names, else to
// bench-results/name, and returns the path.
func writeBenchJSON(t *testing.T, env, name string, v any) string {
	t.Helper()
	out := os.Getenv(env)
	if out == "" {
		out = filepath.Join("..", "..", "bench-results", name)
	}
	os.MkdirAll(filepath.Dir(out), 0o755)
	data, _ := json.MarshalIndent(v, "", "  ")
	if err := os.WriteFile(out, data, 0o644); err != nil {
		t.Error(err)
	}
	return out
}

// benchSimple is the simple profile (testdata/bench-template.yaml, no emails): the rows for
// sizes from the slapd and from an LDIF file, the mixed run of mixedN users (0 skips) and
// the email delivery benchmark; it adds them to results.
func benchSimple(t *testing.T, bin string, sizes []int, mixedN int, results map[string]any) {
	var rows []benchRow
	for _, n := range sizes {
		rows = append(rows, benchOne(t, bin, n))
	}
	fmt.Printf("\n%-8s %12s %14s %14s %10s %10s %9s\n", "N", "ldapsearch s", "plan no-op s", "apply init s", "plan/ldap", "apply/ldap", "RSS MiB")
	for _, r := range rows {
		fmt.Printf("%-8d %12.2f %14.2f %14.2f %10.2f %10.2f %9.0f\n", r.N, r.LDAPSearch.Seconds, r.NoopPlan.Seconds,
			r.InitialApply.Seconds, r.PlanRatio, r.ApplyRatio, max(r.NoopPlan.RSSMiB, r.InitialApply.RSSMiB))
	}
	if len(rows) > 1 {
		first, last := rows[0], rows[len(rows)-1]
		fmt.Printf("growth: plan ratio %.2f → %.2f (%.2f×), apply ratio %.2f → %.2f (%.2f×)\n",
			first.PlanRatio, last.PlanRatio, last.PlanRatio/first.PlanRatio, first.ApplyRatio, last.ApplyRatio, last.ApplyRatio/first.ApplyRatio)
	}
	fmt.Printf("\nLDIF directory (same people and template, read from directory.ldif in the repo)\n")
	fmt.Printf("%-8s %12s %13s %12s %12s\n", "N", "apply init s", "apply RSS MiB", "plan no-op s", "plan RSS MiB")
	for _, r := range rows {
		fmt.Printf("%-8d %12.2f %13.0f %12.2f %12.0f\n", r.N, r.LDIF.InitialApply.Seconds, r.LDIF.InitialApply.RSSMiB,
			r.LDIF.NoopPlan.Seconds, r.LDIF.NoopPlan.RSSMiB)
	}
	var ldifGrowth map[string]float64
	if len(rows) > 1 {
		first, last := rows[0], rows[len(rows)-1]
		ldifGrowth = map[string]float64{"from_n": float64(first.N), "to_n": float64(last.N),
			"n":             float64(last.N) / float64(first.N),
			"apply_seconds": last.LDIF.InitialApply.Seconds / first.LDIF.InitialApply.Seconds,
			"plan_seconds":  last.LDIF.NoopPlan.Seconds / first.LDIF.NoopPlan.Seconds}
		ldifGrowth["apply_per_entry"] = ldifGrowth["apply_seconds"] / ldifGrowth["n"]
		ldifGrowth["plan_per_entry"] = ldifGrowth["plan_seconds"] / ldifGrowth["n"]
		fmt.Printf("LDIF growth %d → %d (N ×%.2f): apply time ×%.2f (per entry ×%.2f), plan time ×%.2f (per entry ×%.2f)\n",
			first.N, last.N, ldifGrowth["n"], ldifGrowth["apply_seconds"], ldifGrowth["apply_per_entry"],
			ldifGrowth["plan_seconds"], ldifGrowth["plan_per_entry"])
	}
	var mixed *mixedRow
	if mixedN > 0 {
		m := benchMixed(t, bin, mixedN/2, mixedN-mixedN/2)
		mixed = &m
		fmt.Printf("\nmixed: %d directory people (LDIF, sync_users) + %d CSV users\n", m.Directory, m.CSV)
		fmt.Printf("%-14s %8s %8s\n", "", "s", "RSS MiB")
		for _, c := range []struct {
			name string
			m    measured
		}{{"apply init", m.InitialApply}, {"validate", m.Validate}, {"plan no-op", m.NoopPlan}} {
			fmt.Printf("%-14s %8.2f %8.0f\n", c.name, c.m.Seconds, c.m.RSSMiB)
		}
		fmt.Printf("%-14s %8.2f\n", "plan−validate", m.PlanOverValidate)
	}
	email := emailBench(t)
	fmt.Printf("email delivery to an in-process go-smtp sink: roster %.0f msgs/s, bare go-smtp loop %.0f msgs/s, ratio %.2f\n",
		email["roster_msgs_per_s"], email["bare_msgs_per_s"], email["ratio"])
	results["rows"], results["ldif_growth"], results["mixed"], results["email_delivery"] = rows, ldifGrowth, mixed, email
}

func benchOne(t *testing.T, bin string, n int) benchRow {
	dir := t.TempDir()
	tmpl, err := os.ReadFile("../../testdata/bench-template.yaml") // shared with reconcile's benchmarks
	if err != nil {
		t.Fatal(err)
	}
	// The LDIF repo's directory.ldif is also what slapadd loads into the test slapd.
	ldifRepo := writeRepo(t, filepath.Join(dir, "ldif"), tmpl)
	ldif := filepath.Join(ldifRepo, "directory.ldif")
	writePeople(t, ldif, n)
	srv := ldaptest.Start(t, ldaptest.Options{LDIFFile: ldif})
	row := benchRow{N: n}
	attrs := []string{"cn", "uid", "telephoneNumber", "mail", "givenName", "sn", "entryUUID", "employeeType"}
	row.LDAPSearch = ldapsearchPaged(t, srv, attrs)

	ldapRepo := writeRepo(t, filepath.Join(dir, "ldap"), tmpl)
	ldap := applyAndPlan(t, bin, writeConfig(t, filepath.Join(dir, "ldap"), ldapRepo,
		fmt.Sprintf("{url: %q, base_dn: %q, bind_dn: %q, bind_password_env: \"BENCH_LDAP_PW\"}", srv.URL, srv.BaseDN, srv.AdminDN)),
		"BENCH_LDAP_PW="+srv.AdminPassword)
	row.InitialApply, row.NoopPlan = ldap.InitialApply, ldap.NoopPlan
	row.PlanRatio = row.NoopPlan.Seconds / row.LDAPSearch.Seconds
	row.ApplyRatio = row.InitialApply.Seconds / row.LDAPSearch.Seconds
	t.Logf("N=%d: ldapsearch %.2fs, apply %.2fs (%.0f MiB), no-op plan %.2fs (%.0f MiB)", n, row.LDAPSearch.Seconds,
		row.InitialApply.Seconds, row.InitialApply.RSSMiB, row.NoopPlan.Seconds, row.NoopPlan.RSSMiB)

	row.LDIF = applyAndPlan(t, bin, writeConfig(t, filepath.Join(dir, "ldif"), ldifRepo, ldifDirectory))
	t.Logf("N=%d LDIF: apply %.2fs (%.0f MiB), no-op plan %.2fs (%.0f MiB)", n, row.LDIF.InitialApply.Seconds,
		row.LDIF.InitialApply.RSSMiB, row.LDIF.NoopPlan.Seconds, row.LDIF.NoopPlan.RSSMiB)
	return row
}

// mixedTemplate is the mixed run's template: a WebEx user per directory person, nothing else.
const mixedTemplate = `name: staff
source: corp
user_search_dn: ou=people
user_filter: (objectClass=inetOrgPerson)
key_attribute: entryUUID
disabled_filter: (employeeType=disabled)
sync_users: true
user:
  first_name: "{{givenName}}"
  last_name: "{{sn}}"
  email: "{{mail}}"
  language: en-us
  time_zone: London
  license: paid
`

// benchMixed measures issue #7's input: people directory people (directory.ldif) and csv
// local users (users/local.csv, emails local<i>@example.org, never the directory's
// u<i>@example.com): initial apply, then validate and the no-op plan.
func benchMixed(t *testing.T, bin string, people, csv int) mixedRow {
	dir := t.TempDir()
	repo := writeRepo(t, dir, []byte(mixedTemplate))
	writePeople(t, filepath.Join(repo, "directory.ldif"), people)
	os.MkdirAll(filepath.Join(repo, "users"), 0o755)
	f, err := os.Create(filepath.Join(repo, "users", "local.csv"))
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	w.WriteString("USERID,ACTIVE,FIRSTNAME,LASTNAME,EMAIL,LANGUAGE,HOSTPRIVILEGE,TIMEZONE,DIVISION,DEPARTMENT,PROJECT,OTHER,CUSTOM5,CUSTOM6,CUSTOM7,CUSTOM8,CUSTOM9,CUSTOM10\n")
	for i := 0; i < csv; i++ {
		fmt.Fprintf(w, ",Y,Local%d,User%d,local%d@example.org,en-us,HOST,London,,,,,,,,,,\n", i, i, i)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, dir, repo, ldifDirectory)
	ap := applyAndPlan(t, bin, cfg)
	row := mixedRow{Directory: people, CSV: csv, InitialApply: ap.InitialApply, NoopPlan: ap.NoopPlan}
	validate := exec.Command(bin, "validate", "--config", cfg)
	var out strings.Builder
	validate.Env, validate.Stdout = append(os.Environ(), "ROSTER_SECRET_KEY=bench"), &out
	row.Validate = measure(t, validate)
	if want := fmt.Sprintf(" %d CSV users,", csv); !strings.Contains(out.String(), want) {
		t.Fatalf("roster validate: want%s in its summary, got %q", want, out.String())
	}
	row.PlanOverValidate = row.NoopPlan.Seconds - row.Validate.Seconds
	t.Logf("mixed %d+%d: apply %.2fs (%.0f MiB), validate %.2fs (%.0f MiB), no-op plan %.2fs (%.0f MiB)", people, csv,
		row.InitialApply.Seconds, row.InitialApply.RSSMiB, row.Validate.Seconds, row.Validate.RSSMiB,
		row.NoopPlan.Seconds, row.NoopPlan.RSSMiB)
	return row
}

// ldifDirectory is config.cue's directory that reads the repo's directory.ldif.
const ldifDirectory = `{ldif: "directory.ldif", base_dn: "dc=example,dc=com"}`

// writePeople writes directory.GeneratePeople's n people (base dc=example,dc=com) to path.
func writePeople(t *testing.T, path string, n int) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := directory.GeneratePeople(f, n, "dc=example,dc=com"); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// writeRepo creates dir/repo with settings.yaml and templates/staff.yaml and returns its path.
func writeRepo(t *testing.T, dir string, tmpl []byte) string {
	t.Helper()
	repo := filepath.Join(dir, "repo")
	if err := os.MkdirAll(filepath.Join(repo, "templates"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(repo, "settings.yaml"), []byte("auto_activation_emails: false\n"), 0o644)
	if err := os.WriteFile(filepath.Join(repo, "templates", "staff.yaml"), tmpl, 0o644); err != nil {
		t.Fatal(err)
	}
	return repo
}

// writeConfig writes dir/config.cue for repo, a state database and outbox in dir, and
// directories.corp set to corp (a CUE struct); it returns the file's path.
func writeConfig(t *testing.T, dir, repo, corp string) string {
	t.Helper()
	cfg := filepath.Join(dir, "config.cue")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("repo: {url: %q}\nstate: {dsn: %q}\ndirectories: corp: %s\nmail_dir: %q\n",
		repo, filepath.Join(dir, "roster.db"), corp, filepath.Join(dir, "outbox"))), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// applyAndPlan measures `roster apply` (initial) and then the no-op `roster plan` on cfg.
func applyAndPlan(t *testing.T, bin, cfg string, env ...string) applyPlan {
	t.Helper()
	var r applyPlan
	r.InitialApply = rosterRun(t, bin, cfg, env, "apply", "--no-send", "--format", "json")
	// exit 2 (changes) fails measure: a no-op must be a no-op
	r.NoopPlan = rosterRun(t, bin, cfg, env, "plan", "--detailed-exitcode")
	return r
}

// rosterRun measures `roster CMD --config cfg ARGS...` with stdout discarded.
func rosterRun(t *testing.T, bin, cfg string, env []string, cmd string, args ...string) measured {
	t.Helper()
	return rosterRunOut(t, bin, cfg, env, nil, cmd, args...)
}

// emailBench runs notify's BenchmarkDeliver10k (10,000 outbox messages to an in-process
// go-smtp sink, and a bare go-smtp client loop sending the same bytes) and returns its metrics.
func emailBench(t *testing.T) map[string]float64 {
	out, err := exec.Command("go", "test", "../../notify", "-run", "^$", "-bench", "Deliver10k", "-benchtime", "3x").CombinedOutput()
	if err != nil {
		t.Fatalf("email benchmark: %v\n%s", err, out)
	}
	m := map[string]float64{}
	for _, line := range strings.Split(string(out), "\n") {
		if !strings.HasPrefix(line, "BenchmarkDeliver10k") {
			continue
		}
		f := strings.Fields(line)
		for i := 1; i+1 < len(f); i++ {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			switch f[i+1] {
			case "roster-msgs/s":
				m["roster_msgs_per_s"] = v
			case "bare-msgs/s":
				m["bare_msgs_per_s"] = v
			case "ratio":
				m["ratio"] = v
			}
		}
	}
	if m["ratio"] == 0 {
		t.Fatalf("email benchmark printed no ratio:\n%s", out)
	}
	return m
}
