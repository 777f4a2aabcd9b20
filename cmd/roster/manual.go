package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/roster-dev/roster/reconcile"
	"github.com/roster-dev/roster/schema"
	"github.com/roster-dev/roster/state"
)

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// runRemind: `roster remind (--template NAME | --vmr NAME | --device ALIAS | --invite EMAIL)...`
// enqueues reminder emails without resyncing the directory, then delivers them.
func runRemind(ctx context.Context, a *app, args []string) error {
	fs := a.flags("remind", true)
	var t reconcile.ReminderTargets
	fs.Var((*stringList)(&t.Templates), "template", "every VMR and device of this sync template (repeatable)")
	fs.Var((*stringList)(&t.VMRs), "vmr", "the VMR with this name (repeatable)")
	fs.Var((*stringList)(&t.Devices), "device", "the device with this alias (repeatable)")
	fs.Var((*stringList)(&t.Invites), "invite", "resend this pending or expired invitation, with a fresh expiry (repeatable)")
	noSend := fs.Bool("no-send", false, "leave the reminders in the outbox")
	allowMail := fs.Int("allow-emails", 0, "allow up to N emails beyond safety.max_emails")
	if _, err := a.parse(fs, args, 0); err != nil {
		return err
	}
	if len(t.Templates)+len(t.VMRs)+len(t.Devices)+len(t.Invites) == 0 {
		return fmt.Errorf("remind: name at least one --template, --vmr, --device or --invite")
	}
	defer a.close()
	return a.manualPlan(ctx, "cli:remind", *noSend, *allowMail, func(in manualInputs) (*reconcile.Plan, error) {
		return reconcile.PlanReminders(in.repo, defaultEmails(), in.actual, t, in.commit, in.now)
	})
}

// runNotify: `roster notify users` — WebEx "Notify Now".
func runNotify(ctx context.Context, a *app, args []string) error {
	fs := a.flags("notify", true)
	noSend := fs.Bool("no-send", false, "leave the emails in the outbox")
	allowMail := fs.Int("allow-emails", 0, "allow up to N emails beyond safety.max_emails")
	rest, err := a.parse(fs, args, 1)
	if err != nil {
		return err
	}
	if len(rest) != 1 || rest[0] != "users" {
		return fmt.Errorf("notify: say whom to notify: `roster notify users`")
	}
	defer a.close()
	return a.manualPlan(ctx, "cli:notify", *noSend, *allowMail, func(in manualInputs) (*reconcile.Plan, error) {
		return reconcile.PlanNotifyUsers(in.repo, defaultEmails(), in.actual, in.commit), nil
	})
}

// runInvites: `roster invites accept EMAIL`.
func runInvites(ctx context.Context, a *app, args []string) error {
	fs := a.flags("invites", false)
	rest, err := a.parse(fs, args, 2)
	if err != nil {
		return err
	}
	if len(rest) != 2 || rest[0] != "accept" {
		return fmt.Errorf("invites: usage: roster invites accept EMAIL")
	}
	defer a.close()
	db, err := a.database(ctx)
	if err != nil {
		return err
	}
	actual, err := db.LoadActual(ctx)
	if err != nil {
		return err
	}
	p, err := reconcile.PlanAcceptInvite(actual, rest[1], time.Now().UTC())
	if err != nil {
		return err
	}
	if _, err := reconcile.Apply(ctx, db, p, reconcile.ApplyOptions{Actor: "cli:invites", Now: time.Now().UTC()}, false); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "Invitation for %s accepted.\n", strings.ToLower(rest[1]))
	return nil
}

type manualInputs struct {
	repo   *schema.Repo
	actual *state.Actual
	commit string
	now    time.Time
}

// manualPlan loads the repo (for its email templates) and the state, makes a plan with
// mk, shows it, checks the email guard (--allow-emails), applies it and delivers.
func (a *app) manualPlan(ctx context.Context, actor string, noSend bool, allowEmails int, mk func(manualInputs) (*reconcile.Plan, error)) error {
	repo, commit, err := a.loadRepo(ctx)
	if err != nil {
		return err
	}
	db, err := a.database(ctx)
	if err != nil {
		return err
	}
	actual, err := db.LoadActual(ctx)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	p, err := mk(manualInputs{repo: repo, actual: actual, commit: commit, now: now})
	if err != nil {
		return err
	}
	if err := p.WriteText(a.stdout, reconcile.OutputOptions{}); err != nil {
		return err
	}
	if err := p.Check(a.cfg.Safety, reconcile.Allowances{Emails: allowEmails}); err != nil {
		return err
	}
	if _, err := reconcile.Apply(ctx, db, p, reconcile.ApplyOptions{Actor: actor, Now: now}, false); err != nil {
		return err
	}
	if noSend {
		return nil
	}
	return a.deliver(ctx)
}
