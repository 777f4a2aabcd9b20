package main

import (
	"context"
	"flag"
	"fmt"
	"strings"

	"github.com/roster-dev/roster/reconcile"
	"github.com/roster-dev/roster/reconcile/pipeline"
)

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// sendFlags are the flags of the commands that enqueue emails.
type sendFlags struct {
	noSend    *bool
	allowMail *int
}

func (a *app) sendFlags(fs *flag.FlagSet, noSendHelp string) sendFlags {
	return sendFlags{noSend: fs.Bool("no-send", false, noSendHelp),
		allowMail: fs.Int("allow-emails", 0, "allow up to N emails beyond safety.max_emails")}
}

// options are the pipeline options these flags give, for actor.
func (f sendFlags) options(actor string) pipeline.Options {
	return pipeline.Options{Actor: actor, Allow: reconcile.Allowances{Emails: *f.allowMail}, Deliver: !*f.noSend}
}

// runRemind: `roster remind (--template NAME | --vmr NAME | --device ALIAS | --invite EMAIL)...`
// enqueues reminder emails without resyncing the directory, then delivers them.
func runRemind(ctx context.Context, a *app, args []string) error {
	fs := a.flags("remind", true)
	var t reconcile.ReminderTargets
	fs.Var((*stringList)(&t.Templates), "template", "every VMR and device of this sync template (repeatable)")
	fs.Var((*stringList)(&t.VMRs), "vmr", "the VMR with this name (repeatable)")
	fs.Var((*stringList)(&t.Devices), "device", "the device with this alias (repeatable)")
	fs.Var((*stringList)(&t.Invites), "invite", "resend this pending or expired invitation, with a fresh expiry (repeatable)")
	send := a.sendFlags(fs, "leave the reminders in the outbox")
	if _, err := a.parse(fs, args, 0); err != nil {
		return err
	}
	if len(t.Templates)+len(t.VMRs)+len(t.Devices)+len(t.Invites) == 0 {
		return fmt.Errorf("remind: name at least one --template, --vmr, --device or --invite")
	}
	return a.runManual(ctx, send.options("cli:remind"), pipeline.Reminders(t))
}

// runNotify: `roster notify users` — WebEx "Notify Now".
func runNotify(ctx context.Context, a *app, args []string) error {
	fs := a.flags("notify", true)
	send := a.sendFlags(fs, "leave the emails in the outbox")
	rest, err := a.parse(fs, args, 1)
	if err != nil {
		return err
	}
	if len(rest) != 1 || rest[0] != "users" {
		return fmt.Errorf("notify: say whom to notify: `roster notify users`")
	}
	return a.runManual(ctx, send.options("cli:notify"), pipeline.NotifyUsers())
}

// runManual shows a manual plan as text, guards, applies and delivers it.
func (a *app) runManual(ctx context.Context, o pipeline.Options, m *pipeline.Manual) error {
	defer a.close()
	o.Manual, o.Show = m, "text"
	_, err := a.run(ctx, o)
	return err
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
	if _, err := a.run(ctx, pipeline.Options{Actor: "cli:invites", Manual: pipeline.AcceptInvite(rest[1])}); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "Invitation for %s accepted.\n", strings.ToLower(rest[1]))
	return nil
}
