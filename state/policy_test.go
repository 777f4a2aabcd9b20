package state

import (
	"context"
	"testing"
)

// TestPolicySnapshot reads a real SQLite file: rooms with their aliases in order, devices
// with passwords, the state version as label; a deleted row is never answered.
func TestPolicySnapshot(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	const ts = "2026-01-01T00:00:00Z"
	for _, q := range []string{
		`INSERT INTO meta(key, value) VALUES ('state_version', '7') ON CONFLICT(key) DO UPDATE SET value = excluded.value`,
		`INSERT INTO vmrs(id, name, pin, guest_pin, allow_guests, max_callrate_in, max_callrate_out, participant_limit, tag, owner_email, sync_tag, created_at, updated_at)
		 VALUES (1, 'Alice', '1234', '5678', 1, 2048, 1024, 10, 'staff', 'alice@example.com', 'staff', '` + ts + `', '` + ts + `'),
		        (2, 'Bob', '', '', 0, 0, 0, 0, 'staff', 'bob@example.com', 'staff', '` + ts + `', '` + ts + `'),
		        (3, 'NoAlias', '', '', 0, 0, 0, 0, 'staff', '', 'staff', '` + ts + `', '` + ts + `'),
		        (4, 'Gone', '9999', '', 0, 0, 0, 0, 'staff', '', 'staff', '` + ts + `', '` + ts + `')`,
		`INSERT INTO vmr_aliases(alias, vmr_id, pos) VALUES ('meet.alice@example.com', 1, 0), ('8801', 1, 1),
		 ('meet.bob@example.com', 2, 0), ('meet.gone@example.com', 4, 0)`,
		`INSERT INTO devices(id, alias, username, password, sync_tag, created_at, updated_at)
		 VALUES (1, 'alice.dev@example.com', 'alice.dev', 's3cret', 'staff', '` + ts + `', '` + ts + `')`,
		`DELETE FROM vmrs WHERE id = 4`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	snap, err := db.PolicySnapshot(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	st := snap.Stats()
	if st.Version != "state 7" || st.Rooms != 2 || st.Devices != 1 {
		t.Errorf("stats = %+v, want version \"state 7\", 2 rooms (one without alias left out), 1 device", st)
	}
	for alias, want := range map[string]string{"sip:Meet.Alice@example.com": "Alice", "8801": "Alice", "meet.bob@example.com": "Bob"} {
		r, ok := snap.LookupRoom(alias)
		if !ok || r.Name != want {
			t.Errorf("LookupRoom(%q) = %q, %v; want %q", alias, r.Name, ok, want)
		}
	}
	r, _ := snap.LookupRoom("8801")
	if r.PIN != "1234" || r.GuestPIN != "5678" || !r.AllowGuests || r.MaxCallrateIn != 2048 || r.MaxCallrateOut != 1024 ||
		r.ParticipantLimit != 10 || r.ServiceTag != "staff" || r.OwnerEmail != "alice@example.com" {
		t.Errorf("room = %+v", r)
	}
	if _, ok := snap.LookupRoom("meet.gone@example.com"); ok {
		t.Error("a deleted room is answered")
	}
	d, ok := snap.LookupDevice("alice.dev@example.com")
	if !ok || d.Username != "alice.dev" || d.Password != "s3cret" {
		t.Errorf("device = %+v, %v", d, ok)
	}
}

// BenchmarkPolicySnapshot reads 100,000 rooms (two aliases each) and 100,000 devices
// from a real SQLite file into a snapshot: the rebuild after each apply.
func BenchmarkPolicySnapshot(b *testing.B) {
	ctx := context.Background()
	db, err := Open(ctx, b.TempDir()+"/roster.db")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	const n = 100000
	for _, q := range []string{
		`WITH RECURSIVE i(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM i WHERE x < 100000)
		 INSERT INTO vmrs(id, name, pin, tag, owner_email, sync_tag, created_at, updated_at)
		 SELECT x, 'Room ' || x, printf('%06d', x), 'staff', 'u' || x || '@example.com', 'staff', 't', 't' FROM i`,
		`INSERT INTO vmr_aliases(alias, vmr_id, pos) SELECT 'meet.' || id || '@example.com', id, 0 FROM vmrs`,
		`INSERT INTO vmr_aliases(alias, vmr_id, pos) SELECT printf('%07d', id), id, 1 FROM vmrs`,
		`INSERT INTO devices(id, alias, username, password, sync_tag, created_at, updated_at)
		 SELECT id, 'dev.' || id || '@example.com', 'u' || id, printf('%012d', id), 'staff', 't', 't' FROM vmrs`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for b.Loop() {
		snap, err := db.PolicySnapshot(ctx, 0)
		if err != nil {
			b.Fatal(err)
		}
		if st := snap.Stats(); st.Rooms != n || st.Devices != n {
			b.Fatalf("stats = %+v", st)
		}
	}
}
