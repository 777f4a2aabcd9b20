package main

import (
	"context"
	"fmt"
	"os"

	"github.com/roster-dev/roster/reconcile"
)

// runApply: `roster apply` — plan (or check a saved plan) and apply it in one
// transaction, then deliver the emails it enqueued (unless --no-send).
func runApply(ctx context.Context, a *app, args []string) error {
	fs := a.flags("apply", true)
	planFile := fs.String("plan", "", "apply this saved plan (from `roster plan --out FILE`); refused if stale")
	allowDel := fs.Int("allow-deletions", 0, "allow up to N deletions and deactivations beyond the safety limits")
	send := a.sendFlags(fs, "leave enqueued emails in the outbox")
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
	o := send.options("cli:apply")
	o.Saved, o.Allow.Deletions, o.Show, o.ShowSecrets, o.Summarize = saved, *allowDel, *format, *showSecrets, true
	_, err := a.run(ctx, o)
	return err
}
