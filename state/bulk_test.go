package state

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/roster-dev/roster/schema/account"
)

// TestInBulkTx runs a bulk transaction alone on the database (rollback-journal mode) and
// beside another open connection (SQLite refuses the switch: WAL mode), committed and
// rolled back: the rows are there exactly when fn succeeded, and the database is in WAL
// mode (synchronous NORMAL) afterwards either way.
func TestInBulkTx(t *testing.T) {
	for _, tc := range []struct {
		name     string
		idle     bool   // the pool has idle connections of earlier parallel reads
		other    bool   // a second connection (another pool, another process) holds the database open
		fail     bool   // fn returns an error: rolled back
		wantMode string // the journal mode inside the transaction
	}{
		{"alone", false, false, false, "delete"},
		{"alone, rolled back", false, false, true, "delete"},
		{"idle connections in the pool", true, false, false, "delete"},
		{"beside another connection", false, true, false, "wal"},
		{"beside another connection, rolled back", false, true, true, "wal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			path := filepath.Join(t.TempDir(), "roster.db")
			db, err := Open(ctx, path)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if tc.idle {
				conns := make([]*sqlx.Conn, 3)
				for i := range conns {
					if conns[i], err = db.Connx(ctx); err != nil {
						t.Fatal(err)
					}
					var n int
					if err := conns[i].GetContext(ctx, &n, `SELECT COUNT(*) FROM meta`); err != nil {
						t.Fatal(err)
					}
				}
				for _, c := range conns {
					c.Close()
				}
				if idle := db.Stats().Idle; idle < 2 {
					t.Fatalf("%d idle connections, want 2", idle)
				}
			}
			if tc.other {
				other, err := Open(ctx, path)
				if err != nil {
					t.Fatal(err)
				}
				defer other.Close()
				var n int
				if err := other.Get(&n, `SELECT COUNT(*) FROM meta`); err != nil { // connect
					t.Fatal(err)
				}
			}
			boom := errors.New("boom")
			var inside string
			err = db.InBulkTx(ctx, func(tx *sqlx.Tx) error {
				if err := tx.Get(&inside, `PRAGMA journal_mode`); err != nil {
					return err
				}
				for i := 0; i < 2000; i++ { // more pages than the database had
					if err := SetMeta(ctx, tx, fmt.Sprintf("bulk/%d", i), strings.Repeat("v", 500)); err != nil {
						return err
					}
				}
				if tc.fail {
					return boom
				}
				return nil
			})
			if tc.fail != errors.Is(err, boom) || (!tc.fail && err != nil) {
				t.Fatalf("InBulkTx = %v, want failure %v", err, tc.fail)
			}
			if inside != tc.wantMode {
				t.Errorf("journal mode inside the transaction = %q, want %q", inside, tc.wantMode)
			}
			var n int
			if err := db.Get(&n, `SELECT COUNT(*) FROM meta WHERE key LIKE 'bulk/%'`); err != nil {
				t.Fatal(err)
			}
			if want := map[bool]int{true: 0, false: 2000}[tc.fail]; n != want {
				t.Errorf("rows after the transaction = %d, want %d", n, want)
			}
			// every connection of the pool, old or new, sees WAL mode again
			conns := make([]*sqlx.Conn, 3)
			for i := range conns {
				if conns[i], err = db.Connx(ctx); err != nil {
					t.Fatal(err)
				}
				defer conns[i].Close()
				var mode string
				var sync int
				if err := conns[i].GetContext(ctx, &mode, `PRAGMA journal_mode`); err != nil || mode != "wal" {
					t.Errorf("connection %d: journal mode after = %q, %v; want wal", i, mode, err)
				}
				if err := conns[i].GetContext(ctx, &sync, `PRAGMA synchronous`); err != nil || sync != 1 {
					t.Errorf("connection %d: synchronous after = %d, %v; want 1 (NORMAL)", i, sync, err)
				}
			}
		})
	}
}

