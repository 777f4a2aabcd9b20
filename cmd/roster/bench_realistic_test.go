package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/roster-dev/roster/reconcile/directory"
	"github.com/roster-dev/roster/reconcile/directory/ldaptest"
)

// realisticRow is one N of the realistic profile (testdata/bench-realistic: a Pexip-style
// template with emails on, CSV users and invitations), every figure beside ldapsearch's
// paged fetch of the same entries on the same slapd in the same run.
type realisticRow struct {
	N        int `json:"n"`
	CSVUsers int `json:"csv_users"`
	Invites  int `json:"invites"`
	Emails   int `json:"emails_enqueued"`
	Created  int `json:"created"`
	// LoadAvg is /proc/loadavg when the row began: the machine is shared.
	LoadAvg string `json:"load_avg"`
	// LDAPSearch is the faster of two paged fetches, one before roster's commands and one
	// after, so one fetch slowed by other load does not flatter the ratios; both are in
	// LDAPSearchRuns.
	LDAPSearch     measured    `json:"ldapsearch"`
	LDAPSearchRuns [2]measured `json:"ldapsearch_runs"`
	InitialApply   measured    `json:"roster_apply_initial"`
	NoopPlan       measured    `json:"roster_plan_noop"`
	PlanRatio      float64     `json:"noop_plan_over_ldapsearch"`
	ApplyRatio     float64     `json:"initial_apply_over_ldapsearch"`
}

// realisticAttrs are the attributes the realistic template reads (and its key and
// disabled filter), which ldapsearch fetches for the comparison.
var realisticAttrs = []string{"cn", "uid", "telephoneNumber", "mail", "givenName", "sn", "title",
	"departmentNumber", "entryUUID", "employeeType"}

// realisticCounts is how many CSV users and invitations the realistic profile has for n
// people: a twentieth of n (at least 2,000) users, a two-hundredth (100 to 500) invitations.
func realisticCounts(n int) (csvUsers, invites int) {
	return max(2000, n/20), min(500, max(100, n/200))
}

