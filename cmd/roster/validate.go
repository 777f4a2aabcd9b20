package main

import (
	"context"
	"fmt"
)

// runValidate: `roster validate [--repo DIR]` — exit 0 and a one-line summary when the
// desired state is valid; otherwise every error, one per line as path:line:col: message.
func runValidate(ctx context.Context, a *app, _ []string) error {
	_, repo, commit, err := a.loadSource(ctx)
	if err != nil {
		return err
	}
	at := ""
	if commit != "" {
		at = " at " + commit[:min(12, len(commit))]
	}
	fmt.Fprintf(a.stdout, "valid%s: %d sync templates, %d declared VMRs, %d declared devices, %d CSV users, %d invitations, %d tracking-code groups, %d reminders, %d announcements.\n",
		at, len(repo.Templates), len(repo.VMRs), len(repo.Devices), len(repo.Users), len(repo.Invites), len(repo.TrackingCodes), len(repo.Reminders), len(repo.Announcements))
	return nil
}
