package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/roster-dev/roster/reconcile"
)

// runApply: `roster apply` — plan (or check a saved plan) and apply it in one
// transaction, then deliver the emails it enqueued (unless --no-send).
func runApply(ctx context.Context, a *app, args []string) error {
	fs := a.flags("apply", true)
	planFile := fs.String("plan", "", "apply this saved plan (from `roster plan --out FILE`); refused if stale")
	allowDel := fs.Int("allow-deletions", 0, "allow up to N deletions and deactivations beyond the safety limits")
	allowMail := fs.Int("allow-emails", 0, "allow up to N emails beyond safety.max_emails")
	noSend := fs.Bool("no-send", false, "leave enqueued emails in the outbox")
	format := fs.String("format", "text", "how to print the applied plan: text, json or markdown")
	showSecrets := fs.Bool("show-secrets", false, "show PINs and passwords in the printed plan")
	if _, err := a.parse(fs, args, 0); err != nil {
		return err
	}
	if err := checkFormat(*format); err != nil {
		return err
	}
	defer a.close()
	var saved *reconcile.SavedPlan
	if *planFile != "" {
		data, err := os.ReadFile(*planFile)
		if err != nil {
			return fmt.Errorf("read plan: %w", err)
		}
		if saved, err = reconcile.ReadPlanFile(data); err != nil {
			return err
		}
	}
	p, err := a.makePlan(ctx)
	if err != nil {
		return err
	}
	if saved != nil {
		if err := p.MatchSaved(saved); err != nil {
			return err
		}
	}
	out := reconcile.OutputOptions{ShowSecrets: *showSecrets}
	if err := p.Check(a.cfg.Safety, reconcile.Allowances{Deletions: *allowDel, Emails: *allowMail}); err != nil {
		if werr := p.Write(a.stdout, *format, out); werr != nil {
			return werr
		}
		return err
	}
	// The plan prints while the transaction runs: printing 1.2 million changes takes as
	// long as a good part of writing them. Apply only sets the objects' ids, which the
	// printout never reads; "Applied: …" follows the whole printout.
	printed := make(chan error, 1)
	go func() { printed <- p.Write(a.stdout, *format, out) }()
	start := time.Now()
	res, err := reconcile.Apply(ctx, a.db, p, reconcile.ApplyOptions{Actor: "cli:apply", Now: time.Now().UTC()}, true)
	if werr := <-printed; werr != nil && err == nil {
		err = werr
	}
	if err != nil {
		return err
	}
	a.logger.Debug("applied", "changes", res.Changes, "emails", res.Emails, "took", time.Since(start))
	if p.HasChanges() {
		fmt.Fprintf(a.stdout, "Applied: %d changes, %d emails enqueued; state version %d.\n", res.Changes, res.Emails, res.StateVersion)
	} else {
		fmt.Fprintln(a.stdout, "Nothing to apply.")
	}
	if *noSend {
		return nil
	}
	return a.deliver(ctx)
}
