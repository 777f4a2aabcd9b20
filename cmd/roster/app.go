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
	"github.com/roster-dev/roster/reconcile"
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
	opt            opts

	cfg    *schema.Config
	db     *state.DB
	logger *slog.Logger
}

// opts are the values of the commands' own flags (command.flags names those each takes).
type opts struct {
	repoDir, format, out, planFile, delimiter string
	detailed, showSecrets, noSend, once       bool
	adoptApply                                bool
	allowDeletions, allowEmails               int
	targets                                   reconcile.ReminderTargets
}

// flagHelp is each flag's help; a "command flag" key holds that command's own wording.
var flagHelp = map[string]string{
	"repo":               "read the desired state from this working tree instead of the configured Git source",
	"format":             "text, json or markdown",
	"apply format":       "how to print the applied plan: text, json or markdown",
	"status format":      "text or json",
	"out":                "also save the plan as JSON to FILE, for `roster apply --plan FILE`",
	"export out":         "write to FILE instead of standard output",
	"detailed-exitcode":  "exit 0 when there is nothing to do, 2 when there are changes, 1 when a template failed",
	"show-secrets":       "show PINs and passwords instead of masking them",
	"apply show-secrets": "show PINs and passwords in the printed plan",
	"plan":               "apply this saved plan (from `roster plan --out FILE`); refused if stale",
	"allow-deletions":    "allow up to N deletions and deactivations beyond the safety limits",
	"allow-emails":       "allow up to N emails beyond safety.max_emails",
	"no-send":            "leave enqueued emails in the outbox",
	"apply":              "platform adopt: take ownership (without it, a dry run)",
	"remind no-send":     "leave the reminders in the outbox",
	"notify no-send":     "leave the emails in the outbox",
	"once":               "run one reconcile cycle and exit (for cron and tests)",
	"delimiter":          "comma or tab",
	"template":           "every VMR and device of this sync template (repeatable)",
	"vmr":                "the VMR with this name (repeatable)",
	"device":             "the device with this alias (repeatable)",
	"invite":             "resend this pending or expired invitation, with a fresh expiry (repeatable)",
}

// define adds command cmd's flag name to fs.
func (o *opts) define(fs *flag.FlagSet, cmd, name string) {
	help := flagHelp[cmd+" "+name]
	if help == "" {
		help = flagHelp[name]
	}
	switch name {
	case "repo":
		fs.StringVar(&o.repoDir, name, "", help)
	case "format":
		fs.StringVar(&o.format, name, "text", help)
	case "out":
		fs.StringVar(&o.out, name, "", help)
	case "plan":
		fs.StringVar(&o.planFile, name, "", help)
	case "delimiter":
		fs.StringVar(&o.delimiter, name, "comma", help)
	case "detailed-exitcode":
		fs.BoolVar(&o.detailed, name, false, help)
	case "show-secrets":
		fs.BoolVar(&o.showSecrets, name, false, help)
	case "no-send":
		fs.BoolVar(&o.noSend, name, false, help)
	case "apply":
		fs.BoolVar(&o.adoptApply, name, false, help)
	case "once":
		fs.BoolVar(&o.once, name, false, help)
	case "allow-deletions":
		fs.IntVar(&o.allowDeletions, name, 0, help)
	case "allow-emails":
		fs.IntVar(&o.allowEmails, name, 0, help)
	case "template":
		fs.Var((*stringList)(&o.targets.Templates), name, help)
	case "vmr":
		fs.Var((*stringList)(&o.targets.VMRs), name, help)
	case "device":
		fs.Var((*stringList)(&o.targets.Devices), name, help)
	case "invite":
		fs.Var((*stringList)(&o.targets.Invites), name, help)
	default:
		panic("roster: no flag --" + name)
	}
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// parse parses command name's args: the common flags, its own, and at most its
// positional arguments, which it returns.
func (a *app) parse(name string, cmd command, args []string) ([]string, error) {
	fs := flag.NewFlagSet("roster "+name, flag.ContinueOnError)
	fs.SetOutput(a.stderr)
	def := os.Getenv("ROSTER_CONFIG")
	if def == "" {
		def = "config.cue"
	}
	fs.StringVar(&a.configPath, "config", def, "the daemon's configuration (config.cue)")
	fs.StringVar(&a.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&a.logFormat, "log-format", "text", "text or json")
	for _, f := range strings.Fields(cmd.flags) {
		a.opt.define(fs, name, f)
	}
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
	if len(rest) > cmd.positional {
		return nil, fmt.Errorf("%s: unexpected argument %q", fs.Name(), rest[cmd.positional])
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
	if a.opt.repoDir != "" {
		sub := cfg.Repo.Path
		if sub == "" {
			sub = "."
		}
		return source.NewDir(filepath.Join(a.opt.repoDir, filepath.FromSlash(sub))), nil
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

// loadSource builds the pipeline with its source and loads the desired state at the
// source's commit (pipeline step 1), for the commands that read the repository.
func (a *app) loadSource(ctx context.Context) (*pipeline.Pipeline, *schema.Repo, string, error) {
	p, err := a.pipeline(true)
	if err != nil {
		return nil, nil, "", err
	}
	repo, commit, err := p.LoadSource(ctx)
	if err != nil {
		return nil, nil, "", err
	}
	return p, repo, commit, nil
}

// run runs the pipeline of config.cue as o says.
func (a *app) run(ctx context.Context, o pipeline.Options) (pipeline.Result, error) {
	p, err := a.pipeline(o.Manual == nil || !o.Manual.NoSource)
	if err != nil {
		return pipeline.Result{}, err
	}
	return p.Run(ctx, o)
}
