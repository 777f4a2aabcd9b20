package main

import (
	"context"
	"fmt"
	"strings"
)

// runPlatform: `roster platform check` lists the drift between the state and Pexip for
// the objects roster owns (changed, missing, extra with roster's marker) and records it:
// the next apply repairs it. Exit 0 without drift, 2 with drift.
func runPlatform(ctx context.Context, a *app, rest []string) error {
	if len(rest) == 1 && rest[0] == "adopt" {
		return runAdopt(ctx, a)
	}
	if len(rest) != 1 || rest[0] != "check" {
		return fmt.Errorf("platform: usage: roster platform check|adopt [--apply]")
	}
	p, err := a.pipeline(false)
	if err != nil {
		return err
	}
	drift, err := p.CheckPlatform(ctx)
	if err != nil {
		return err
	}
	if len(drift) == 0 {
		fmt.Fprintln(a.stdout, "No drift: every object roster owns on pexip matches the state.")
		return nil
	}
	for _, d := range drift {
		line := fmt.Sprintf("%-8s %-6s %s", d.Status, d.Kind, d.Key)
		if len(d.Fields) > 0 {
			line += " (" + strings.Join(d.Fields, ", ") + ")"
		}
		fmt.Fprintln(a.stdout, line)
	}
	fmt.Fprintf(a.stdout, "%d objects drifted; the next `roster apply` (or the daemon's next cycle) repairs them.\n", len(drift))
	return exitError{code: 2}
}

// runAdopt: `roster platform adopt [--apply]` lists the objects on Pexip that match what
// roster would own and the fields it would still change; --apply takes ownership in one
// transaction (no created email); the next apply pushes only the differences.
func runAdopt(ctx context.Context, a *app) error {
	p, repo, commit, err := a.loadSource(ctx)
	if err != nil {
		return err
	}
	res, err := p.Adopt(ctx, repo, commit, a.opt.adoptApply)
	if err != nil {
		return err
	}
	for _, ad := range res.Adopted {
		line := fmt.Sprintf("adopt %-6s %s (id %d)", ad.Kind, ad.Key, ad.ID)
		if len(ad.Fields) > 0 {
			line += ", would change: " + strings.Join(ad.Fields, ", ")
		}
		fmt.Fprintln(a.stdout, line)
	}
	for _, c := range res.Conflicts {
		fmt.Fprintf(a.stdout, "conflict %-6s %s (id %d) %s: left alone\n", c.Kind, c.Key, c.ID, c.Conflict)
	}
	if len(res.Conflicts) > 0 {
		fmt.Fprintf(a.stdout, "%d objects roster would own belong to someone else: roster leaves them alone and its push reports them as conflicts.\n", len(res.Conflicts))
	}
	switch {
	case len(res.Adopted) == 0:
		fmt.Fprintln(a.stdout, "Nothing to adopt: no object on pexip matches one roster would own and does not.")
	case res.Applied:
		fmt.Fprintf(a.stdout, "Adopted %d objects; `roster apply` pushes their differences.\n", len(res.Adopted))
	default:
		fmt.Fprintf(a.stdout, "%d objects would be adopted; run again with --apply to take ownership.\n", len(res.Adopted))
	}
	return nil
}
