package state

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/roster-dev/roster/schema/account"
)

// TestWriterBatchErrorSurfaces: a full batch runs on the writer's goroutine; its failure
// (here a duplicate VMR name in the first batch) must come back from a later call or from
// Flush, and nothing of the transaction may stay.
func TestWriterBatchErrorSurfaces(t *testing.T) {
	for _, n := range []int{batchSize, 3 * batchSize, 3*batchSize + 7} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			ctx := context.Background()
			db, err := Open(ctx, filepath.Join(t.TempDir(), "w.db"))
			check(t, err)
			defer db.Close()
			err = db.InTx(ctx, func(tx *sqlx.Tx) error {
				w, err := NewWriter(ctx, tx, time.Now())
				if err != nil {
					return err
				}
				defer w.Close()
				for i := 0; i < n; i++ {
					name := fmt.Sprintf("Room %d", i)
					if i == 1 {
						name = "Room 0" // fails with the first batch
					}
					if err := w.InsertVMR(&account.VMR{Name: name, Aliases: []string{fmt.Sprintf("r%d", i)}, SyncTag: "t", EntryKey: fmt.Sprint(i)}); err != nil {
						return err
					}
				}
				return w.Flush()
			})
			if err == nil || !strings.Contains(err.Error(), "UNIQUE") {
				t.Fatalf("err = %v, want the batch's UNIQUE failure", err)
			}
			var rows int
			check(t, db.Get(&rows, `SELECT COUNT(*) FROM vmrs`))
			if rows != 0 {
				t.Errorf("%d VMRs stayed after the failed transaction", rows)
			}
		})
	}
}

// TestWriterKeepsStatementOrder: an update after queued inserts sees them (it waits for
// the queue), so a VMR inserted in a full batch can be renamed at once.
func TestWriterKeepsStatementOrder(t *testing.T) {
	db := withWriter(t, func(_ *sqlx.Tx, w *Writer) error {
		vs := make([]*account.VMR, 2*batchSize)
		for i := range vs {
			vs[i] = &account.VMR{Name: fmt.Sprintf("Room %d", i), Aliases: []string{fmt.Sprintf("r%d", i)}, SyncTag: "t", EntryKey: fmt.Sprint(i)}
			if err := w.InsertVMR(vs[i]); err != nil {
				return err
			}
		}
		vs[0].Name = "Renamed"
		return w.UpdateVMR(vs[0])
	})
	var name string
	check(t, db.Get(&name, `SELECT name FROM vmrs ORDER BY id LIMIT 1`))
	var n int
	check(t, db.Get(&n, `SELECT COUNT(*) FROM vmr_aliases`))
	if name != "Renamed" || n != 2*batchSize {
		t.Errorf("first VMR %q, %d aliases; want Renamed, %d", name, n, 2*batchSize)
	}
}

// TestWriterBatchConstants: audit rows bind their commit and actor once per statement;
// rows with other constants, across and inside batches, must still land in order with
// their own values, and an email's commit likewise.
func TestWriterBatchConstants(t *testing.T) {
	type row struct {
		Commit string `db:"commit_id"`
		Actor  string `db:"actor"`
		Key    string `db:"key"`
	}
	var want []row
	for i := 0; i < 3*batchSize+11; i++ {
		r := row{Commit: "c1", Actor: "cli:apply", Key: fmt.Sprint("k", i)}
		switch {
		case i >= batchSize/2 && i < batchSize/2+3: // inside the first batch
			r.Commit = "c2"
		case i == batchSize+1: // one row
			r.Actor = "daemon"
		case i >= 2*batchSize: // the rest, over a full batch and a partial one
			r.Commit, r.Actor = "c3", "daemon"
		}
		want = append(want, r)
	}
	db := withWriter(t, func(_ *sqlx.Tx, w *Writer) error {
		for i, r := range want {
			if err := w.Audit(r.Commit, r.Actor, account.KindVMR, account.ActionCreate, r.Key, ""); err != nil {
				return err
			}
			if err := w.Enqueue(&Email{Kind: "vmr", Action: "created", ObjectKey: r.Key, To: "a@example.com", Commit: r.Commit,
				Subject: "s", Body: "b", VarList: []Var{{Name: "i", Value: i}}}); err != nil {
				return err
			}
		}
		return nil
	})
	var got []row
	check(t, db.Select(&got, `SELECT commit_id, actor, key FROM audit ORDER BY id`))
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("audit rows:\n got %v\nwant %v", got, want)
	}
	var emails []struct {
		Commit string `db:"commit_id"`
		Key    string `db:"object_key"`
		Vars   string `db:"vars"`
	}
	check(t, db.Select(&emails, `SELECT commit_id, object_key, vars FROM outbox ORDER BY id`))
	if len(emails) != len(want) {
		t.Fatalf("%d outbox rows, want %d", len(emails), len(want))
	}
	for i, e := range emails {
		if e.Commit != want[i].Commit || e.Key != want[i].Key || e.Vars != fmt.Sprintf(`{"i":%d}`, i) {
			t.Errorf("outbox row %d = %+v, want commit %s, key %s, i %d", i, e, want[i].Commit, want[i].Key, i)
		}
	}
}