// benchRealistic measures the realistic profile for n people: ldapsearch -E pr=1000, roster's
// initial apply with every email enqueued (--no-send, with --allow-emails and
// --allow-deletions large enough for the safety guard), then the no-op plan. With profDir
// set, the apply and the plan write CPU profiles there (realistic-<n>-apply.pprof,
// realistic-<n>-plan.pprof) and heap profiles at exit (realistic-<n>-apply.heap, …).
func benchRealistic(t *testing.T, bin string, n int, profDir string) realisticRow {
	dir := t.TempDir()
	csvUsers, invites := realisticCounts(n)
	repo := writeRealisticRepo(t, dir, csvUsers, invites)
	ldif := filepath.Join(dir, "people.ldif") // outside the repo: only slapadd reads it
	f, err := os.Create(ldif)
	if err != nil {
		t.Fatal(err)
	}
	if err := directory.GenerateRealisticPeople(f, n, "dc=example,dc=com"); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	srv := ldaptest.Start(t, ldaptest.Options{LDIFFile: ldif})
	row := realisticRow{N: n, CSVUsers: csvUsers, Invites: invites}
	if load, err := os.ReadFile("/proc/loadavg"); err == nil {
		row.LoadAvg = strings.TrimSpace(string(load))
	}
	ldapsearch := func() measured { return ldapsearchPaged(t, srv, realisticAttrs) }
	row.LDAPSearchRuns[0] = ldapsearch()

	cfg := writeConfig(t, dir, repo, fmt.Sprintf("{url: %q, base_dn: %q, bind_dn: %q, bind_password_env: \"BENCH_LDAP_PW\"}",
		srv.URL, srv.BaseDN, srv.AdminDN))
	env := []string{"BENCH_LDAP_PW=" + srv.AdminPassword}
	profile := func(cmd string) []string {
		if profDir == "" {
			return env
		}
		return append(env, fmt.Sprintf("ROSTER_CPUPROFILE=%s/realistic-%d-%s.pprof", profDir, n, cmd),
			fmt.Sprintf("ROSTER_MEMPROFILE=%s/realistic-%d-%s.heap", profDir, n, cmd))
	}
	allow := fmt.Sprint(10*n + 100000)
	// the plan as JSON, then a line on what was applied: the summary is in the first value
	outPath := filepath.Join(dir, "apply.out")
	out, err := os.Create(outPath)
	if err != nil {
		t.Fatal(err)
	}
	row.InitialApply = rosterRunOut(t, bin, cfg, profile("apply"), out, "apply", "--no-send", "--format", "json",
		"--allow-emails", allow, "--allow-deletions", allow)
	out.Close()
	var applied struct {
		Summary struct {
			Create int `json:"create"`
			Emails int `json:"emails"`
		} `json:"summary"`
	}
	if out, err = os.Open(outPath); err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if err := json.NewDecoder(out).Decode(&applied); err != nil {
		t.Fatalf("roster apply --format json: %v", err)
	}
	row.Emails, row.Created = applied.Summary.Emails, applied.Summary.Create
	var dbBytes int64 // the state database after the initial apply (with its WAL, if any)
	for _, suffix := range []string{"", "-wal"} {
		if st, err := os.Stat(filepath.Join(dir, "roster.db"+suffix)); err == nil {
			dbBytes += st.Size()
		}
	}
	t.Logf("realistic N=%d: state database after the initial apply: %.1f MiB", n, float64(dbBytes)/(1<<20))
	// Every person with mail who is not disabled gets a VMR, a device and an activation
	// email; every invitee an invitation: at least that many emails must be enqueued.
	if want := realisticMinEmails(n) + invites; row.Emails < want {
		t.Fatalf("N=%d: roster apply enqueued %d emails, want at least %d", n, row.Emails, want)
	}
	// exit 2 (changes) fails measure: a no-op must be a no-op
	row.NoopPlan = rosterRunOut(t, bin, cfg, profile("plan"), nil, "plan", "--detailed-exitcode")
	row.LDAPSearchRuns[1] = ldapsearch()
	row.LDAPSearch = row.LDAPSearchRuns[0]
	if row.LDAPSearchRuns[1].Seconds < row.LDAPSearch.Seconds {
		row.LDAPSearch = row.LDAPSearchRuns[1]
	}
	row.PlanRatio = row.NoopPlan.Seconds / row.LDAPSearch.Seconds
	row.ApplyRatio = row.InitialApply.Seconds / row.LDAPSearch.Seconds
	t.Logf("realistic N=%d (+%d CSV users, %d invites; load %s): ldapsearch %.2fs / %.2fs, apply %.2fs (%.2fs user, %.2fs sys, %.0f MiB, %d created, %d emails), no-op plan %.2fs (%.2fs user, %.0f MiB)",
		n, csvUsers, invites, row.LoadAvg, row.LDAPSearchRuns[0].Seconds, row.LDAPSearchRuns[1].Seconds, row.InitialApply.Seconds,
		row.InitialApply.UserSeconds, row.InitialApply.SysSeconds, row.InitialApply.RSSMiB, row.Created, row.Emails,
		row.NoopPlan.Seconds, row.NoopPlan.UserSeconds, row.NoopPlan.RSSMiB)
	return row
}

// realisticMinEmails counts GenerateRealisticPeople's people with mail who are not
// disabled (i%50 not 17 or 49) times three: a VMR, a device and an activation email each.
func realisticMinEmails(n int) int {
	people := 0
	for i := 0; i < n; i++ {
		if i%50 != 17 && i%50 != 49 {
			people++
		}
	}
	return 3 * people
}

