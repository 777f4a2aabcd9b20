package daemon

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/roster-dev/roster/state"
)

// Status is what `roster status`, /api/status and the status page show.
type Status struct {
	StateVersion  int64              `json:"state_version"`
	AppliedCommit string             `json:"applied_commit"`
	Templates     []state.SyncStatus `json:"templates"`
	Outbox        map[string]int     `json:"outbox"`
	FailedEmails  []FailedEmail      `json:"failed_emails"`
	Invites       []PendingInvite    `json:"pending_invites"`
	Objects       map[string]int     `json:"objects"`
	Recent        []state.AuditEntry `json:"recent_changes"`
	// Daemon is filled by `serve` only.
	Daemon *LoopStatus `json:"daemon,omitempty"`
	// Policy is the policy endpoint's state, in policy mode only.
	Policy *PolicyStatus `json:"policy,omitempty"`
}

// FailedEmail is an email that gave up; it stays visible until requeued or dropped.
type FailedEmail struct {
	ID    int64  `json:"id"`
	To    string `json:"to"`
	Kind  string `json:"kind"`
	Key   string `json:"key"`
	Error string `json:"error"`
}

// PendingInvite is an invitation not yet accepted, with its expiry.
type PendingInvite struct {
	Email     string    `json:"email"`
	ExpiresAt time.Time `json:"expires_at"`
	TimeLeft  string    `json:"time_left"`
	Expired   bool      `json:"expired"`
}

// ReadStatus reads the status from the database; it works with or without a daemon.
func ReadStatus(ctx context.Context, db *state.DB, now time.Time) (*Status, error) {
	s := &Status{}
	var err error
	if s.StateVersion, err = db.StateVersion(ctx); err != nil {
		return nil, err
	}
	if s.AppliedCommit, err = db.Meta(ctx, "applied_commit"); err != nil {
		return nil, err
	}
	if s.Templates, err = db.SyncStatuses(ctx); err != nil {
		return nil, err
	}
	if s.Outbox, err = db.OutboxCounts(ctx); err != nil {
		return nil, err
	}
	failed, err := db.FailedEmails(ctx, 50)
	if err != nil {
		return nil, err
	}
	for _, f := range failed {
		s.FailedEmails = append(s.FailedEmails, FailedEmail{ID: f.ID, To: f.To, Kind: f.Kind, Key: f.ObjectKey, Error: f.LastError})
	}
	if s.Objects, err = db.ObjectCounts(ctx); err != nil {
		return nil, fmt.Errorf("read status: %w", err)
	}
	invites, err := db.PendingInvites(ctx, 200)
	if err != nil {
		return nil, fmt.Errorf("read status: %w", err)
	}
	for _, in := range invites {
		left := in.ExpiresAt.Sub(now)
		pi := PendingInvite{Email: in.Email, ExpiresAt: in.ExpiresAt, Expired: left <= 0}
		if left > 0 {
			pi.TimeLeft = humanDuration(left)
		} else {
			pi.TimeLeft = "expired " + humanDuration(-left) + " ago (frees its licence at the next sync)"
		}
		s.Invites = append(s.Invites, pi)
	}
	if s.Recent, err = db.RecentAudit(ctx, 20); err != nil {
		return nil, err
	}
	return s, nil
}

func humanDuration(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%dd %dh", int(d.Hours())/24, int(d.Hours())%24)
	case d >= time.Hour:
		return fmt.Sprintf("%dh %dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dm", int(d.Minutes()))
}

// WriteText prints the status for `roster status`.
func (s *Status) WriteText(w io.Writer) {
	commit := s.AppliedCommit
	if commit == "" {
		commit = "(none)"
	}
	fmt.Fprintf(w, "State version %d, applied commit %s.\n", s.StateVersion, commit)
	if s.Daemon != nil {
		fmt.Fprintf(w, "Daemon: %s, last good commit %s, last run %s.\n", s.Daemon.State, s.Daemon.GoodCommit, s.Daemon.LastRun.Format(time.RFC3339))
		if s.Daemon.LastError != "" {
			fmt.Fprintf(w, "Daemon error: %s\n", s.Daemon.LastError)
		}
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nTEMPLATE\tSTATE\tLAST RUN\tCREATED\tUPDATED\tDELETED\tDEACTIVATED\tUNCHANGED\tWARNINGS\tLAST ERROR")
	for _, t := range s.Templates {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n", t.Template, t.State, t.LastRun.Format(time.RFC3339),
			t.Created, t.Updated, t.Deleted, t.Deactivated, t.Unchanged, len(t.Warnings), t.LastError)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nObjects: %d VMRs (%d aliases), %d devices, %d active users, %d deactivated, %d pending invitations.\n",
		s.Objects["vmrs"], s.Objects["aliases"], s.Objects["devices"], s.Objects["users_active"], s.Objects["users_deactivated"], s.Objects["invites_pending"])
	var parts []string
	for _, st := range []string{"pending", "sending", "sent", "failed", "dropped"} {
		parts = append(parts, fmt.Sprintf("%d %s", s.Outbox[st], st))
	}
	fmt.Fprintf(w, "Outbox: %s.\n", strings.Join(parts, ", "))
	for _, f := range s.FailedEmails {
		fmt.Fprintf(w, "  failed email #%d %s %s → %s: %s\n", f.ID, f.Kind, f.Key, f.To, f.Error)
	}
	if len(s.Invites) > 0 {
		fmt.Fprintln(w, "Pending invitations:")
		for _, in := range s.Invites {
			fmt.Fprintf(w, "  %s expires %s (%s)\n", in.Email, in.ExpiresAt.Format("2006-01-02 15:04 MST"), in.TimeLeft)
		}
	}
}