// TestWriterAliasesFollowTheirVMRs: aliases are written after their VMR's batch (foreign
// keys checked at once fail otherwise), and a VMR whose batch is still buffered at Flush
// gets its aliases too.
func TestWriterAliasesFollowTheirVMRs(t *testing.T) {
	for _, n := range []int{1, batchSize - 1, batchSize, 2*batchSize + 3} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			db := withWriter(t, func(tx *sqlx.Tx, w *Writer) error {
				// NewWriter defers the foreign keys: checked at once, an alias written
				// before its VMR fails
				if _, err := tx.Exec(`PRAGMA defer_foreign_keys = OFF`); err != nil {
					return err
				}
				for i := 0; i < n; i++ {
					// aliases in reverse order of their VMRs: the VMR order must win
					if err := w.InsertVMR(&account.VMR{Name: fmt.Sprintf("Room %d", i), SyncTag: "t", EntryKey: fmt.Sprint(i),
						Aliases: []string{fmt.Sprintf("z%05d", n-i), fmt.Sprintf("a%05d", n-i)}}); err != nil {
						return err
					}
				}
				return nil
			})
			var got []struct {
				VMR   int64  `db:"vmr_id"`
				Pos   int    `db:"pos"`
				Alias string `db:"alias"`
			}
			check(t, db.Select(&got, `SELECT vmr_id, pos, alias FROM vmr_aliases ORDER BY vmr_id, pos`))
			if len(got) != 2*n {
				t.Fatalf("%d aliases, want %d", len(got), 2*n)
			}
			for i, a := range got {
				v := i / 2
				if a.VMR != int64(v+1) || a.Pos != i%2 || a.Alias != fmt.Sprintf("%c%05d", "za"[i%2], n-v) {
					t.Fatalf("alias row %d = %+v, want VMR %d's alias %d", i, a, v+1, i%2)
				}
			}
		})
	}
}

// withWriter opens a fresh database and runs fn with a Writer in one transaction,
// flushed and committed; it fails the test on an error.
func withWriter(t *testing.T, fn func(tx *sqlx.Tx, w *Writer) error) *DB {
	t.Helper()
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "w.db"))
	check(t, err)
	t.Cleanup(func() { db.Close() })
	check(t, db.InTx(ctx, func(tx *sqlx.Tx) error {
		w, err := NewWriter(ctx, tx, time.Now())
		if err != nil {
			return err
		}
		defer w.Close()
		if err := fn(tx, w); err != nil {
			return err
		}
		return w.Flush()
	}))
	return db
}

