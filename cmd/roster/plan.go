package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/roster-dev/roster/reconcile"
	"github.com/roster-dev/roster/reconcile/pipeline"
)

// runPlan: `roster plan` — what apply would do, as text, JSON or markdown; writes nothing.
// It exits 1 when a template failed or the plan cannot be applied; with
// --detailed-exitcode, 2 when there are changes and 0 when there is nothing to do.
func runPlan(ctx context.Context, a *app, _ []string) error {
	if err := checkFormat(a.opt.format); err != nil {
		return err
	}
	// A failed template still gives a plan (the other templates' changes): shown, then the
	// command exits 1 naming the template (SPEC §10), with or without --detailed-exitcode.
	res, err := a.run(ctx, pipeline.Options{DryRun: true})
	var failed *pipeline.TemplateFailedError
	if err != nil && !errors.As(err, &failed) {
		return err
	}
	p := res.Plan
	if err := p.Write(a.stdout, a.opt.format, reconcile.OutputOptions{ShowSecrets: a.opt.showSecrets}); err != nil {
		return err
	}
	if a.opt.out != "" {
		data, err := reconcile.MarshalPlanFile(p)
		if err != nil {
			return err
		}
		if err := os.WriteFile(a.opt.out, data, 0o600); err != nil {
			return fmt.Errorf("save plan: %w", err)
		}
	}
	if failed != nil {
		return errors.Join(planProblems(p), failed)
	}
	if err := planProblems(p); err != nil {
		return err
	}
	if a.opt.detailed && p.HasChanges() {
		return exitError{2}
	}
	return nil
}

// runApply: `roster apply` — plan (or check a saved plan) and apply it in one
// transaction, then deliver the emails it enqueued (unless --no-send).
func runApply(ctx context.Context, a *app, _ []string) error {
	if err := checkFormat(a.opt.format); err != nil {
		return err
	}
	var saved *reconcile.SavedPlan
	if a.opt.planFile != "" {
		data, err := os.ReadFile(a.opt.planFile)
		if err != nil {
			return fmt.Errorf("read plan: %w", err)
		}
		if saved, err = reconcile.ReadPlanFile(data); err != nil {
			return err
		}
	}
	o := a.sending("cli:apply")
	o.Saved, o.Allow.Deletions, o.Show, o.ShowSecrets, o.Summarize = saved, a.opt.allowDeletions, a.opt.format, a.opt.showSecrets, true
	_, err := a.run(ctx, o)
	return err
}

func checkFormat(f string) error {
	switch f {
	case "text", "json", "markdown", "md":
		return nil
	}
	return fmt.Errorf("--format %q: use text, json or markdown", f)
}

// planProblems turns plan-wide errors (a limit crossed, a CSV USERID that matches no
// account) into the command's error, after the plan was shown.
func planProblems(p *reconcile.Plan) error {
	var msgs []string
	for _, e := range p.Errors {
		if e.Template == "" {
			msgs = append(msgs, e.Message)
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	return fmt.Errorf("the plan cannot be applied:\n  %s", strings.Join(msgs, "\n  "))
}
