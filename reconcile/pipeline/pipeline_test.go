package pipeline_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/roster-dev/roster/reconcile"
	"github.com/roster-dev/roster/reconcile/pipeline"
	"github.com/roster-dev/roster/reconcile/source"
	"github.com/roster-dev/roster/schema"
	"github.com/roster-dev/roster/state"
)

// fixture is a pipeline over a copy of examples/ (its LDIF directory), a real SQLite state
// file and a mail_dir, all in t.TempDir().
type fixture struct {
	t               *testing.T
	dir, repo, mail string
	p               *pipeline.Pipeline
	db              *state.DB
	out             *bytes.Buffer
}

func newFixture(t *testing.T, safety string, extra ...string) *fixture {
	t.Helper()
	f := &fixture{t: t, dir: t.TempDir(), out: &bytes.Buffer{}}
	f.repo, f.mail = filepath.Join(f.dir, "repo"), filepath.Join(f.dir, "outbox")
	if err := os.CopyFS(f.repo, os.DirFS(filepath.Join("..", "..", "examples"))); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(f.dir, "config.cue")
	cfgText := fmt.Sprintf(`repo: {url: %q, branch: "main", path: "."}
state: {driver: "sqlite", dsn: "roster.db"}
directories: corp: {ldif: "directory.ldif", base_dn: "dc=example,dc=com"}
mail_dir: "outbox"
safety: {%s}
%s
`, f.repo, safety, strings.Join(extra, "\n"))
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := schema.LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	f.db, err = state.Open(context.Background(), filepath.Join(f.dir, "roster.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.db.Close() })
	f.p = &pipeline.Pipeline{Config: cfg, Source: source.NewDir(f.repo), DB: f.db, MailDir: f.mail, Out: f.out}
	return f
}

// dropStaff rewrites the directory without its first n staff members.
func (f *fixture) dropStaff(n int) {
	f.t.Helper()
	p := filepath.Join(f.repo, "directory.ldif")
	data, err := os.ReadFile(p)
	if err != nil {
		f.t.Fatal(err)
	}
	var kept []string
	dropped := 0
	for _, block := range strings.Split(string(data), "\n\n") {
		if dropped < n && strings.Contains(block, "employeeType: staff") {
			dropped++
			continue
		}
		kept = append(kept, block)
	}
	if dropped < n {
		f.t.Fatalf("the directory has %d staff members, not %d", dropped, n)
	}
	if err := os.WriteFile(p, []byte(strings.Join(kept, "\n\n")), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) count(q string) int {
	f.t.Helper()
	var n int
	if err := f.db.Get(&n, q); err != nil {
		f.t.Fatalf("%s: %v", q, err)
	}
	return n
}

func (f *fixture) version() int64 {
	f.t.Helper()
	v, err := f.db.StateVersion(context.Background())
	if err != nil {
		f.t.Fatal(err)
	}
	return v
}

// apply runs the whole pipeline, emails left in the outbox.
func (f *fixture) apply(o pipeline.Options) pipeline.Result {
	f.t.Helper()
	o.Actor = "test"
	res, err := f.p.Run(context.Background(), o)
	if err != nil {
		f.t.Fatalf("run: %v (step %s)", err, res.Failed)
	}
	return res
}

// TestLoadSource: step 1 loads and validates the examples, and refuses a repo that does
// not validate with the file of its error.
func TestLoadSource(t *testing.T) {
	for _, tc := range []struct {
		name    string
		breakIt func(repo string) error
		wantErr string
	}{
		{"examples", func(string) error { return nil }, ""},
		{"broken template", func(repo string) error {
			return os.WriteFile(filepath.Join(repo, "templates", "staff.yaml"), []byte("name: staff\nsource: nowhere\n"), 0o644)
		}, "templates/staff.yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, "")
			if err := tc.breakIt(f.repo); err != nil {
				t.Fatal(err)
			}
			repo, _, err := f.p.LoadSource(context.Background())
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one naming %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(repo.Templates) != 2 || len(repo.VMRs) == 0 {
				t.Errorf("loaded %d templates and %d VMRs, want the examples' 2 and some", len(repo.Templates), len(repo.VMRs))
			}
		})
	}
}

// TestPlanDryRunWritesNothing: step 2 alone plans the examples' creations; a dry run stops
// there, so the state stays empty, and a plan after an apply is empty.
func TestPlanDryRunWritesNothing(t *testing.T) {
	f := newFixture(t, "")
	res, err := f.p.Run(context.Background(), pipeline.Options{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Plan == nil || res.Plan.Summary.Create == 0 || res.Applied {
		t.Fatalf("dry run: plan %+v, applied %v; want creations, not applied", res.Plan, res.Applied)
	}
	if n := f.count(`SELECT COUNT(*) FROM vmrs`); n != 0 || f.version() != 0 || f.out.Len() != 0 {
		t.Fatalf("dry run wrote %d VMRs, state version %d, printed %q", n, f.version(), f.out.String())
	}
	applied := f.apply(pipeline.Options{})
	if applied.Apply.Changes != res.Plan.Len() || f.version() != 1 {
		t.Fatalf("applied %d changes at version %d; the dry run planned %d", applied.Apply.Changes, f.version(), res.Plan.Len())
	}
	again, err := f.p.Plan(context.Background(), applied.Repo, applied.Commit)
	if err != nil {
		t.Fatal(err)
	}
	if again.HasChanges() {
		t.Errorf("plan after apply has %d changes, want none", again.Len())
	}
}

// TestGuardRefusesOverLimitDeletions: removing people beyond max_delete_count is refused by
// step 3 without applying anything; the refused plan is shown; an allowance lets it through.
func TestGuardRefusesOverLimitDeletions(t *testing.T) {
	f := newFixture(t, "max_delete_count: 3")
	f.apply(pipeline.Options{})
	vmrs, v := f.count(`SELECT COUNT(*) FROM vmrs`), f.version()
	f.dropStaff(8)

	res, err := f.p.Run(context.Background(), pipeline.Options{Actor: "test", Show: "text"})
	var refused *reconcile.RefusalError
	if !errors.As(err, &refused) || res.Failed != pipeline.StepGuard || res.Applied {
		t.Fatalf("run = %v (step %q, applied %v), want a refusal by the guard", err, res.Failed, res.Applied)
	}
	if !strings.Contains(err.Error(), "max_delete_count 3") {
		t.Errorf("refusal %q does not name the limit", err)
	}
	if got := f.count(`SELECT COUNT(*) FROM vmrs`); got != vmrs || f.version() != v {
		t.Fatalf("refused plan changed the state: %d VMRs (was %d), version %d (was %d)", got, vmrs, f.version(), v)
	}
	if !strings.Contains(f.out.String(), "- vmr ") {
		t.Errorf("the refused plan was not shown:\n%s", f.out.String())
	}
	if err := f.p.Guard(res.Plan, nil, reconcile.Allowances{Deletions: res.Plan.Safety.Removals}); err != nil {
		t.Fatalf("guard with --allow-deletions %d: %v", res.Plan.Safety.Removals, err)
	}
	f.apply(pipeline.Options{Allow: reconcile.Allowances{Deletions: res.Plan.Safety.Removals}})
	if got := f.count(`SELECT COUNT(*) FROM vmrs`); got >= vmrs {
		t.Errorf("allowed plan left %d VMRs, want fewer than %d", got, vmrs)
	}
}

// TestGuardRefusesStaleSavedPlan: a saved plan of another state version is refused before
// anything is shown or written.
func TestGuardRefusesStaleSavedPlan(t *testing.T) {
	f := newFixture(t, "")
	dry, err := f.p.Run(context.Background(), pipeline.Options{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	data, err := reconcile.MarshalPlanFile(dry.Plan)
	if err != nil {
		t.Fatal(err)
	}
	saved, err := reconcile.ReadPlanFile(data)
	if err != nil {
		t.Fatal(err)
	}
	saved.StateVersion++
	res, err := f.p.Run(context.Background(), pipeline.Options{Actor: "test", Saved: saved, Show: "text"})
	if !errors.Is(err, reconcile.ErrStale) || res.Failed != pipeline.StepGuard {
		t.Fatalf("run = %v (step %q), want ErrStale from the guard", err, res.Failed)
	}
	if f.version() != 0 || f.out.Len() != 0 {
		t.Fatalf("stale plan: version %d, printed %q; want nothing", f.version(), f.out.String())
	}
}

// TestDeliverSendsWhatApplyEnqueued: step 5 writes one message into mail_dir for each email
// step 4 enqueued, and the outbox records them sent.
func TestDeliverSendsWhatApplyEnqueued(t *testing.T) {
	f := newFixture(t, "")
	res := f.apply(pipeline.Options{Show: "text", Summarize: true, Deliver: true})
	if res.Apply.Emails == 0 {
		t.Fatal("the examples' first apply enqueued no email")
	}
	files, err := os.ReadDir(f.mail)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != res.Apply.Emails {
		t.Errorf("mail_dir holds %d messages, apply enqueued %d", len(files), res.Apply.Emails)
	}
	if sent := f.count(`SELECT COUNT(*) FROM outbox WHERE status = 'sent'`); sent != res.Apply.Emails {
		t.Errorf("outbox: %d sent, want %d", sent, res.Apply.Emails)
	}
	want := fmt.Sprintf("Applied: %d changes, %d emails enqueued; state version 1.\nEmails: %d sent, 0 failed, 0 still pending",
		res.Apply.Changes, res.Apply.Emails, res.Apply.Emails)
	if !strings.Contains(f.out.String(), want) {
		t.Errorf("output lacks %q:\n%s", want, tail(f.out.String()))
	}
	// Nothing left: a second delivery sends nothing.
	rep, err := f.p.Deliver(context.Background(), 0)
	if err != nil || rep.Sent != 0 {
		t.Errorf("second delivery: %+v, %v; want nothing sent", rep, err)
	}
}

// TestReplicaNeverDelivers: with role "replica" (SPEC §8) the deliver step is skipped:
// the apply enqueues the emails, mail_dir stays untouched.
func TestReplicaNeverDelivers(t *testing.T) {
	f := newFixture(t, "")
	f.p.Config.Role = schema.RoleReplica
	res := f.apply(pipeline.Options{Deliver: true})
	if res.Apply.Emails == 0 {
		t.Fatal("the examples' first apply enqueued no email")
	}
	if _, err := os.Stat(f.mail); !os.IsNotExist(err) {
		t.Errorf("a replica wrote mail_dir (stat: %v)", err)
	}
	if pending := f.count(`SELECT COUNT(*) FROM outbox WHERE status = 'pending'`); pending != res.Apply.Emails {
		t.Errorf("outbox: %d pending, want all %d", pending, res.Apply.Emails)
	}
}

// TestManualPlans: a manual plan enters at step 2 with its own planner; accepting an
// invitation needs no source at all.
func TestManualPlans(t *testing.T) {
	f := newFixture(t, "")
	f.apply(pipeline.Options{})
	email := ""
	if err := f.db.Get(&email, `SELECT email FROM invites WHERE status = 'pending' ORDER BY email LIMIT 1`); err != nil {
		t.Fatal(err)
	}
	f.p.Source = nil // AcceptInvite must not fetch
	f.apply(pipeline.Options{Manual: pipeline.AcceptInvite(strings.ToUpper(email))})
	var status string
	if err := f.db.Get(&status, `SELECT status FROM invites WHERE email = ?`, email); err != nil || status != "accepted" {
		t.Fatalf("invitation %s is %q (%v), want accepted", email, status, err)
	}
	_, err := f.p.Run(context.Background(), pipeline.Options{Manual: pipeline.AcceptInvite("nobody@example.com")})
	if err == nil || !strings.Contains(err.Error(), "no invitation for nobody@example.com") {
		t.Errorf("accepting an unknown invitation: %v", err)
	}
}

// TestFinishApplyStopsBeforeApply: with the daemon's rule a cancelled run applies nothing.
func TestFinishApplyStopsBeforeApply(t *testing.T) {
	f := newFixture(t, "")
	repo, commit, err := f.p.LoadSource(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	applying := false
	res, err := f.p.Run(ctx, pipeline.Options{Actor: "test", Repo: repo, Commit: commit, FinishApply: true,
		Planned: func(*reconcile.Plan) { cancel() }, Applying: func(*reconcile.Plan) { applying = true }})
	if !errors.Is(err, context.Canceled) || res.Applied || applying || f.version() != 0 {
		t.Fatalf("cancelled run: %v, applied %v, applying hook %v, version %d; want nothing applied", err, res.Applied, applying, f.version())
	}
}

func tail(s string) string {
	if len(s) > 2000 {
		return s[len(s)-2000:]
	}
	return s
}
