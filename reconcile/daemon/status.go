package daemon

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
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
	// DirectoryReads are the templates read incrementally, with their protocol.
	DirectoryReads []DirectoryRead    `json:"incremental_reads"`
	Outbox         map[string]int     `json:"outbox"`
	FailedEmails   []FailedEmail      `json:"failed_emails"`
	Invites        []PendingInvite    `json:"pending_invites"`
	Objects        map[string]int     `json:"objects"`
	Recent         []state.AuditEntry `json:"recent_changes"`
	// Announcements are the announcements sent, newest first, with their delivery.
	Announcements []state.AnnouncementStatus `json:"announcements"`
	// Platforms is each platform's queue (SPEC §8): operations by status, the
	// failed and conflicting ones, and the emails waiting for their objects' push.
	Platforms map[string]*PlatformQueue `json:"platforms,omitempty"`
	// Daemon is filled by `serve` only.
	Daemon *LoopStatus `json:"daemon,omitempty"`
	// Policy is the policy endpoint's state, in policy mode only.
	Policy *PolicyStatus `json:"policy,omitempty"`
}

// PlatformQueue is one platform's queue as status shows it.
type PlatformQueue struct {
	Counts map[string]int `json:"counts"` // pending, sending, done, failed, conflict
	// Stuck lists failed and conflicting operations: they stay until an operator fixes
	// the cause, and their objects' emails wait.
	Stuck []PlatformProblem `json:"stuck,omitempty"`
	// EmailsWaiting counts pending emails whose object's push is not done (all platforms).
	EmailsWaiting int `json:"emails_waiting"`
	// Push is the daemon's running push, when one runs.
	Push *PushProgress `json:"push,omitempty"`
}

// PlatformProblem is an operation that failed or met an object roster does not own.
type PlatformProblem struct {
	ID       int64  `json:"id"`
	Status   string `json:"status"`
	Op       string `json:"op"`
	Resource string `json:"resource"`
	Key      string `json:"key"`
	Error    string `json:"error"`
}

// PushProgress is where the daemon's push stands.
type PushProgress struct {
	Done      int     `json:"done"`
	Total     int     `json:"total"`
	RatePerS  float64 `json:"rate_per_s"`
	ETASecond int64   `json:"eta_seconds"`
}

// readPlatforms fills s.Platforms from the queue; nothing when no operation was queued.
func readPlatforms(ctx context.Context, db *state.DB, s *Status) error {
	counts, err := db.PlatformCounts(ctx)
	if err != nil || len(counts) == 0 {
		return err
	}
	waiting, err := db.EmailsWaitingForPlatform(ctx)
	if err != nil {
		return err
	}
	s.Platforms = map[string]*PlatformQueue{}
	for name, c := range counts {
		s.Platforms[name] = &PlatformQueue{Counts: c, EmailsWaiting: waiting}
	}
	for _, st := range []string{state.PlatformFailed, state.PlatformConflict} {
		ops, err := db.PlatformOpsByStatus(ctx, st, 50)
		if err != nil {
			return err
		}
		for _, o := range ops {
			if q := s.Platforms[o.Platform]; q != nil {
				q.Stuck = append(q.Stuck, PlatformProblem{ID: o.ID, Status: o.Status, Op: o.Op, Resource: o.Resource,
					Key: o.ObjectKey, Error: o.LastError})
			}
		}
	}
	return nil
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
	if s.DirectoryReads, err = directoryReads(ctx, db); err != nil {
		return nil, fmt.Errorf("read status: %w", err)
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
	if s.Announcements, err = db.Announcements(ctx, 20); err != nil {
		return nil, err
	}
	if err := readPlatforms(ctx, db, s); err != nil {
		return nil, fmt.Errorf("read status: %w", err)
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
	writeDirectoryReads(w, s.DirectoryReads)
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
	if len(s.Announcements) > 0 {
		fmt.Fprintln(w, "Announcements:")
		for _, an := range s.Announcements {
			commit := shortCommit(an.Commit)
			if commit == "" {
				commit = "a working tree"
			}
			fmt.Fprintf(w, "  %s %q applied %s (%s): %d emails, %d sent, %d pending, %d failed\n", an.ID, an.Subject,
				an.AppliedAt.Format("2006-01-02 15:04 MST"), commit, an.Recipients, an.Outbox[state.OutboxSent],
				an.Outbox[state.OutboxPending]+an.Outbox[state.OutboxSending], an.Outbox[state.OutboxFailed])
		}
	}
	for _, name := range slices.Sorted(maps.Keys(s.Platforms)) {
		q := s.Platforms[name]
		parts = parts[:0]
		for _, st := range []string{"pending", "sending", "done", "failed", "conflict"} {
			parts = append(parts, fmt.Sprintf("%d %s", q.Counts[st], st))
		}
		fmt.Fprintf(w, "Platform %s: %s; %d emails wait for their push.\n", name, strings.Join(parts, ", "), q.EmailsWaiting)
		if q.Push != nil && q.Push.Done < q.Push.Total {
			fmt.Fprintf(w, "  pushing: %d/%d, %.1f/s, %s left\n", q.Push.Done, q.Push.Total, q.Push.RatePerS,
				time.Duration(q.Push.ETASecond)*time.Second)
		}
		for _, p := range q.Stuck {
			fmt.Fprintf(w, "  %s operation #%d %s %s %q: %s\n", p.Status, p.ID, p.Op, p.Resource, p.Key, p.Error)
		}
	}
	s.Policy.writeText(w, time.Now())
	if len(s.Invites) > 0 {
		fmt.Fprintln(w, "Pending invitations:")
		for _, in := range s.Invites {
			fmt.Fprintf(w, "  %s expires %s (%s)\n", in.Email, in.ExpiresAt.Format("2006-01-02 15:04 MST"), in.TimeLeft)
		}
	}
}
