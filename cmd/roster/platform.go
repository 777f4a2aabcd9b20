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
	if len(rest) != 1 || rest[0] != "check" {
		return fmt.Errorf("platform: usage: roster platform check")
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
