package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/roster-dev/roster/reconcile"
	"github.com/roster-dev/roster/reconcile/pipeline"
	"github.com/roster-dev/roster/reconcile/source"
	"github.com/roster-dev/roster/schema"
	"github.com/roster-dev/roster/state"
)

// onceDaemon runs `serve --once` on a copy of examples/ with the given safety block and
// returns the state database and what Serve returned.
func onceDaemon(t *testing.T, safety string) (*state.DB, error) {
	t.Helper()
	dir := t.TempDir()
	repo := filepath.Join(dir, "repo")
	if err := os.CopyFS(repo, os.DirFS(filepath.Join("..", "..", "examples"))); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "config.cue")
	cfgText := fmt.Sprintf(`repo: {url: %q, branch: "main", path: "."}
state: {driver: "sqlite", dsn: "roster.db"}
directories: corp: {ldif: "directory.ldif", base_dn: "dc=example,dc=com"}
safety: {%s}
`, repo, safety)
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := schema.LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	dsn := filepath.Join(dir, "roster.db")
	p := &pipeline.Pipeline{Config: cfg, Source: source.NewDir(repo),
		OpenDB: func(ctx context.Context) (*state.DB, error) { return state.Open(ctx, dsn) }}
	serveErr := Serve(context.Background(), Config{Pipeline: p, DSN: dsn, Once: true})
	if p.DB == nil {
		t.Fatalf("serve --once opened no database: %v", serveErr)
	}
	t.Cleanup(func() { p.DB.Close() })
	return p.DB, serveErr
}

// TestServeOnce: one daemon cycle applies the examples through the pipeline, records the
// templates' status and enqueues the admin summary; a plan over safety.max_emails is
// refused, nothing of it applied, and the admins get the error email instead.
func TestServeOnce(t *testing.T) {
	for _, tc := range []struct {
		name, safety string
		refused      bool
		adminKind    string
	}{
		{"applies", "", false, "admin_summary"},
		{"refused", "max_emails: 3", true, "sync_error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, err := onceDaemon(t, tc.safety)
			var refusal *reconcile.RefusalError
			if got := errors.As(err, &refusal); got != tc.refused {
				t.Fatalf("serve --once = %v, want refused %v", err, tc.refused)
			}
			s, err := ReadStatus(context.Background(), db, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			wantVersion, wantTemplates := int64(1), 2
			if tc.refused {
				wantVersion, wantTemplates = 0, 0
			}
			if s.StateVersion != wantVersion || len(s.Templates) != wantTemplates || (s.Objects["vmrs"] > 0) != !tc.refused {
				t.Fatalf("after the cycle: version %d, %d templates, %d VMRs; want version %d, %d templates",
					s.StateVersion, len(s.Templates), s.Objects["vmrs"], wantVersion, wantTemplates)
			}
			var admin int
			if err := db.Get(&admin, `SELECT COUNT(*) FROM outbox WHERE kind = ? AND to_addr = 'ops@example.com'`, tc.adminKind); err != nil {
				t.Fatal(err)
			}
			if admin != 1 {
				t.Errorf("%s emails to the admin = %d, want 1", tc.adminKind, admin)
			}
			var text strings.Builder
			s.WriteText(&text)
			if want := fmt.Sprintf("State version %d, applied commit", wantVersion); !strings.Contains(text.String(), want) {
				t.Errorf("status text lacks %q:\n%s", want, text.String())
			}
		})
	}
}