// printRealistic prints the realistic rows and their growth from the first N to the last.
func printRealistic(rows []realisticRow) map[string]float64 {
	fmt.Printf("\nrealistic profile (Pexip-style template, emails on, CSV users and invitations)\n")
	fmt.Printf("%-8s %7s %7s %8s %12s %14s %10s %14s %10s %10s %10s\n", "N", "CSV", "invites", "emails",
		"ldapsearch s", "apply init s", "apply MiB", "plan no-op s", "plan MiB", "plan/ldap", "apply/ldap")
	for _, r := range rows {
		fmt.Printf("%-8d %7d %7d %8d %12.2f %14.2f %10.0f %14.2f %10.0f %10.2f %10.2f\n", r.N, r.CSVUsers, r.Invites, r.Emails,
			r.LDAPSearch.Seconds, r.InitialApply.Seconds, r.InitialApply.RSSMiB, r.NoopPlan.Seconds, r.NoopPlan.RSSMiB,
			r.PlanRatio, r.ApplyRatio)
	}
	if len(rows) < 2 {
		return nil
	}
	first, last := rows[0], rows[len(rows)-1]
	g := map[string]float64{"from_n": float64(first.N), "to_n": float64(last.N),
		"plan_ratio":  last.PlanRatio / first.PlanRatio,
		"apply_ratio": last.ApplyRatio / first.ApplyRatio,
		"apply_rss":   last.InitialApply.RSSMiB / first.InitialApply.RSSMiB,
		"plan_rss":    last.NoopPlan.RSSMiB / first.NoopPlan.RSSMiB}
	fmt.Printf("realistic growth %d → %d: plan ratio %.2f → %.2f (%.2f×), apply ratio %.2f → %.2f (%.2f×), apply RSS ×%.2f, plan RSS ×%.2f\n",
		first.N, last.N, first.PlanRatio, last.PlanRatio, g["plan_ratio"], first.ApplyRatio, last.ApplyRatio, g["apply_ratio"],
		g["apply_rss"], g["plan_rss"])
	return g
}

// ldapsearchPaged measures ldapsearch's paged fetch (-E pr=1000) of attrs of every person
// in srv, output discarded.
func ldapsearchPaged(t *testing.T, srv *ldaptest.Server, attrs []string) measured {
	t.Helper()
	search := exec.Command("ldapsearch", append([]string{"-LLL", "-x", "-H", srv.URL, "-D", srv.AdminDN, "-w", srv.AdminPassword,
		"-b", "ou=people," + srv.BaseDN, "-E", "pr=1000/noprompt", "(objectClass=inetOrgPerson)"}, attrs...)...)
	return measure(t, search) // a nil Stdout is /dev/null
}

// writeRealisticRepo copies testdata/bench-realistic to dir/repo (and examples/emails to its
// emails/) and adds csvUsers rows in
// users/local.csv and invites invitations in invites/partners.csv; it returns the repo path.
func writeRealisticRepo(t *testing.T, dir string, csvUsers, invites int) string {
	t.Helper()
	repo := filepath.Join(dir, "repo")
	if err := os.CopyFS(repo, os.DirFS("../../testdata/bench-realistic")); err != nil {
		t.Fatal(err)
	}
	// the email bodies are examples/' (HTML for VMRs, text for devices, activations, invitations)
	if err := os.CopyFS(filepath.Join(repo, "emails"), os.DirFS("../../examples/emails")); err != nil {
		t.Fatal(err)
	}
	writeLines(t, filepath.Join(repo, "users", "local.csv"), csvUsers,
		"USERID,ACTIVE,FIRSTNAME,LASTNAME,EMAIL,LANGUAGE,HOSTPRIVILEGE,TIMEZONE,DIVISION,DEPARTMENT,PROJECT,OTHER,CUSTOM5,CUSTOM6,CUSTOM7,CUSTOM8,CUSTOM9,CUSTOM10",
		localUserRow)
	writeLines(t, filepath.Join(repo, "invites", "partners.csv"), invites, "name;email;username", inviteRow)
	return repo
}

// localUserRow is CSV user i: names with accents and a quoted comma now and then, a
// language and its time zone, a DIVISION code (blank for some, so the default applies)
// and a project; every 25th is inactive.
func localUserRow(i int) string {
	locale := [][2]string{{"en-us", "London"}, {"es", "Madrid"}, {"fr", "Paris"}, {"jp", "Tokyo"},
		{"de", "Berlin"}, {"pt-br", "Brasilia"}, {"zh-cn", "Beijing"}, {"nl", "Amsterdam"}}[i%8]
	first := []string{"Maria", "Jean", "Yuki", "Lukas", "Ana", "Wei", "Sven", "Zoë", "Ólafur", "Ngozi"}[i%10]
	last := []string{"Lopez", "Dupont", "Sato", "Müller", "Costa", "Zhang", "Berg", "Nørgaard", "Þórsson", `"Smith, Jr"`}[(i/10)%10]
	active := "Y"
	if i%25 == 24 {
		active = "N"
	}
	div := []string{"ENG", "SALES", "OPS", "", "FIN", "HR"}[i%6]
	project := []string{"", "Atlas", `"Atlas, phase 2"`, ""}[i%4]
	return fmt.Sprintf(",%s,%s,%s,local.%d@example.org,%s,HOST,%s,%s,,%s,,,,,,,", active, first, last, i, locale[0], locale[1], div, project)
}

