package state

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/roster-dev/roster/schema/account"
)

// refFixture writes a VMR with aliases, a device and a user, and one email by reference
// to each; it returns the objects as written.
func refFixture(t *testing.T) (*DB, *account.VMR, *account.Device, *account.User) {
	t.Helper()
	v := &account.VMR{Name: "Ann's room", Description: "Room <of> Ann", PIN: "1234", AllowGuests: true, MaxCallrateIn: 4128,
		ParticipantLimit: 5, Tag: "staff", OwnerEmail: "ann@example.com", SyncTag: "staff", EntryKey: "k1",
		Aliases: []string{"ann@vc.example.com", "4711"}}
	d := &account.Device{Alias: "ann@dev.example.com", Username: "ann", Password: "s3cret", OwnerEmail: "ann@example.com", SyncTag: "staff"}
	u := &account.User{UserID: "17", Email: "ann@example.com", FirstName: "Ann", LastName: "Öberg", Active: true, Origin: "remote", License: "paid"}
	db := withWriter(t, func(tx *sqlx.Tx, w *Writer) error {
		if err := w.InsertVMR(v); err != nil {
			return err
		}
		if err := w.InsertDevice(d); err != nil {
			return err
		}
		if err := w.InsertUser(u); err != nil {
			return err
		}
		return w.Flush() // ids are known; the emails follow their rows
	})
	applyRefs(t, db, func(w *Writer) error {
		for _, e := range refEmails(v, d, u) {
			if err := w.Enqueue(&e); err != nil {
				return err
			}
		}
		return nil
	})
	return db, v, d, u
}

// refEmails are one email by reference to each of v, d and u.
func refEmails(v *account.VMR, d *account.Device, u *account.User) []Email {
	body := "{{ name }} {{ aliases }} {{ aliases_list }} {{ pin }} {{ allow_guests }} {{ max_callrate_in }} {{ uri_alias }} " +
		"{{ device_alias }} {{ device_password }} {{ first_name }} {{ userid }} {{ action }}"
	return []Email{
		{Kind: "vmr", Action: "created", ObjectKey: v.Name, To: v.OwnerEmail, Subject: "Room", Body: body, Ref: v.ID, Audited: true, Actor: "test"},
		{Kind: "device", Action: "updated", ObjectKey: d.Alias, To: d.OwnerEmail, Subject: "Device", Body: body, Ref: d.ID, Audited: true, Actor: "test"},
		{Kind: "activation", Action: "created", ObjectKey: u.Email, To: u.Email, Subject: "Welcome", Body: body, Ref: u.ID, Audited: true, Actor: "test"},
	}
}