// TestInBulkTxUniqueIndexes: a bulk transaction into empty tables builds their unique
// indexes after the rows (dropBulkIndexes, buildBulkIndexes). A duplicate name or alias
// must still fail the whole transaction, naming the value, and leave nothing written;
// the indexes are there afterwards either way, and a table with rows keeps its own.
func TestInBulkTxUniqueIndexes(t *testing.T) {
	n := 2*batchSize + 3
	for _, tc := range []struct {
		name    string
		before  bool   // a user exists before: users keeps its indexes
		dupName int    // VMR i gets VMR 0's name (0: none)
		dupAl   int    // VMR i gets VMR 0's first alias (0: none)
		dupMail bool   // the bulk adds the user that exists before
		wantErr string // in the error; "" for success
	}{
		{"unique", false, 0, 0, false, ""},
		{"duplicate name", false, n - 1, 0, false, `vmrs.name "Room 0" is not unique`},
		{"duplicate alias", false, 0, batchSize + 1, false, `vmr_aliases.alias "a0@example.com" is not unique`},
		{"table with rows", true, 0, 0, false, ""},
		{"table with rows, duplicate email", true, 0, 0, true, "UNIQUE constraint failed: users.email"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			db, err := Open(ctx, filepath.Join(t.TempDir(), "roster.db"))
			check(t, err)
			defer db.Close()
			if tc.before {
				check(t, db.InTx(ctx, func(tx *sqlx.Tx) error {
					w, err := NewWriter(ctx, tx, time.Now())
					if err != nil {
						return err
					}
					defer w.Close()
					if err := w.InsertUser(&account.User{UserID: "1", Email: "old@example.com", Origin: "local"}); err != nil {
						return err
					}
					return w.Flush()
				}))
			}
			var dropped []string
			err = db.InBulkTx(ctx, func(tx *sqlx.Tx) error {
				if err := tx.Select(&dropped, `SELECT name FROM (SELECT 'vmrs_name' name UNION ALL SELECT 'vmr_aliases_alias'
					UNION ALL SELECT 'devices_alias' UNION ALL SELECT 'users_userid' UNION ALL SELECT 'users_email')
					WHERE name NOT IN (SELECT name FROM sqlite_schema WHERE type = 'index') ORDER BY name`); err != nil {
					return err
				}
				w, err := NewWriter(ctx, tx, time.Now())
				if err != nil {
					return err
				}
				defer w.Close()
				for i := 0; i < n; i++ {
					v := &account.VMR{Name: fmt.Sprintf("Room %d", i), SyncTag: "t", EntryKey: fmt.Sprint(i),
						Aliases: []string{fmt.Sprintf("a%d@example.com", i), fmt.Sprintf("b%d@example.com", i)}}
					if i > 0 && i == tc.dupName {
						v.Name = "Room 0"
					}
					if i > 0 && i == tc.dupAl {
						v.Aliases[0] = "a0@example.com"
					}
					if err := w.InsertVMR(v); err != nil {
						return err
					}
					u := &account.User{UserID: fmt.Sprint(i + 2), Email: fmt.Sprintf("u%d@example.com", i), Origin: "local"}
					if tc.dupMail && i == n-1 {
						u.Email = "old@example.com"
					}
					if err := w.InsertUser(u); err != nil {
						return err
					}
				}
				return w.Flush()
			})
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("InBulkTx = %v, want error containing %q", err, tc.wantErr)
			}
			wantDropped := "[devices_alias users_email users_userid vmr_aliases_alias vmrs_name]"
			if tc.before {
				wantDropped = "[devices_alias vmr_aliases_alias vmrs_name]"
			}
			if fmt.Sprint(dropped) != wantDropped {
				t.Errorf("indexes dropped in the transaction: %v, want %s", dropped, wantDropped)
			}
			var indexes []string
			check(t, db.Select(&indexes, `SELECT name FROM sqlite_schema WHERE type = 'index' AND sql LIKE 'CREATE UNIQUE INDEX%'
				AND tbl_name IN ('vmrs', 'vmr_aliases', 'devices', 'users') ORDER BY name`))
			if got := fmt.Sprint(indexes); got != "[devices_alias users_email users_userid vmr_aliases_alias vmrs_name]" {
				t.Errorf("unique indexes after the transaction: %s", got)
			}
			var vmrs, aliases int
			check(t, db.Get(&vmrs, `SELECT COUNT(*) FROM vmrs`))
			check(t, db.Get(&aliases, `SELECT COUNT(*) FROM vmr_aliases`))
			if want := map[bool]int{true: n, false: 0}[tc.wantErr == ""]; vmrs != want || aliases != 2*want {
				t.Errorf("%d VMRs, %d aliases after the transaction, want %d, %d", vmrs, aliases, want, 2*want)
			}
			// the rebuilt indexes refuse a duplicate
			if tc.wantErr == "" {
				_, err := db.Exec(`INSERT INTO vmr_aliases(vmr_id, pos, alias) VALUES (1, 9, 'a1@example.com')`)
				if err == nil || !strings.Contains(err.Error(), "UNIQUE") {
					t.Errorf("a duplicate alias after the transaction: %v, want a UNIQUE constraint error", err)
				}
			}
		})
	}
}
