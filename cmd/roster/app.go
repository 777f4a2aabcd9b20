package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/roster-dev/roster/notify"
	"github.com/roster-dev/roster/reconcile/pipeline"
	"github.com/roster-dev/roster/reconcile/source"
	"github.com/roster-dev/roster/schema"
	"github.com/roster-dev/roster/state"
)

// app holds what subcommands share: flags common to all, the config, the database.
type app struct {
	stdout, stderr io.Writer
	configPath     string
	logLevel       string
	logFormat      string
	repoDir        string

	cfg    *schema.Config
	db     *state.DB
	logger *slog.Logger
}

// flags makes a subcommand's flag set with the common flags.
func (a *app) flags(name string, withRepo bool) *flag.FlagSet {
	fs := flag.NewFlagSet("roster "+name, flag.ContinueOnError)
	fs.SetOutput(a.stderr)
	def := os.Getenv("ROSTER_CONFIG")
	if def == "" {
		def = "config.cue"
	}
	fs.StringVar(&a.configPath, "config", def, "the daemon's configuration (config.cue)")
	fs.StringVar(&a.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&a.logFormat, "log-format", "text", "text or json")
	if withRepo {
		fs.StringVar(&a.repoDir, "repo", "", "read the desired state from this working tree instead of the configured Git source")
	}
	return fs
}

// parse parses args and rejects stray positional arguments beyond allowed.
func (a *app) parse(fs *flag.FlagSet, args []string, positional int) ([]string, error) {
	// Flags may come before or after positional arguments (`export users --delimiter tab`).
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		rest = append(rest, args[0])
		args = args[1:]
	}
	if len(rest) > positional {
		return nil, fmt.Errorf("%s: unexpected argument %q", fs.Name(), rest[positional])
	}
	a.logger = newLogger(a.stderr, a.logLevel, a.logFormat)
	return rest, nil
}

func newLogger(w io.Writer, level, format string) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// config loads config.cue once.
func (a *app) config() (*schema.Config, error) {
	if a.cfg != nil {
		return a.cfg, nil
	}
	cfg, err := schema.LoadConfig(a.configPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w; run roster where config.cue is, or pass --config FILE (or set ROSTER_CONFIG)", err)
	}
	if err != nil {
		return nil, err
	}
	a.cfg = cfg
	return cfg, nil
}

// resolve makes a path of config.cue relative to the folder of config.cue.
func (a *app) resolve(p string) string {
	if p == "" || filepath.IsAbs(p) || p == ":memory:" || strings.HasPrefix(p, "file:") {
		return p
	}
	return filepath.Join(a.cfg.Dir, p)
}

// database opens the state database once.
func (a *app) database(ctx context.Context) (*state.DB, error) {
	if a.db != nil {
		return a.db, nil
	}
	cfg, err := a.config()
	if err != nil {
		return nil, err
	}
	if cfg.State.Driver != "" && cfg.State.Driver != "sqlite" {
		return nil, fmt.Errorf("state.driver %q is not supported: use \"sqlite\"", cfg.State.Driver)
	}
	db, err := state.Open(ctx, a.resolve(cfg.State.DSN))
	if err != nil {
		return nil, err
	}
	a.db = db
	return db, nil
}

func (a *app) close() {
	if a.db != nil {
		a.db.Close()
	}
}

// source is where the desired state comes from: --repo, or the configured source.
func (a *app) source() (source.Source, error) {
	cfg, err := a.config()
	if err != nil {
		return nil, err
	}
	if a.repoDir != "" {
		sub := cfg.Repo.Path
		if sub == "" {
			sub = "."
		}
		return source.NewDir(filepath.Join(a.repoDir, filepath.FromSlash(sub))), nil
	}
	return source.New(cfg.Repo, cfg.Dir, a.dataDir(), a.logger)
}

// dataDir is where roster keeps what it fetches (the Git clone): .roster beside the state
// database, which is where a deployment already lets roster write.
func (a *app) dataDir() string {
	dsn := strings.TrimPrefix(strings.SplitN(a.cfg.State.DSN, "?", 2)[0], "file:")
	if dsn == "" || dsn == ":memory:" {
		return a.resolve(".roster")
	}
	return filepath.Join(filepath.Dir(a.resolve(dsn)), ".roster")
}

// pipeline is the reconcile pipeline of config.cue: its source (unless the command
// needs none), the database opened at first use, and the command's output.
func (a *app) pipeline(withSource bool) (*pipeline.Pipeline, error) {
	cfg, err := a.config()
	if err != nil {
		return nil, err
	}
	p := &pipeline.Pipeline{Config: cfg, OpenDB: a.database, MailDir: a.resolve(cfg.MailDir), Out: a.stdout, Logger: a.logger}
	if withSource {
		if p.Source, err = a.source(); err != nil {
			return nil, err
		}
	}
	if f, ok := a.stderr.(*os.File); ok && notify.IsTerminal(f) {
		p.Progress = f
	}
	return p, nil
}

// run runs the pipeline of config.cue as o says.
func (a *app) run(ctx context.Context, o pipeline.Options) (pipeline.Result, error) {
	p, err := a.pipeline(o.Manual == nil || !o.Manual.NoSource)
	if err != nil {
		return pipeline.Result{}, err
	}
	return p.Run(ctx, o)
}
