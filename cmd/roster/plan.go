package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/roster-dev/roster/reconcile"
	"github.com/roster-dev/roster/reconcile/pipeline"
)

// runPlan: `roster plan` — what apply would do, as text, JSON or markdown; writes nothing.
func runPlan(ctx context.Context, a *app, args []string) error {
	fs := a.flags("plan", true)
	format := fs.String("format", "text", "text, json or markdown")
	out := fs.String("out", "", "also save the plan as JSON to FILE, for `roster apply --plan FILE`")
	detailed := fs.Bool("detailed-exitcode", false, "exit 0 when there is nothing to do, 2 when there are changes")
	showSecrets := fs.Bool("show-secrets", false, "show PINs and passwords instead of masking them")
	if _, err := a.parse(fs, args, 0); err != nil {
		return err
	}
	if err := checkFormat(*format); err != nil {
		return err
	}
	defer a.close()
	res, err := a.run(ctx, pipeline.Options{DryRun: true})
	if err != nil {
		return err
	}
	p := res.Plan
	if err := p.Write(a.stdout, *format, reconcile.OutputOptions{ShowSecrets: *showSecrets}); err != nil {
		return err
	}
	if *out != "" {
		data, err := reconcile.MarshalPlanFile(p)
		if err != nil {
			return err
		}
		if err := os.WriteFile(*out, data, 0o600); err != nil {
			return fmt.Errorf("save plan: %w", err)
		}
	}
	if err := planProblems(p); err != nil {
		return err
	}
	if *detailed && p.HasChanges() {
		return exitError{2}
	}
	return nil
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
