package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/roster-dev/roster/reconcile/daemon"
)

// runOutbox: `roster outbox drop ID` gives up on a failed or pending email;
// `roster outbox retry ID` sends a failed one again with three fresh tries. `roster
// status` lists failed emails with their ids.
func runOutbox(ctx context.Context, a *app, rest []string) error {
	if len(rest) != 2 || (rest[0] != "drop" && rest[0] != "retry") {
		return fmt.Errorf("outbox: usage: roster outbox drop|retry ID (ids are in `roster status`)")
	}
	id, err := strconv.ParseInt(rest[1], 10, 64)
	if err != nil {
		return fmt.Errorf("outbox: %q is not an email id (ids are in `roster status`)", rest[1])
	}
	db, err := a.database(ctx)
	if err != nil {
		return err
	}
	if rest[0] == "drop" {
		if err := db.DropEmail(ctx, id); err != nil {
			return err
		}
		fmt.Fprintf(a.stdout, "Email #%d dropped.\n", id)
		return nil
	}
	if err := db.RequeueEmail(ctx, id, time.Now()); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "Email #%d queued again; `roster apply` or the daemon delivers it.\n", id)
	return nil
}

// runStatus: `roster status [--format json]`: the state database's view, and in policy mode
// the running daemon's policy endpoint.
func runStatus(ctx context.Context, a *app, _ []string) error {
	db, err := a.database(ctx)
	if err != nil {
		return err
	}
	s, err := daemon.ReadStatus(ctx, db, time.Now())
	if err != nil {
		return err
	}
	cfg, err := a.config()
	if err != nil {
		return err
	}
	// The policy endpoint lives in the daemon's memory: its running state comes from it.
	s.Policy = daemon.QueryPolicyStatus(ctx, cfg)
	if a.opt.format == "json" {
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
	}
	s.WriteText(a.stdout)
	return nil
}