// inviteRow is invitation i (usernames' local parts are at least 6 characters).
func inviteRow(i int) string {
	name := []string{"John Doe", "Élodie Martin", "Søren Kierkegaard", "Ayşe Yıldız"}[i%4]
	return fmt.Sprintf("%s;guest%04d@partner.example;partner.guest%04d@partner.example", name, i, i)
}

// writeLines writes header and then row(0..n-1), one a line, to path.
func writeLines(t *testing.T, path string, n int, header string, row func(int) string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	w.WriteString(header + "\n")
	for i := 0; i < n; i++ {
		w.WriteString(row(i) + "\n")
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// rosterRunOut measures `roster CMD --config cfg ARGS...` with stdout to out (nil discards it).
func rosterRunOut(t *testing.T, bin, cfg string, env []string, out io.Writer, cmd string, args ...string) measured {
	t.Helper()
	c := exec.Command(bin, append([]string{cmd, "--config", cfg}, args...)...)
	c.Env = append(append(os.Environ(), "ROSTER_SECRET_KEY=bench"), env...)
	if out != nil { // an *os.File is handed to the process as it is, without a copying goroutine
		c.Stdout = out
	}
	return measure(t, c)
}

// TestRealisticProfile plans the realistic profile for a few hundred people (read from an
// LDIF file) in-process, so the bench's repo stays valid: every person with mail who is
// not disabled must get a VMR, a device and a user, and emails for each; the people
// without mail a no_email warning; and nothing may render out of range.
func TestRealisticProfile(t *testing.T) {
	const n = 500
	csvUsers, invites := 40, 12
	dir := t.TempDir()
	repo := writeRealisticRepo(t, dir, csvUsers, invites)
	f, err := os.Create(filepath.Join(repo, "directory.ldif"))
	if err != nil {
		t.Fatal(err)
	}
	if err := directory.GenerateRealisticPeople(f, n, "dc=example,dc=com"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	w := &workspace{t: t, dir: dir, repo: repo, cfg: writeConfig(t, dir, repo, ldifDirectory)}
	t.Setenv("ROSTER_SECRET_KEY", "realistic")
	out, errs, code := w.run("plan", "--format", "json", "--detailed-exitcode")
	if code != 2 {
		t.Fatalf("plan: exit %d, want 2 (changes)\n%s", code, errs)
	}
	var plan struct {
		Summary struct {
			Create int `json:"create"`
		} `json:"summary"`
		Changes []struct {
			Kind string `json:"kind"`
		} `json:"changes"`
		Emails []struct {
			Kind string `json:"kind"`
		} `json:"emails"`
		Warnings []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"warnings"`
	}
	if err := json.Unmarshal([]byte(out), &plan); err != nil {
		t.Fatal(err)
	}
	active := realisticMinEmails(n) / 3
	kinds, emails, warnings := map[string]int{}, map[string]int{}, map[string]int{}
	for _, c := range plan.Changes {
		kinds[c.Kind]++
	}
	for _, e := range plan.Emails {
		emails[e.Kind]++
	}
	for _, w := range plan.Warnings {
		warnings[w.Code]++
		if w.Code != "no_email" {
			t.Errorf("unexpected warning %s: %s", w.Code, w.Message)
		}
	}
	noMail := n / 50 // i%50 == 17
	for _, c := range []struct {
		what      string
		got, want int
	}{
		{"VMRs", kinds["vmr"], n},                     // disabled accounts keep their VMR
		{"devices", kinds["device"], active + noMail}, // not sync_if_account_disabled
		{"users", kinds["user"], active + csvUsers},   // a disabled person's user is not created
		{"invites", kinds["invite"], invites},
		{"VMR emails", emails["vmr"], n - noMail},
		{"device emails", emails["device"], active},
		{"invitation emails", emails["invite"], invites},
		{"no_email warnings", warnings["no_email"], noMail},
	} {
		if c.got != c.want {
			t.Errorf("%s: %d, want %d", c.what, c.got, c.want)
		}
	}
	if emails["activation"] < active {
		t.Errorf("activation emails: %d, want at least %d", emails["activation"], active)
	}
}
