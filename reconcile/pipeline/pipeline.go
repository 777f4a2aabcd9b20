// Package pipeline is roster's one reconcile path. Every command that changes the state
// (`roster apply`, `remind`, `notify users`, `invites accept`), the dry run (`roster plan`)
// and each cycle of the daemon (reconcile/daemon) go through Pipeline.Run, which takes
// these steps in this order, each a method that runs and is tested alone:
//
//  1. Source (LoadSource = Fetch + Load): fetch the desired state (a Git branch or a
//     folder) and load it at its commit; schema.Load validates config and repo, patterns
//     included. The daemon runs Fetch and Load itself, to keep the last good commit in
//     force while a newer one does not validate, and enters at step 2 with Options.Repo.
//  2. Plan: read the directories, render the templates and diff the result with the
//     state database (reconcile.Engine.Plan). A manual plan (reminders, notify users,
//     accept an invitation) enters here instead with its own Manual planner, which sees
//     the state as it is and no directory.
//  3. Guard: a saved plan (`apply --plan FILE`) must still be what planning gives now;
//     the safety limits of config.cue must hold, beyond them only by the operator's
//     allowances (`--allow-deletions`, `--allow-emails`). The daemon allows nothing.
//  4. Apply: one SQLite transaction writes the objects, the audit log, the email outbox,
//     the sync status and the state version (reconcile.Apply).
//  5. Deliver: push the platform queue (platforms in push mode, SPEC §8), then send what
//     the outbox holds (an object's emails wait until its push is done), by SMTP or into mail_dir (notify.Deliverer),
//     for at most DeliveryWait; what is left stays pending for the next run. The daemon
//     delivers from a mailer goroutine of its own instead, built by Deliverer.
//
// A template whose directory or render fails is failed closed: its objects stay as they
// are while the other templates apply and deliver; Run then returns a
// *TemplateFailedError naming it (SPEC §10), so a command exits 1 after doing the rest.
//
// A command sees the plan on Pipeline.Out: a refused plan is shown before the refusal, an
// accepted one is shown while the transaction runs (printing a million changes takes as
// long as a good part of writing them).
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/roster-dev/roster/notify"
	"github.com/roster-dev/roster/reconcile"
	"github.com/roster-dev/roster/reconcile/source"
	"github.com/roster-dev/roster/schema"
	"github.com/roster-dev/roster/schema/pattern"
	"github.com/roster-dev/roster/state"
)

// Pipeline holds what the steps need: the configuration, where the desired state comes
// from, the state database and where a command's output goes.
type Pipeline struct {
	Config *schema.Config
	Source source.Source
	// DB is the state database; when nil, OpenDB opens it at its first use, so a command
	// whose source does not load (or `roster validate`) never creates one.
	DB     *state.DB
	OpenDB func(context.Context) (*state.DB, error)
	// Engine reads directories, renders and diffs; built from Config and DB when nil.
	Engine *reconcile.Engine
	// MailDir is config.cue's mail_dir, resolved against the config's folder.
	MailDir string
	// Out receives what a command prints: the plan, the apply's summary, the delivery's
	// counts. Nil prints nothing (the daemon).
	Out io.Writer
	// Progress, when set, shows the delivery's progress line (a terminal).
	Progress io.Writer
	Logger   *slog.Logger
	// Incremental reads directories incrementally where they can (SPEC §7): the daemon.
	Incremental bool
}

