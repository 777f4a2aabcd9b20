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
//  5. Deliver: send what the outbox holds, by SMTP or into mail_dir (notify.Deliverer),
//     for at most DeliveryWait; what is left stays pending for the next run. The daemon
//     delivers from a mailer goroutine of its own instead, built by Deliverer.
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
	"time"

	"github.com/roster-dev/roster/notify"
	"github.com/roster-dev/roster/reconcile"
	"github.com/roster-dev/roster/reconcile/source"
	"github.com/roster-dev/roster/schema"
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
	// Failed is the step whose error Run returned ("" when none failed).
	Failed Step
}

// Run takes the steps for one command or daemon cycle and stops at the first that fails.
func (p *Pipeline) Run(ctx context.Context, o Options) (res Result, err error) {
	res = Result{Repo: o.Repo, Commit: o.Commit}
	step := StepSource
	defer func() {
		if err != nil {
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
	if err != nil || o.DryRun {
		return res, err
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
	res.Apply, err = p.Apply(ctx, plan, reconcile.ApplyOptions{Actor: o.Actor, Now: now}, o.Manual == nil)
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
	if !o.Deliver {
		return res, nil
	}
	step = StepDeliver
	_, err = p.Deliver(ctx, DeliveryWait)
	return res, err
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
