package main

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// runOutbox: `roster outbox drop ID` gives up on a failed or pending email;
// `roster outbox retry ID` sends a failed one again with three fresh tries. `roster
// status` lists failed emails with their ids.
func runOutbox(ctx context.Context, a *app, args []string) error {
	fs := a.flags("outbox", false)
	rest, err := a.parse(fs, args, 2)
	if err != nil {
		return err
	}
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
	defer a.close()
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