// Options say where a run enters and what it may do.
type Options struct {
	// Actor is who applies, for the audit log: "cli:apply", "cli:remind", "daemon", …
	Actor string
	// Repo and Commit, when Repo is set, are the loaded desired state: step 1 is skipped.
	Repo   *schema.Repo
	Commit string
	// Manual replaces the directory plan of step 2.
	Manual *Manual
	// DryRun stops after step 2 (`roster plan`).
	DryRun bool
	// Saved is the plan `apply --plan FILE` must match; Allow is what the operator allows
	// beyond the safety limits.
	Saved *reconcile.SavedPlan
	Allow reconcile.Allowances
	// Show prints the plan on Out in this format (text, json or markdown); "" does not.
	Show        string
	ShowSecrets bool
	// Summarize prints "Applied: …" (or "Nothing to apply.") on Out after the apply.
	Summarize bool
	// Deliver runs step 5 after the apply (not with --no-send, nor in the daemon).
	Deliver bool
	// FinishApply is the daemon's shutdown rule (SPEC §6): a cancelled ctx stops the run
	// before the apply, but an apply once started runs to its commit.
	FinishApply bool
	// Planned, Applying and Applied, when set, watch the run (the daemon's metrics and log).
	Planned  func(*reconcile.Plan)
	Applying func(*reconcile.Plan)
	Applied  func(*reconcile.Plan, reconcile.ApplyResult)
}

// Step names a step of Run, for a caller that reports which one failed.
type Step string

// The steps, in the order Run takes them.
const (
	StepSource  Step = "source"
	StepPlan    Step = "plan"
	StepGuard   Step = "guard"
	StepApply   Step = "apply"
	StepDeliver Step = "deliver"
)

// Result is what a run did, as far as it went.
type Result struct {
	Repo   *schema.Repo
	Commit string
	// Plan is set once planned, also when the guard refused it.
	Plan    *reconcile.Plan
	Applied bool
	Apply   reconcile.ApplyResult
	// Failed is the step whose error Run returned: "" when none failed, and also when the
	// only error is a *TemplateFailedError (the run went through for the other templates).
	Failed Step
}

// TemplateFailedError is a run in which some templates failed — their directory was down,
// refused the bind, cut the search short or timed out, or their patterns failed — while
// the others went through: the failed templates' objects were left as they are (fail
// closed), and the command exits 1 naming them (SPEC §10).
type TemplateFailedError struct {
	// Failures are the failed templates, in the plan's order, each with its cause.
	Failures []reconcile.Problem
}

