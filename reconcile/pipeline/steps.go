package pipeline

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/roster-dev/roster/notify"
	"github.com/roster-dev/roster/reconcile"
	"github.com/roster-dev/roster/schema"
	"github.com/roster-dev/roster/schema/pattern"
	"github.com/roster-dev/roster/state"
)

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
		p.Engine = &reconcile.Engine{Config: p.Config, DB: db, Logger: p.Logger, DefaultEmails: DefaultEmails()}
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
