package state

import (
	"context"
	"testing"
	"time"
)

// TestStatusQueries: the counts, pending invitations and admin emails of the status are
// read from a real database whose rows were written by plain SQL.
func TestStatusQueries(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	ts := FormatTime(now)
	for _, q := range []string{
		`INSERT INTO vmrs(id, name, sync_tag, created_at, updated_at) VALUES (1, 'A', 't', '` + ts + `', '` + ts + `'), (2, 'B', 't', '` + ts + `', '` + ts + `')`,
		`INSERT INTO vmr_aliases(alias, vmr_id, pos) VALUES ('a1', 1, 0), ('a2', 1, 1), ('b1', 2, 0)`,
		`INSERT INTO devices(alias, sync_tag, created_at, updated_at) VALUES ('d1', 't', '` + ts + `', '` + ts + `')`,
		`INSERT INTO users(userid, email, active, origin, created_at, updated_at) VALUES
			('u1', 'u1@x', 1, 'remote', '` + ts + `', '` + ts + `'), ('u2', 'u2@x', 1, 'local', '` + ts + `', '` + ts + `'),
			('u3', 'u3@x', 0, 'remote', '` + ts + `', '` + ts + `')`,
		`INSERT INTO invites(email, status, invited_at, expires_at) VALUES
			('late@x', 'pending', '` + ts + `', '` + FormatTime(now.Add(48*time.Hour)) + `'),
			('soon@x', 'pending', '` + ts + `', '` + FormatTime(now.Add(time.Hour)) + `'),
			('done@x', 'accepted', '` + ts + `', '` + FormatTime(now.Add(time.Hour)) + `')`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}

	counts, err := db.ObjectCounts(ctx)
	check(t, err)
	want := map[string]int{"vmrs": 2, "aliases": 3, "devices": 1, "users_active": 2, "users_deactivated": 1, "invites_pending": 2}
	for _, k := range ObjectKinds {
		if counts[k] != want[k] {
			t.Errorf("ObjectCounts[%s] = %d, want %d", k, counts[k], want[k])
		}
	}
	if len(counts) != len(ObjectKinds) {
		t.Errorf("ObjectCounts has %d kinds, want %d: %v", len(counts), len(ObjectKinds), counts)
	}

	for _, tc := range []struct {
		limit int
		want  []string
	}{{10, []string{"soon@x", "late@x"}}, {1, []string{"soon@x"}}} {
		inv, err := db.PendingInvites(ctx, tc.limit)
		check(t, err)
		var got []string
		for _, in := range inv {
			got = append(got, in.Email)
		}
		if len(got) != len(tc.want) || got[0] != tc.want[0] || got[len(got)-1] != tc.want[len(tc.want)-1] {
			t.Errorf("PendingInvites(%d) = %v, want %v", tc.limit, got, tc.want)
		}
		if !inv[0].ExpiresAt.Equal(now.Add(time.Hour)) {
			t.Errorf("PendingInvites(%d)[0].ExpiresAt = %v, want %v", tc.limit, inv[0].ExpiresAt, now.Add(time.Hour))
		}
	}

	check(t, db.EnqueueEmails(ctx, now, testEmails(3)))
	outbox, err := db.OutboxCounts(ctx)
	check(t, err)
	if outbox[OutboxPending] != 3 {
		t.Errorf("after EnqueueEmails: %v, want 3 pending", outbox)
	}
}