// applyRefs runs fn with a writer in a transaction of its own.
func applyRefs(t *testing.T, db *DB, fn func(w *Writer) error) {
	t.Helper()
	ctx := context.Background()
	check(t, db.InTx(ctx, func(tx *sqlx.Tx) error {
		w, err := NewWriter(ctx, tx, time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
		if err != nil {
			return err
		}
		defer w.Close()
		if err := fn(w); err != nil {
			return err
		}
		return w.Flush()
	}))
}

// byValue is the vars an email stores by value for the variables all (what the planner
// writes: the ones its template may read).
func byValue(t *testing.T, e Email, all []Var) string {
	t.Helper()
	used := []Var{}
	for _, v := range all {
		if MayRead(e.Subject, e.Body, v.Name) {
			used = append(used, v)
		}
	}
	b, err := appendVars(nil, &Email{VarList: used})
	check(t, err)
	return string(b)
}

// An update or delete of a row that outbox emails still reference is refused, whatever
// the writer path; the writer's own updates materialize the emails first, with the
// variables of the row as it was.
func TestOutboxRefGuardAndMaterialize(t *testing.T) {
	ctx := context.Background()
	guarded := []struct{ name, query string }{
		{"update vmr", `UPDATE vmrs SET description = 'x' WHERE id = ?`},
		{"delete vmr", `DELETE FROM vmrs WHERE id = ?`},
		{"update alias", `UPDATE vmr_aliases SET pos = pos + 10 WHERE vmr_id = ?`},
		{"delete alias", `DELETE FROM vmr_aliases WHERE vmr_id = ?`},
		{"update device", `UPDATE devices SET password = 'x' WHERE id = ?`},
		{"delete device", `DELETE FROM devices WHERE id = ?`},
		{"update user", `UPDATE users SET first_name = 'x' WHERE id = ?`},
		{"delete user", `DELETE FROM users WHERE id = ?`},
	}
	db, v, d, u := refFixture(t)
	ids := map[string]int64{"vmr": v.ID, "alias": v.ID, "device": d.ID, "user": u.ID}
	for _, g := range guarded {
		t.Run(g.name, func(t *testing.T) {
			id := ids[strings.Fields(g.name)[1]]
			_, err := db.ExecContext(ctx, g.query, id)
			if err == nil || !strings.Contains(err.Error(), "materialize them first") {
				t.Fatalf("%s of a referenced row: err = %v, want the guard's refusal", g.name, err)
			}
		})
	}

	emails := refEmails(v, d, u)
	want := []string{byValue(t, emails[0], AppendVMRVars(nil, v, "created")),
		byValue(t, emails[1], AppendDeviceVars(nil, d, "updated")), byValue(t, emails[2], AppendUserVars(nil, u, "created"))}
	for i := range emails { // read by reference: the same variables as by value
		r, err := db.OutboxEmail(ctx, int64(i+1))
		check(t, err)
		if r.RefID == nil || r.Vars != want[i] {
			t.Errorf("email %d by reference: ref %v vars %s, want %s", i+1, r.RefID, r.Vars, want[i])
		}
	}

	v2, d2, u2 := *v, *d, *u
	v2.Description, v2.Aliases, d2.Password, u2.FirstName = "changed", []string{"other@vc.example.com"}, "changed", "Changed"
	applyRefs(t, db, func(w *Writer) error {
		return errorsJoin(w.UpdateVMR(&v2), w.UpdateDevice(&d2), w.UpdateUser(&u2))
	})
	for i := range emails { // materialized: by value, as the rows were
		var vars string
		var ref *int64
		check(t, db.QueryRowContext(ctx, `SELECT vars, ref_id FROM outbox WHERE id = ?`, i+1).Scan(&vars, &ref))
		if ref != nil || vars != want[i] {
			t.Errorf("email %d after the update: ref %v vars %s, want %s", i+1, ref, vars, want[i])
		}
	}
	for _, g := range guarded { // nothing references the rows now
		if _, err := db.ExecContext(ctx, g.query, ids[strings.Fields(g.name)[1]]); err != nil && strings.Contains(err.Error(), "materialize") {
			t.Errorf("%s after materializing: %v", g.name, err)
		}
	}
}

func errorsJoin(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// A database of migration 005 (emails by value, an audit row per email) migrates: its
// emails are claimed with their variables, its audit rows still show, and the emails
// written afterwards show in the audit log after them, in order.
func TestMigrateFrom005(t *testing.T) {
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "old.db")
	raw, err := sqlx.Open(driverName, "file:"+p+"?_foreign_keys=on")
	check(t, err)
	entries, err := fs.ReadDir(migrations, "migrations")
	check(t, err)
	_, err = raw.Exec(`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`)
	check(t, err)
	for i, e := range entries {
		if e.Name() >= "006" {
			break
		}
		body, err := migrations.ReadFile(path.Join("migrations", e.Name()))
		check(t, err)
		_, err = raw.Exec(string(body))
		check(t, err)
		_, err = raw.Exec(`INSERT INTO schema_migrations VALUES (?, ?, '2026-01-01T00:00:00Z')`, i+1, e.Name())
		check(t, err)
	}
	at := "2026-11-01T09:00:00Z"
	for _, q := range []string{
		`INSERT INTO email_templates(hash, subject, body) VALUES ('h', 'Room {{ name }}', 'PIN {{ pin }}')`,
		`INSERT INTO outbox(created_at, commit_id, kind, action, object_key, to_addr, email_template, vars, next_attempt_at)
			VALUES ('` + at + `', 'c1', 'vmr', 'created', 'Old room', 'ann@example.com', 'h', '{"name":"Old room","pin":"1"}', '` + at + `')`,
		`INSERT INTO audit(at, commit_id, actor, kind, action, key, detail) VALUES ('` + at + `', 'c1', 'cli:apply', 'vmr', 'create', 'Old room', '')`,
		`INSERT INTO audit(at, commit_id, actor, kind, action, key, detail) VALUES ('` + at + `', 'c1', 'cli:apply', 'email', 'created', 'vmr Old room', 'to ann@example.com')`,
	} {
		_, err := raw.Exec(q)
		check(t, err)
	}
	check(t, raw.Close())

	db, err := Open(ctx, p)
	check(t, err)
	defer db.Close()
	old, err := db.RecentAudit(ctx, 10)
	check(t, err)
	rows, err := db.ClaimDue(ctx, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), 10)
	check(t, err)
	if len(rows) != 1 || rows[0].Vars != `{"name":"Old room","pin":"1"}` || rows[0].RefID != nil {
		t.Fatalf("claimed after migrating: %+v", rows)
	}

	v := &account.VMR{Name: "New room", PIN: "2", OwnerEmail: "bob@example.com", SyncTag: "staff"}
	applyRefs(t, db, func(w *Writer) error {
		if err := w.InsertVMR(v); err != nil {
			return err
		}
		if err := w.Audit("c2", "daemon", account.KindVMR, account.ActionCreate, v.Name, ""); err != nil {
			return err
		}
		if err := w.Flush(); err != nil {
			return err
		}
		if err := w.Enqueue(&Email{Kind: "vmr", Action: "created", ObjectKey: v.Name, To: v.OwnerEmail, Commit: "c2",
			Subject: "Room {{ name }}", Body: "PIN {{ pin }}", Ref: v.ID, Audited: true, Actor: "daemon"}); err != nil {
			return err
		}
		return w.Audit("c2", "daemon", account.KindReminder, account.ActionDone, "r1", "")
	})
	got, err := db.RecentAudit(ctx, 10)
	check(t, err)
	now := FormatTime(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
	want := append([]AuditEntry{
		{At: now, Commit: "c2", Actor: "daemon", Kind: "reminder", Action: "done", Key: "r1"},
		{At: now, Commit: "c2", Actor: "daemon", Kind: "email", Action: "created", Key: "vmr New room", Detail: "to bob@example.com"},
		{At: now, Commit: "c2", Actor: "daemon", Kind: "vmr", Action: "create", Key: "New room"},
	}, old...)
	if len(old) != 2 || !reflect.DeepEqual(got, want) {
		t.Errorf("audit after migrating:\n got %s\nwant %s", fmt.Sprint(got), fmt.Sprint(want))
	}
	r, err := db.OutboxEmail(ctx, 2)
	check(t, err)
	if r.RefID == nil || r.Vars != `{"name":"New room","pin":"2"}` {
		t.Errorf("new email after migrating: ref %v vars %s", r.RefID, r.Vars)
	}
}

// BenchmarkClaimDueRefs: claiming 1,000 VMR emails that reference their rows (the
// variables made from each row at claim) against 1,000 stored by value.
func BenchmarkClaimDueRefs(b *testing.B) {
	ctx := context.Background()
	for _, byRef := range []bool{true, false} {
		b.Run(fmt.Sprint("ref=", byRef), func(b *testing.B) {
			db, err := Open(ctx, filepath.Join(b.TempDir(), "c.db"))
			check(b, err)
			defer db.Close()
			t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
			var n int
			for b.Loop() {
				b.StopTimer()
				check(b, db.InTx(ctx, func(tx *sqlx.Tx) error {
					w, err := NewWriter(ctx, tx, t0)
					if err != nil {
						return err
					}
					defer w.Close()
					for i := range 1000 {
						n++
						v := &account.VMR{Name: fmt.Sprintf("Room %d", n), PIN: "123456", OwnerEmail: "a@example.com", SyncTag: "t",
							Aliases: []string{fmt.Sprintf("r%d@vc.example.com", n), fmt.Sprint(100000 + n)}}
						if err := w.InsertVMR(v); err != nil {
							return err
						}
						if i == 999 {
							if err := w.Flush(); err != nil {
								return err
							}
						}
					}
					return w.Flush()
				}))
				check(b, db.InTx(ctx, func(tx *sqlx.Tx) error {
					w, err := NewWriter(ctx, tx, t0)
					if err != nil {
						return err
					}
					defer w.Close()
					for id := int64(n - 999); id <= int64(n); id++ {
						v := &account.VMR{ID: id, Name: fmt.Sprintf("Room %d", id), PIN: "123456", OwnerEmail: "a@example.com", SyncTag: "t",
							Aliases: []string{fmt.Sprintf("r%d@vc.example.com", id), fmt.Sprint(100000 + id)}}
						e := Email{Kind: "vmr", Action: "created", ObjectKey: v.Name, To: v.OwnerEmail, Subject: "Room {{ name }}",
							Body: "{{ name }} {{ pin }} {{ aliases }} {{ uri_alias }} {{ numeric_alias }} {{ action }}"}
						if byRef {
							e.Ref = v.ID
						} else {
							e.VarList = AppendVMRVars(nil, v, "created")
						}
						if err := w.Enqueue(&e); err != nil {
							return err
						}
					}
					return w.Flush()
				}))
				b.StartTimer()
				rows, err := db.ClaimDue(ctx, t0, 1000)
				check(b, err)
				if len(rows) != 1000 {
					b.Fatalf("claimed %d", len(rows))
				}
			}
		})
	}
}
