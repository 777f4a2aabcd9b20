package daemon

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/roster-dev/roster/reconcile"
	"github.com/roster-dev/roster/reconcile/directory"
	"github.com/roster-dev/roster/reconcile/directory/synctest"
	"github.com/roster-dev/roster/reconcile/pipeline"
	"github.com/roster-dev/roster/reconcile/source"
	"github.com/roster-dev/roster/schema"
	"github.com/roster-dev/roster/state"
)

// TestServeWatchesDirectory: serve reads the examples' directory in full once, then keeps
// a persistent search open; one person's sn changed in the directory starts a cycle at
// once (the poll interval is an hour), read incrementally, whose VMR update email lands
// in mail_dir; the status shows the incremental read and its one change.
func TestServeWatchesDirectory(t *testing.T) {
	old := watchRescan
	watchRescan = 50 * time.Millisecond
	defer func() { watchRescan = old }()
	dir := t.TempDir()
	repo := filepath.Join(dir, "repo")
	if err := os.CopyFS(repo, os.DirFS(filepath.Join("..", "..", "examples"))); err != nil {
		t.Fatal(err)
	}
	mailDir := filepath.Join(dir, "mail")
	cfgPath := filepath.Join(dir, "config.cue")
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf(`repo: {url: %q, path: ".", interval: "1h"}
state: {driver: "sqlite", dsn: "roster.db"}
http: listen: "127.0.0.1:0"
directories: corp: {ldif: "directory.ldif", base_dn: "dc=example,dc=com"}
mail_dir: %q
`, repo, mailDir)), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := schema.LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	ldif, err := os.ReadFile(filepath.Join(repo, "directory.ldif"))
	if err != nil {
		t.Fatal(err)
	}
	fake := synctest.New("dc=example,dc=com", ldif)
	dsn := filepath.Join(dir, "roster.db")
	db, err := state.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	p := &pipeline.Pipeline{Config: cfg, Source: source.NewDir(repo), DB: db, MailDir: mailDir,
		Engine: &reconcile.Engine{Config: cfg, DB: db, DefaultEmails: pipeline.DefaultEmails(),
			OpenDirectory: func(string, schema.DirConfig, *schema.Repo) (directory.Directory, error) { return fake, nil }}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var d *daemon
	captured := make(chan *daemon, 1)
	testHook = func(x *daemon) { captured <- x }
	defer func() { testHook = nil }()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if !testing.Verbose() {
		logger = nil
	}
	go func() { done <- Serve(ctx, Config{Pipeline: p, DSN: dsn, Logger: logger}) }()
	d = <-captured
	waitFor(t, "the first cycle and a watcher", func() bool {
		s := d.snapshot()
		return s.Ready && len(s.Watching) == 2 && fake.Changed > 1
	})
	before := d.snapshot().Cycles
	if r := d.snapshot().Reads; len(r) != 2 || r[0].Mode != reconcile.ReadFull {
		t.Fatalf("first cycle reads: %+v", r)
	}
	mails := func() int {
		n := 0
		filepath.WalkDir(mailDir, func(path string, e os.DirEntry, err error) error {
			if err == nil && !e.IsDir() {
				if b, _ := os.ReadFile(path); bytes.Contains(b, []byte("Parkinson")) {
					n++
				}
			}
			return nil
		})
		return n
	}
	changed := strings.Replace(string(ldif), "sn: Parkes", "sn: Parkinson", 1)
	start := time.Now()
	if n := fake.Update([]byte(changed)); n != 1 {
		t.Fatalf("update changed %d entries", n)
	}
	waitFor(t, "the update email", func() bool { return mails() > 0 })
	t.Logf("directory change → email in mail_dir: %s", time.Since(start).Round(time.Millisecond))
	s := d.snapshot()
	if s.Cycles <= before {
		t.Errorf("no cycle ran after the change")
	}
	for _, r := range s.Reads {
		if r.Mode != reconcile.ReadIncremental {
			t.Errorf("read %+v; want incremental", r)
		}
	}
	if n := metricValue(t, d, "roster_directory_changes_total", "staff"); n != 1 {
		t.Errorf("roster_directory_changes_total{template=staff} = %v, want 1", n)
	}
	if n := metricValue(t, d, "roster_directory_incremental", "staff"); n != 1 {
		t.Errorf("roster_directory_incremental{template=staff} = %v, want 1", n)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// metricValue reads a directory metric of template from the daemon's registry.
func metricValue(t *testing.T, d *daemon, name, template string) float64 {
	t.Helper()
	fams, err := d.met.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "template" && l.GetValue() == template {
					if c := m.GetCounter(); c != nil {
						return c.GetValue()
					}
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatalf("no metric %s{template=%q}", name, template)
	return 0
}
