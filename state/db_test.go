package state

import (
	"context"
	"database/sql"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestOpenMigratesOnceAndFileIsPrivate(t *testing.T) {
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "roster.db")
	db, err := Open(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.Get(&n, `SELECT COUNT(*) FROM schema_migrations`); err != nil || n == 0 {
		t.Fatalf("migrations recorded = %d, %v", n, err)
	}
	var mode string
	db.Get(&mode, `PRAGMA journal_mode`)
	if mode != "wal" {
		t.Errorf("journal_mode = %q, want wal", mode)
	}
	var fk int
	db.Get(&fk, `PRAGMA foreign_keys`)
	if fk != 1 {
		t.Errorf("foreign_keys = %d", fk)
	}
	db.Close()
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", st.Mode().Perm())
	}
	db, err = Open(ctx, p) // second open applies nothing twice
	if err != nil {
		t.Fatal(err)
	}
	var m int
	db.Get(&m, `SELECT COUNT(*) FROM schema_migrations`)
	if m != n {
		t.Errorf("migrations after reopen = %d, want %d", m, n)
	}
	db.Close()
}

func TestSecretKeyStable(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	a, err := db.SecretKey(ctx, "")
	if err != nil || len(a) == 0 {
		t.Fatal(err)
	}
	b, _ := db.SecretKey(ctx, "")
	if string(a) != string(b) {
		t.Error("secret key changed between calls")
	}
	c, _ := db.SecretKey(ctx, "from-env")
	if string(c) != "from-env" {
		t.Error("env key not preferred")
	}
}

// TestMigration006KeepsRowsAndKeys: a database made before migration 006 keeps every
// VMR, alias, device and user through the rebuild of their tables (dropping the old VMR
// table with foreign keys on would have deleted the aliases with it), and comes out with
// the foreign key, its cascade and the unique indexes working.
func TestMigration006KeepsRowsAndKeys(t *testing.T) {
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "roster.db")
	old, err := sql.Open(driverName, "file:"+p+"?_foreign_keys=on")
	if err != nil {
		t.Fatal(err)
	}
	entries, err := fs.ReadDir(migrations, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	mustExec := func(q string, args ...any) {
		t.Helper()
		if _, err := old.Exec(q, args...); err != nil {
			t.Fatal(err)
		}
	}
	mustExec(`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`)
	for i, e := range entries {
		if e.Name() >= "006" {
			break
		}
		body, err := migrations.ReadFile("migrations/" + e.Name())
		if err != nil {
			t.Fatal(err)
		}
		mustExec(string(body))
		mustExec(`INSERT INTO schema_migrations VALUES (?, ?, 'then')`, i+1, e.Name())
	}
	now := FormatTime(time.Now())
	mustExec(`INSERT INTO vmrs(id, name, sync_tag, created_at, updated_at) VALUES (1, 'Room 1', 't', ?, ?), (2, 'Room 2', 't', ?, ?)`, now, now, now, now)
	mustExec(`INSERT INTO vmr_aliases(alias, vmr_id, pos) VALUES ('b', 1, 1), ('a', 1, 0), ('c', 2, 0)`)
	mustExec(`INSERT INTO devices(id, alias, sync_tag, created_at, updated_at) VALUES (7, 'dev', 't', ?, ?)`, now, now)
	mustExec(`INSERT INTO users(id, userid, email, origin, created_at, updated_at) VALUES (9, '1', 'u@example.com', 'local', ?, ?)`, now, now)
	old.Close()

	db, err := Open(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var got string
	check(t, db.Get(&got, `SELECT (SELECT group_concat(id || ':' || name, ',') FROM vmrs) || ' | ' ||
		(SELECT group_concat(vmr_id || '/' || pos || '=' || alias, ',') FROM vmr_aliases) || ' | ' ||
		(SELECT group_concat(id || ':' || alias, ',') FROM devices) || ' | ' ||
		(SELECT group_concat(id || ':' || userid || ':' || email, ',') FROM users)`))
	if want := "1:Room 1,2:Room 2 | 1/0=a,1/1=b,2/0=c | 7:dev | 9:1:u@example.com"; got != want {
		t.Fatalf("after migrating: %s, want %s", got, want)
	}
	var fk int
	check(t, db.Get(&fk, `PRAGMA foreign_keys`))
	if fk != 1 {
		t.Errorf("foreign_keys = %d after migrating, want 1", fk)
	}
	if _, err := db.Exec(`INSERT INTO vmr_aliases(vmr_id, pos, alias) VALUES (3, 0, 'x')`); err == nil {
		t.Error("an alias of no VMR was accepted")
	}
	for _, q := range []string{
		`INSERT INTO vmrs(name, sync_tag, created_at, updated_at) VALUES ('Room 1', 't', '', '')`,
		`INSERT INTO vmr_aliases(vmr_id, pos, alias) VALUES (2, 1, 'a')`,
		`INSERT INTO devices(alias, sync_tag, created_at, updated_at) VALUES ('dev', 't', '', '')`,
		`INSERT INTO users(userid, email, origin, created_at, updated_at) VALUES ('1', 'v@example.com', 'local', '', '')`,
		`INSERT INTO users(userid, email, origin, created_at, updated_at) VALUES ('2', 'u@example.com', 'local', '', '')`,
	} {
		if _, err := db.Exec(q); err == nil || !strings.Contains(err.Error(), "UNIQUE") {
			t.Errorf("%s: %v, want a UNIQUE constraint error", q, err)
		}
	}
	if _, err := db.Exec(`DELETE FROM vmrs WHERE id = 1`); err != nil {
		t.Fatal(err)
	}
	var aliases int
	check(t, db.Get(&aliases, `SELECT COUNT(*) FROM vmr_aliases`))
	if aliases != 1 {
		t.Errorf("%d aliases after deleting VMR 1, want 1 (ON DELETE CASCADE)", aliases)
	}
}
