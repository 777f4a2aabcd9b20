package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
}

type benchRow struct {
	N            int      `json:"n"`
	LDAPSearch   measured `json:"ldapsearch"`
	NoopPlan     measured `json:"roster_plan_noop"`
	InitialApply measured `json:"roster_apply_initial"`
	PlanRatio    float64  `json:"noop_plan_over_ldapsearch"`
	ApplyRatio   float64  `json:"initial_apply_over_ldapsearch"`
}

func measure(t *testing.T, cmd *exec.Cmd) measured {
	t.Helper()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, stderr.String())
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return measured{Seconds: time.Since(start).Seconds(), RSSMiB: float64(ru.Maxrss) / 1024}
}

// TestEndToEndBench is `make bench`'s side-by-side run (skipped unless ROSTER_BENCH=1): for
// each N it slapadds N generated people into a test slapd and measures, in the same run,
// ldapsearch's paged fetch of the same entries and attributes, roster's initial apply and
// its no-op plan (wall time and peak RSS of each process), then prints the ratios and
// writes them to $ROSTER_BENCH_OUT (default bench-results/e2e.json).
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
	bin := filepath.Join(t.TempDir(), "roster")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build roster: %v\n%s", err, out)
	}
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
	email := emailBench(t)
	fmt.Printf("email delivery to an in-process go-smtp sink: roster %.0f msgs/s, bare go-smtp loop %.0f msgs/s, ratio %.2f\n",
		email["roster_msgs_per_s"], email["bare_msgs_per_s"], email["ratio"])
	out := os.Getenv("ROSTER_BENCH_OUT")
	if out == "" {
		out = "../../bench-results/e2e.json"
	}
	os.MkdirAll(filepath.Dir(out), 0o755)
	data, _ := json.MarshalIndent(map[string]any{"date": time.Now().UTC().Format(time.RFC3339), "rows": rows,
		"email_delivery": email}, "", "  ")
	if err := os.WriteFile(out, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func benchOne(t *testing.T, bin string, n int) benchRow {
	dir := t.TempDir()
	ldif := filepath.Join(dir, "people.ldif")
	f, err := os.Create(ldif)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	if err := directory.GeneratePeople(w, n, "dc=example,dc=com"); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	f.Close()
	srv := ldaptest.Start(t, ldaptest.Options{LDIFFile: ldif})
	row := benchRow{N: n}
	attrs := []string{"cn", "uid", "telephoneNumber", "mail", "givenName", "sn", "entryUUID", "employeeType"}
	search := exec.Command("ldapsearch", append([]string{"-LLL", "-x", "-H", srv.URL, "-D", srv.AdminDN, "-w", srv.AdminPassword,
		"-b", "ou=people," + srv.BaseDN, "-E", "pr=1000/noprompt", "(objectClass=inetOrgPerson)"}, attrs...)...)
	devnull, _ := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	defer devnull.Close()
	search.Stdout = devnull
	row.LDAPSearch = measure(t, search)

	repo := filepath.Join(dir, "repo")
	os.MkdirAll(filepath.Join(repo, "templates"), 0o755)
	os.WriteFile(filepath.Join(repo, "settings.yaml"), []byte("auto_activation_emails: false\n"), 0o644)
	tmpl, err := os.ReadFile("../../testdata/bench-template.yaml") // shared with reconcile's benchmarks
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(repo, "templates", "staff.yaml"), tmpl, 0o644)
	cfg := filepath.Join(dir, "config.cue")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`repo: {url: %q}
state: {dsn: %q}
directories: corp: {url: %q, base_dn: %q, bind_dn: %q, bind_password_env: "BENCH_LDAP_PW"}
mail_dir: %q
`, repo, filepath.Join(dir, "roster.db"), srv.URL, srv.BaseDN, srv.AdminDN, filepath.Join(dir, "outbox"))), 0o644)
	env := append(os.Environ(), "BENCH_LDAP_PW="+srv.AdminPassword, "ROSTER_SECRET_KEY=bench")
	apply := exec.Command(bin, "apply", "--config", cfg, "--no-send", "--format", "json")
	apply.Env, apply.Stdout = env, devnull
	row.InitialApply = measure(t, apply)
	plan := exec.Command(bin, "plan", "--config", cfg, "--detailed-exitcode")
	plan.Env, plan.Stdout = env, devnull
	row.NoopPlan = measure(t, plan) // exit 2 (changes) would fail measure: a no-op must be a no-op
	row.PlanRatio = row.NoopPlan.Seconds / row.LDAPSearch.Seconds
	row.ApplyRatio = row.InitialApply.Seconds / row.LDAPSearch.Seconds
	t.Logf("N=%d: ldapsearch %.2fs, apply %.2fs (%.0f MiB), no-op plan %.2fs (%.0f MiB)", n, row.LDAPSearch.Seconds,
		row.InitialApply.Seconds, row.InitialApply.RSSMiB, row.NoopPlan.Seconds, row.NoopPlan.RSSMiB)
	return row
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