// TestWriterBindsSameColumnsOnce: a full batch binds the columns with one value in all
// its rows once (sameColumns, compact, variantSQL); every row must still read back as
// written, whichever columns are shared in which batch — strings, numbers, booleans
// and NULL among them.
func TestWriterBindsSameColumnsOnce(t *testing.T) {
	n := 2*batchSize + 7
	users := make([]account.User, n)
	for i := range users {
		lang := "en-US" // the same in the first batch, then not
		if i >= batchSize {
			lang = []string{"fr", "de"}[i%2]
		}
		users[i] = account.User{UserID: fmt.Sprint(i + 1), Email: fmt.Sprintf("u%d@example.com", i), FirstName: "Ann",
			LastName: fmt.Sprint("L", i%3), Language: lang, HostPrivilege: "HOST", TimeZone: "UTC", Active: i < 2*batchSize,
			Origin: "remote", License: "paid", SyncTag: "staff", EntryKey: fmt.Sprint("k", i),
			Notified: i >= batchSize/2 && i < 2*batchSize} // NULL, then not, within one batch; all set in the second
	}
	db := withWriter(t, func(tx *sqlx.Tx, w *Writer) error {
		if w.conn == nil {
			return fmt.Errorf("the writer of an InTx transaction runs no statement of the driver's")
		}
		for i := range users {
			if err := w.InsertUser(&users[i]); err != nil {
				return err
			}
		}
		return nil
	})
	var got []struct {
		UserID, Email, First, Last, Lang, Host, TZ, Origin, License, Sync, Key string
		Active, Notified                                                       bool
	}
	rows, err := db.Query(`SELECT userid, email, first_name, last_name, language, host_privilege, time_zone, origin,
		license, sync_tag, entry_key, active, notified_at IS NOT NULL FROM users ORDER BY id`)
	check(t, err)
	defer rows.Close()
	for rows.Next() {
		got = append(got, struct {
			UserID, Email, First, Last, Lang, Host, TZ, Origin, License, Sync, Key string
			Active, Notified                                                       bool
		}{})
		g := &got[len(got)-1]
		check(t, rows.Scan(&g.UserID, &g.Email, &g.First, &g.Last, &g.Lang, &g.Host, &g.TZ, &g.Origin, &g.License,
			&g.Sync, &g.Key, &g.Active, &g.Notified))
	}
	check(t, rows.Err())
	if len(got) != n {
		t.Fatalf("%d users, want %d", len(got), n)
	}
	for i, g := range got {
		u := users[i]
		if g.UserID != u.UserID || g.Email != u.Email || g.First != u.FirstName || g.Last != u.LastName ||
			g.Lang != u.Language || g.Host != u.HostPrivilege || g.TZ != u.TimeZone || g.Origin != u.Origin ||
			g.License != u.License || g.Sync != u.SyncTag || g.Key != u.EntryKey || g.Active != u.Active ||
			g.Notified != u.Notified {
			t.Fatalf("user %d = %+v, want %+v", i, g, u)
		}
	}
}

// TestSameColumnsAndCompact: the columns found shared, and the arguments laid out for
// their statement.
func TestSameColumnsAndCompact(t *testing.T) {
	b := &batch{consts: 1, cols: 3}
	for _, tc := range []struct {
		name string
		args []any
		same uint64
		want []any
	}{
		{"none shared", []any{"c", "a", int64(1), nil, "b", int64(2), "z"},
			0b000, []any{"c", "a", int64(1), nil, "b", int64(2), "z"}},
		{"middle and last", []any{"c", "a", int64(1), nil, "b", int64(1), nil},
			0b110, []any{"c", int64(1), nil, "a", "b"}},
		{"all", []any{"c", "a", true, "x", "a", true, "x"},
			0b111, []any{"c", "a", true, "x"}},
		{"bytes never", []any{"c", []byte("a"), "x", int64(0), []byte("a"), "x", int64(0)},
			0b110, []any{"c", "x", int64(0), []byte("a"), []byte("a")}},
		{"types differ", []any{"c", int64(1), "1", nil, "1", "1", nil},
			0b110, []any{"c", "1", nil, int64(1), "1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			same := sameColumns(b, tc.args)
			if same != tc.same {
				t.Fatalf("sameColumns = %03b, want %03b", same, tc.same)
			}
			if got := compact(nil, b, tc.args, same); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("compact = %v, want %v", got, tc.want)
			}
		})
	}
}
