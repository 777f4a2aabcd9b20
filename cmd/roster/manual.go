package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/roster-dev/roster/reconcile"
	"github.com/roster-dev/roster/reconcile/pipeline"
)

// sending are the pipeline options of a command that enqueues emails, for actor:
// --allow-emails and --no-send.
func (a *app) sending(actor string) pipeline.Options {
	return pipeline.Options{Actor: actor, Allow: reconcile.Allowances{Emails: a.opt.allowEmails}, Deliver: !a.opt.noSend}
}

// runRemind: `roster remind (--template NAME | --vmr NAME | --device ALIAS | --invite EMAIL)...`
// enqueues reminder emails without resyncing the directory, then delivers them.
func runRemind(ctx context.Context, a *app, _ []string) error {
	t := a.opt.targets
	if len(t.Templates)+len(t.VMRs)+len(t.Devices)+len(t.Invites) == 0 {
		return fmt.Errorf("remind: name at least one --template, --vmr, --device or --invite")
	}
	return a.runManual(ctx, "cli:remind", pipeline.Reminders(t))
}

// runNotify: `roster notify users` — WebEx "Notify Now".
func runNotify(ctx context.Context, a *app, rest []string) error {
	if len(rest) != 1 || rest[0] != "users" {
		return fmt.Errorf("notify: say whom to notify: `roster notify users`")
	}
	return a.runManual(ctx, "cli:notify", pipeline.NotifyUsers())
}

// runManual shows a manual plan as text, guards, applies and delivers it.
func (a *app) runManual(ctx context.Context, actor string, m *pipeline.Manual) error {
	o := a.sending(actor)
	o.Manual, o.Show = m, "text"
	_, err := a.run(ctx, o)
	return err
}

// runInvites: `roster invites accept EMAIL`.
func runInvites(ctx context.Context, a *app, rest []string) error {
	if len(rest) != 2 || rest[0] != "accept" {
		return fmt.Errorf("invites: usage: roster invites accept EMAIL")
	}
	if _, err := a.run(ctx, pipeline.Options{Actor: "cli:invites", Manual: pipeline.AcceptInvite(rest[1])}); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "Invitation for %s accepted.\n", strings.ToLower(rest[1]))
	return nil
}
