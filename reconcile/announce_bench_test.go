package reconcile

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/roster-dev/roster/schema"
	"github.com/roster-dev/roster/schema/account"
	"github.com/roster-dev/roster/state"
)

// BenchmarkAnnouncement50k plans one announcement to 50,000 active users (plus a bcc copy)
// and applies it: 50,001 outbox rows and their audit rows in one transaction on a fresh
// SQLite database. The goal is under 2 s per announcement (issue 16); the plan and the
// apply are reported apart (plan-ms, apply-ms).
func BenchmarkAnnouncement50k(b *testing.B) {
	const n = 50000
	ctx := context.Background()
	users := make([]*account.User, n)
	for i := range users {
		users[i] = &account.User{Email: fmt.Sprintf("user%05d@example.com", i), FirstName: "First", LastName: fmt.Sprint("Last", i), Active: true}
	}
	an := &schema.Announcement{ID: "2026-12-maintenance", Subject: "Maintenance on Saturday", Body: "<p>Hello {{ first_name }}</p>",
		BodyFile: "emails/m.html", HTML: true, To: schema.Recipients{"all_active_users"}, Bcc: schema.Recipients{"it@example.com"},
		Targets: []schema.Target{{Kind: schema.TargetAllActiveUsers}}}
	d := &Desired{Announcements: []*schema.Announcement{an}}
	var planned, applied time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		db, err := state.Open(ctx, filepath.Join(b.TempDir(), "state.db"))
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		p := &Plan{FormatVersion: FormatVersion}
		planAnnouncements(p, d, &state.Actual{Users: users})
		p.finish()
		mid := time.Now()
		res, err := Apply(ctx, db, p, ApplyOptions{Actor: "bench", Now: time.Now()}, false)
		if err != nil {
			b.Fatal(err)
		}
		planned, applied = planned+mid.Sub(start), applied+time.Since(mid)
		b.StopTimer()
		counts, err := db.OutboxCounts(ctx)
		if err != nil || res.Emails != n+1 || counts[state.OutboxPending] != n+1 {
			b.Fatalf("enqueued %d emails, outbox %v, err %v; want %d", res.Emails, counts, err, n+1)
		}
		db.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(planned.Milliseconds())/float64(b.N), "plan-ms")
	b.ReportMetric(float64(applied.Milliseconds())/float64(b.N), "apply-ms")
}