func (e *TemplateFailedError) Error() string {
	if len(e.Failures) == 1 {
		f := e.Failures[0]
		return fmt.Sprintf("template %s failed and was not synced (its objects are left unchanged): %s", f.Template, f.Message)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d templates failed and were not synced (their objects are left unchanged):", len(e.Failures))
	for _, f := range e.Failures {
		fmt.Fprintf(&b, "\n  template %s: %s", f.Template, f.Message)
	}
	return b.String()
}

// Templates names the failed templates.
func (e *TemplateFailedError) Templates() []string {
	names := make([]string, len(e.Failures))
	for i, f := range e.Failures {
		names[i] = f.Template
	}
	return names
}

// templatesFailed is the plan's failed templates as a *TemplateFailedError, or nil.
func templatesFailed(p *reconcile.Plan) error {
	var fs []reconcile.Problem
	for _, e := range p.Errors {
		if e.Template != "" {
			fs = append(fs, e)
		}
	}
	if len(fs) == 0 {
		return nil
	}
	return &TemplateFailedError{Failures: fs}
}

// Run takes the steps for one command or daemon cycle and stops at the first that fails.
// When the steps went through but some templates failed, it returns a
// *TemplateFailedError after the apply and the delivery (after the plan in a dry run).
func (p *Pipeline) Run(ctx context.Context, o Options) (res Result, err error) {
	res = Result{Repo: o.Repo, Commit: o.Commit}
	step := StepSource
	var failed error // the plan's *TemplateFailedError, returned once the steps are done
	defer func() {
		if err != nil && err != failed {
			res.Failed = step
		}
	}()
	if res.Repo == nil && (o.Manual == nil || !o.Manual.NoSource) {
		if res.Repo, res.Commit, err = p.LoadSource(ctx); err != nil {
			return res, err
		}
	}
	step = StepPlan
	now := time.Now().UTC()
	if o.Manual != nil {
		res.Plan, err = p.PlanManual(ctx, o.Manual, res.Repo, res.Commit, now)
	} else {
		res.Plan, err = p.Plan(ctx, res.Repo, res.Commit)
	}
	if err != nil {
		return res, err
	}
	failed = templatesFailed(res.Plan)
	if o.DryRun {
		return res, failed
	}
	plan := res.Plan
	step = StepGuard
	if o.Planned != nil {
		o.Planned(plan)
	}
	if err := p.Guard(plan, o.Saved, o.Allow); err != nil {
		var refused *reconcile.RefusalError
		if errors.As(err, &refused) {
			if werr := p.show(plan, o); werr != nil {
				return res, werr
			}
		}
		return res, err
	}
	if o.FinishApply {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		ctx = context.WithoutCancel(ctx)
	}
	step = StepApply
	if o.Applying != nil {
		o.Applying(plan)
	}
	if o.Manual == nil {
		now = time.Now().UTC() // a directory plan took its time: stamp the rows as written
	}
	printed := make(chan error, 1)
	go func() { printed <- p.show(plan, o) }()
	aopts := reconcile.ApplyOptions{Actor: o.Actor, Now: now, Push: PushPlatforms(p.Config)}
	if o.Manual == nil {
		if aopts.Repair, err = p.repairOps(ctx); err != nil {
			<-printed
			return res, err
		}
		if err = guardRepair(aopts.Repair, p.Config.Safety, o.Allow); err != nil {
			<-printed
			step = StepGuard
			return res, err
		}
		if len(aopts.Repair) > 0 {
			aopts.RepairDone = driftMeta(PexipPlatform)
		}
	}
	res.Apply, err = p.Apply(ctx, plan, aopts, o.Manual == nil)
	if werr := <-printed; werr != nil && err == nil {
		err = werr
	}
	if err != nil {
		return res, err
	}
	res.Applied = true
	if o.Applied != nil {
		o.Applied(plan, res.Apply)
	}
	if o.Summarize && p.Out != nil {
		if plan.HasChanges() {
			fmt.Fprintf(p.Out, "Applied: %d changes, %d emails enqueued; state version %d.\n", res.Apply.Changes, res.Apply.Emails, res.Apply.StateVersion)
		} else {
			fmt.Fprintln(p.Out, "Nothing to apply.")
		}
	}
	if o.Deliver && p.Config.Role != schema.RoleReplica { // SPEC §8: a replica never sends nor pushes
		step = StepDeliver
		_, perr := p.Push(ctx) // before the emails: an object's email waits for its push
		_, err = p.Deliver(ctx, DeliveryWait)
		if err = errors.Join(perr, err); err != nil {
			return res, errors.Join(err, failed)
		}
	}
	return res, failed
}

// show prints the plan on Out as o.Show asks.
func (p *Pipeline) show(plan *reconcile.Plan, o Options) error {
	if o.Show == "" || p.Out == nil {
		return nil
	}
	return plan.Write(p.Out, o.Show, reconcile.OutputOptions{ShowSecrets: o.ShowSecrets})
}

func (p *Pipeline) logger() *slog.Logger {
	if p.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return p.Logger
}

// Store is the state database, opened at its first use.
func (p *Pipeline) Store(ctx context.Context) (*state.DB, error) {
	if p.DB != nil {
		return p.DB, nil
	}
	if p.OpenDB == nil {
		return nil, errors.New("pipeline: no state database")
	}
	db, err := p.OpenDB(ctx)
	if err != nil {
		return nil, err
	}
	p.DB = db
	return db, nil
}

// DeliveryWait bounds how long a command keeps retrying after it enqueued emails; what
// is still pending then stays in the outbox for the next run or the daemon.
const DeliveryWait = 30 * time.Second

// LoadSource is step 1: fetch the source and load + validate the desired state at its commit.
func (p *Pipeline) LoadSource(ctx context.Context) (*schema.Repo, string, error) {
	commit, err := p.Fetch(ctx)
	if err != nil {
		return nil, "", err
	}
	start := time.Now()
	repo, err := p.Load(commit)
	p.logger().Debug("loaded repo", "commit", commit, "took", time.Since(start))
	return repo, commit, err
}

// Fetch brings the source up to date and returns its commit ("" for a plain folder).
func (p *Pipeline) Fetch(ctx context.Context) (string, error) {
	return p.Source.Fetch(ctx)
}

// Load reads and validates the desired state at commit, every pattern compiled.
func (p *Pipeline) Load(commit string) (*schema.Repo, error) {
	tree, err := p.Source.Tree(commit)
	if err != nil {
		return nil, err
	}
	cfg := *p.Config
	cfg.Repo.Path = "." // sources are rooted at the configured sub-path already
	return schema.Load(tree, &cfg, schema.LoadOptions{CheckPattern: patternChecker()})
}

// patternChecker compiles every pattern at load time (no secret key is needed to compile).
func patternChecker() func(string) error {
	env := pattern.NewEnv(pattern.Options{})
	return func(src string) error {
		_, err := env.Compile("pattern", src)
		var pe *pattern.Error
		if errors.As(err, &pe) {
			return positioned{pe}
		}
		return err
	}
}

// positioned gives schema the position of a pattern error inside its pattern.
type positioned struct{ e *pattern.Error }

func (p positioned) Error() string             { return p.e.Msg }
func (p positioned) Position() (line, col int) { return p.e.Line, p.e.Col }

// Plan is step 2: read the directories, render and diff with the state database.
func (p *Pipeline) Plan(ctx context.Context, repo *schema.Repo, commit string) (*reconcile.Plan, error) {
	if p.Engine == nil {
		db, err := p.Store(ctx)
		if err != nil {
			return nil, err
		}
		p.Engine = &reconcile.Engine{Config: p.Config, DB: db, Logger: p.Logger, DefaultEmails: DefaultEmails(), Incremental: p.Incremental}
	}
	return p.Engine.Plan(ctx, repo, commit)
}

// Manual makes a plan from the state as it is, instead of the directories (step 2).
type Manual struct {
	Make func(Inputs) (*reconcile.Plan, error)
	// NoSource skips step 1: the plan needs nothing of the desired state.
	NoSource bool
}

// Inputs are what a manual plan is made from.
type Inputs struct {
	Repo          *schema.Repo // nil with NoSource
	Commit        string
	Actual        *state.Actual
	DefaultEmails map[string]reconcile.MailSpec
	Now           time.Time
}

// PlanManual is step 2 for a manual plan: it loads the whole actual state and makes m's plan.
func (p *Pipeline) PlanManual(ctx context.Context, m *Manual, repo *schema.Repo, commit string, now time.Time) (*reconcile.Plan, error) {
	db, err := p.Store(ctx)
	if err != nil {
		return nil, err
	}
	actual, err := db.LoadActual(ctx)
	if err != nil {
		return nil, err
	}
	return m.Make(Inputs{Repo: repo, Commit: commit, Actual: actual, DefaultEmails: DefaultEmails(), Now: now})
}

// Reminders plans reminder emails for the targets (`roster remind`).
func Reminders(t reconcile.ReminderTargets) *Manual {
	return &Manual{Make: func(in Inputs) (*reconcile.Plan, error) {
		return reconcile.PlanReminders(in.Repo, in.DefaultEmails, in.Actual, t, in.Commit, in.Now)
	}}
}

// NotifyUsers plans the activation email of every user never notified (`roster notify users`).
func NotifyUsers() *Manual {
	return &Manual{Make: func(in Inputs) (*reconcile.Plan, error) {
		return reconcile.PlanNotifyUsers(in.Repo, in.DefaultEmails, in.Actual, in.Commit), nil
	}}
}

// AcceptInvite plans marking email's pending invitation accepted (`roster invites accept`).
func AcceptInvite(email string) *Manual {
	return &Manual{NoSource: true, Make: func(in Inputs) (*reconcile.Plan, error) {
		return reconcile.PlanAcceptInvite(in.Actual, email, in.Now)
	}}
}

// Guard is step 3: a saved plan must match the plan made now, and the plan must keep
// within the safety limits of config.cue or what allow lets through (a *RefusalError).
func (p *Pipeline) Guard(plan *reconcile.Plan, saved *reconcile.SavedPlan, allow reconcile.Allowances) error {
	if saved != nil {
		if err := plan.MatchSaved(saved); err != nil {
			return err
		}
	}
	return plan.Check(p.Config.Safety, allow)
}

// Apply is step 4: the plan in one transaction. recordStatus writes the templates' sync
// status too (directory plans; a manual plan ran no template).
func (p *Pipeline) Apply(ctx context.Context, plan *reconcile.Plan, opts reconcile.ApplyOptions, recordStatus bool) (reconcile.ApplyResult, error) {
	db, err := p.Store(ctx)
	if err != nil {
		return reconcile.ApplyResult{}, err
	}
	start := time.Now()
	res, err := reconcile.Apply(ctx, db, plan, opts, recordStatus)
	if err == nil {
		p.logger().Debug("applied", "changes", res.Changes, "emails", res.Emails, "took", time.Since(start))
	}
	return res, err
}

// Deliverer builds the outbox deliverer from config.cue: its SMTP servers or mail_dir.
func (p *Pipeline) Deliverer(ctx context.Context) (*notify.Deliverer, error) {
	db, err := p.Store(ctx)
	if err != nil {
		return nil, err
	}
	key, err := db.SecretKey(ctx, os.Getenv(p.Config.SecretKeyEnv))
	if err != nil {
		return nil, err
	}
	return &notify.Deliverer{DB: db, Servers: p.Config.SMTP, Password: os.Getenv, MailDir: p.MailDir,
		Renderer: notify.NewPatternRenderer(key), Logger: p.Logger, Progress: p.Progress}, nil
}

// Deliver is step 5: send what the outbox holds, retrying for at most wait, and print the
// counts on Out. Emails that failed for good make it an error.
func (p *Pipeline) Deliver(ctx context.Context, wait time.Duration) (notify.Report, error) {
	d, err := p.Deliverer(ctx)
	if err != nil {
		return notify.Report{}, err
	}
	if len(p.Config.SMTP) == 0 && p.Config.MailDir == "" {
		return notify.Report{}, fmt.Errorf("emails are enqueued but config.cue names no smtp server and no mail_dir; add one, or use --no-send")
	}
	rep, err := d.DeliverAll(ctx, wait)
	if err != nil {
		return rep, fmt.Errorf("deliver emails: %w", err)
	}
	if rep.Sent+rep.Failed+rep.Pending > 0 && p.Out != nil {
		fmt.Fprintf(p.Out, "Emails: %d sent, %d failed, %d still pending (see `roster status`).\n", rep.Sent, rep.Failed, rep.Pending)
	}
	if rep.Failed > 0 {
		return rep, fmt.Errorf("%d emails failed; `roster status` lists them with the reason", rep.Failed)
	}
	return rep, nil
}

// DefaultEmails are notify's built-in texts for the org-wide emails, used where
// settings.yaml names no template of its own.
func DefaultEmails() map[string]reconcile.MailSpec {
	out := map[string]reconcile.MailSpec{}
	for _, d := range notify.Defaults() {
		switch d.Kind {
		case "activation", "invite", "admin_summary", "sync_error":
			out[d.Kind] = reconcile.MailSpec{Subject: d.Subject, Body: d.Body, BodyPath: "builtin:" + d.Kind}
		}
	}
	return out
}
