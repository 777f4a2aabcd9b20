package main

import (
	"context"
	"encoding/json"
	"time"

	"github.com/roster-dev/roster/reconcile/daemon"
)

// runStatus: `roster status [--format json]`.
func runStatus(ctx context.Context, a *app, args []string) error {
	fs := a.flags("status", false)
	format := fs.String("format", "text", "text or json")
	if _, err := a.parse(fs, args, 0); err != nil {
		return err
	}
	db, err := a.database(ctx)
	if err != nil {
		return err
	}
	defer a.close()
	s, err := daemon.ReadStatus(ctx, db, time.Now())
	if err != nil {
		return err
	}
	if *format == "json" {
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
	}
	s.WriteText(a.stdout)
	return nil
}
