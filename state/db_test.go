package state

import (
	"context"
	"os"
	"path/filepath"
	"testing"
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
