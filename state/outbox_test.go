package state

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
)

func openTestDB(t *testing.T) *DB {
	t.Helper()
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), "roster.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func enqueue(t *testing.T, db *DB, now time.Time, emails []Email) {
	t.Helper()
	if err := db.InTx(context.Background(), func(tx *sqlx.Tx) error { return Enqueue(context.Background(), tx, now, emails) }); err != nil {
		t.Fatal(err)
	}
}

func testEmails(n int) []Email {
	var out []Email
	for i := range n {
		out = append(out, Email{
			Kind: "vmr", Action: "created", ObjectKey: fmt.Sprintf("Room %d", i), Template: "staff",
			To: fmt.Sprintf("u%d@example.com", i), Commit: "abc",
			Subject: "Your room {{ name }}", Body: "<p>Hi</p>", BodyPath: "emails/vmr.html", HTML: true,
			Vars: map[string]any{"name": fmt.Sprintf("Room %d", i), "max_callrate_in": 4128, "allow_guests": true},
		})
	}
	return out
}

func TestEnqueueDeduplicatesTemplatesAndKeepsVars(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	emails := testEmails(3)
	emails[2].Subject = "Other {{ name }}"
	enqueue(t, db, now, emails)
	enqueue(t, db, now, testEmails(2)) // same template again: still one row for it

	var nt, no int
	db.Get(&nt, `SELECT COUNT(*) FROM email_templates`)
	db.Get(&no, `SELECT COUNT(*) FROM outbox`)
	if nt != 2 || no != 5 {
		t.Fatalf("templates = %d (want 2), outbox = %d (want 5)", nt, no)
	}
	rows, err := db.ClaimDue(ctx, now, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 5 {
		t.Fatalf("claimed %d rows, want 5", len(rows))
	}
	r := rows[0]
	if r.Subject != "Your room {{ name }}" || !r.HTML || r.BodyPath != "emails/vmr.html" || r.To != "u0@example.com" || r.Status != OutboxSending {
		t.Errorf("row 0 = %+v", r)
	}
	if rows[2].Subject != "Other {{ name }}" {
		t.Errorf("row 2 subject = %q", rows[2].Subject)
	}
	vars, err := r.DecodeVars()
	if err != nil {
		t.Fatal(err)
	}
	if vars["max_callrate_in"] != int64(4128) || vars["allow_guests"] != true || vars["name"] != "Room 0" {
		t.Errorf("vars = %#v", vars)
	}
}

func TestClaimDueLeasesAndLifecycle(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	enqueue(t, db, now, testEmails(4))

	if rows, _ := db.ClaimDue(ctx, now.Add(-time.Second), 10); len(rows) != 0 {
		t.Fatalf("claimed %d rows before they were due", len(rows))
	}
	first, err := db.ClaimDue(ctx, now, 3)
	if err != nil || len(first) != 3 {
		t.Fatalf("claimed %d, %v; want 3", len(first), err)
	}
	// A second deliverer gets only what is left.
	second, _ := db.ClaimDue(ctx, now, 10)
	if len(second) != 1 || second[0].ID == first[0].ID {
		t.Fatalf("second claim = %d rows", len(second))
	}
	if err := db.MarkSent(ctx, first[0].ID, "<m0@example.com>", now); err != nil {
		t.Fatal(err)
	}
	if err := db.MarkRetry(ctx, first[1].ID, 1, now.Add(time.Second), "451 try later"); err != nil {
		t.Fatal(err)
	}
	if err := db.MarkFailed(ctx, first[2].ID, 3, "550 no such user"); err != nil {
		t.Fatal(err)
	}
	// A sent row never changes again.
	if err := db.MarkRetry(ctx, first[0].ID, 1, now, "late"); err != nil {
		t.Fatal(err)
	}
	counts, err := db.OutboxCounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"pending": 1, "sending": 1, "sent": 1, "failed": 1, "dropped": 0}
	if fmt.Sprint(counts) != fmt.Sprint(want) {
		t.Errorf("counts = %v, want %v", counts, want)
	}
	sent, _ := db.OutboxEmail(ctx, first[0].ID)
	if sent.Status != OutboxSent || sent.MessageID != "<m0@example.com>" || sent.SentAt == nil {
		t.Errorf("sent row = %+v", sent)
	}
	// The retried row is due again only at its next attempt.
	if rows, _ := db.ClaimDue(ctx, now.Add(500*time.Millisecond), 10); len(rows) != 0 {
		t.Errorf("retry claimed early: %d rows", len(rows))
	}
	rows, _ := db.ClaimDue(ctx, now.Add(2*time.Second), 10)
	if len(rows) != 1 || rows[0].ID != first[1].ID || rows[0].Attempts != 1 || rows[0].LastError != "451 try later" {
		t.Errorf("retry claim = %+v", rows)
	}
	// A "sending" row whose lease expired (its deliverer stopped) is claimed again.
	rows, _ = db.ClaimDue(ctx, now.Add(ClaimLease+time.Minute), 10)
	if len(rows) != 2 {
		t.Errorf("after the lease: claimed %d rows, want 2", len(rows))
	}

	failed, err := db.FailedEmails(ctx, 10)
	if err != nil || len(failed) != 1 || failed[0].LastError != "550 no such user" || failed[0].Attempts != 3 {
		t.Fatalf("failed = %+v, %v", failed, err)
	}
	if err := db.DropEmail(ctx, first[0].ID); err == nil || !strings.Contains(err.Error(), "is sent") {
		t.Errorf("dropping a sent email: %v", err)
	}
	if err := db.DropEmail(ctx, 9999); err == nil || !strings.Contains(err.Error(), "no such email") {
		t.Errorf("dropping a missing email: %v", err)
	}
	if err := db.RequeueEmail(ctx, failed[0].ID, now); err != nil {
		t.Fatal(err)
	}
	if err := db.MarkFailed(ctx, failed[0].ID, 3, "again"); err != nil {
		t.Fatal(err)
	}
	if err := db.DropEmail(ctx, failed[0].ID); err != nil {
		t.Fatal(err)
	}
	counts, _ = db.OutboxCounts(ctx)
	if counts["dropped"] != 1 || counts["failed"] != 0 {
		t.Errorf("after drop: %v", counts)
	}
}

func TestReleaseClaims(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	enqueue(t, db, now, testEmails(3))
	claimed, _ := db.ClaimDue(ctx, now, 2)
	db.MarkSent(ctx, claimed[0].ID, "<x>", now)
	n, err := db.ReleaseClaims(ctx, now)
	if err != nil || n != 1 {
		t.Fatalf("released %d, %v; want 1", n, err)
	}
	rows, _ := db.ClaimDue(ctx, now, 10)
	if len(rows) != 2 || rows[0].ID != claimed[1].ID {
		t.Errorf("after release: %+v", rows)
	}
}

func TestRecordOutcomesRejectsBadStatus(t *testing.T) {
	db := openTestDB(t)
	if err := db.RecordOutcomes(context.Background(), []Outcome{{ID: 1, Status: "bogus"}}); err == nil {
		t.Error("bad status accepted")
	}
}

func BenchmarkEnqueue1000(b *testing.B) {
	db, err := Open(context.Background(), filepath.Join(b.TempDir(), "roster.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	emails := testEmails(1000)
	now := time.Now()
	b.ResetTimer()
	for b.Loop() {
		if err := db.InTx(context.Background(), func(tx *sqlx.Tx) error { return Enqueue(context.Background(), tx, now, emails) }); err != nil {
			b.Fatal(err)
		}
	}
}
