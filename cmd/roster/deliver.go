package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/roster-dev/roster/notify"
	"github.com/roster-dev/roster/reconcile"
)

// defaultEmails are notify's built-in texts for the org-wide emails, used where
// settings.yaml names no template of its own.
func defaultEmails() map[string]reconcile.MailSpec {
	out := map[string]reconcile.MailSpec{}
	for _, d := range notify.Defaults() {
		switch d.Kind {
		case "activation", "invite", "admin_summary", "sync_error":
			out[d.Kind] = reconcile.MailSpec{Subject: d.Subject, Body: d.Body, BodyPath: "builtin:" + d.Kind}
		}
	}
	return out
}

// deliverer builds the outbox deliverer from config.cue.
func (a *app) deliverer(ctx context.Context) (*notify.Deliverer, error) {
	db, err := a.database(ctx)
	if err != nil {
		return nil, err
	}
	key, err := db.SecretKey(ctx, os.Getenv(a.cfg.SecretKeyEnv))
	if err != nil {
		return nil, err
	}
	d := &notify.Deliverer{DB: db, Servers: a.cfg.SMTP, Password: os.Getenv, MailDir: a.resolve(a.cfg.MailDir),
		Renderer: notify.NewPatternRenderer(key), Logger: a.logger}
	if f, ok := a.stderr.(*os.File); ok && notify.IsTerminal(f) {
		d.Progress = f
	}
	return d, nil
}

// deliveryWait bounds how long a CLI command keeps retrying after it enqueued emails;
// what is still pending then stays in the outbox for the next run or the daemon.
const deliveryWait = 30 * time.Second

// deliver sends what the outbox holds (apply, remind and notify call it before exiting).
func (a *app) deliver(ctx context.Context) error {
	d, err := a.deliverer(ctx)
	if err != nil {
		return err
	}
	if len(a.cfg.SMTP) == 0 && a.cfg.MailDir == "" {
		return fmt.Errorf("emails are enqueued but config.cue names no smtp server and no mail_dir; add one, or use --no-send")
	}
	rep, err := d.DeliverAll(ctx, deliveryWait)
	if err != nil {
		return fmt.Errorf("deliver emails: %w", err)
	}
	if rep.Sent+rep.Failed+rep.Pending > 0 {
		fmt.Fprintf(a.stdout, "Emails: %d sent, %d failed, %d still pending (see `roster status`).\n", rep.Sent, rep.Failed, rep.Pending)
	}
	if rep.Failed > 0 {
		return fmt.Errorf("%d emails failed; `roster status` lists them with the reason", rep.Failed)
	}
	return nil
}
