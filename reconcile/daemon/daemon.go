// Package daemon is `roster serve` (SPEC §6): a loop that runs one reconcile cycle at
// start, every repo.interval and on each signed webhook push (reconcile/loop), each cycle
// through the one pipeline (reconcile/pipeline); a mailer that delivers the outbox on its
// own goroutine; admin emails after a cycle; and an HTTP server with the status page,
// /api/status, probes and Prometheus metrics. It keeps the last good commit in force while
// a newer one does not validate.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/roster-dev/roster/notify"
	"github.com/roster-dev/roster/reconcile"
	"github.com/roster-dev/roster/reconcile/loop"
	"github.com/roster-dev/roster/reconcile/pipeline"
	"github.com/roster-dev/roster/reconcile/platform/push"
	"github.com/roster-dev/roster/reconcile/source"
	"github.com/roster-dev/roster/schema"
	"github.com/roster-dev/roster/state"
)

// Shutdown timings of `serve`.
const (
	// deliverGrace bounds the last delivery run after SIGTERM (in-flight SMTP).
	deliverGrace = 10 * time.Second
	// httpGrace bounds http.Server.Shutdown.
	httpGrace = 5 * time.Second
	// defaultInterval is the poll interval when repo.interval is unset.
	defaultInterval = time.Minute
	// defaultListen is http.listen's default: loopback only.
	defaultListen = "127.0.0.1:8080"
)

// Config is what Serve needs besides the pipeline's own configuration.
type Config struct {
	// Pipeline runs each cycle; its Config, Source and database are the daemon's.
	Pipeline *pipeline.Pipeline
	// DSN is state.dsn resolved against config.cue's folder (the lock file sits beside it).
	DSN string
	// Once runs one cycle, delivers what is due and returns (cron, tests).
	Once   bool
	Logger *slog.Logger
	// Listening, when set, is told the address the HTTP server listens on (tests).
	Listening func(addr string)
}

// LoopStatus is the daemon's own state, shown on /, /api/status and in the logs. It
// never holds a secret.
type LoopStatus struct {
	// State is starting, syncing, idle (the last cycle succeeded), failed or stopping.
	State string `json:"state"`
	// GoodCommit is the last commit that validated; it stays in force while newer commits
	// are invalid.
	GoodCommit string `json:"good_commit"`
	// Commit is the branch's commit as last fetched (may be invalid, then ≠ GoodCommit).
	Commit      string    `json:"commit"`
	LastRun     time.Time `json:"last_run"`
	LastSuccess time.Time `json:"last_success,omitzero"`
	// LastError is why the last cycle failed: fetch, validation, a refused plan, apply.
	LastError string `json:"last_error,omitempty"`
	// InvalidCommit and ValidationErrors describe the newest commit when it does not validate.
	InvalidCommit    string   `json:"invalid_commit,omitempty"`
	ValidationErrors []string `json:"validation_errors,omitempty"`
	// Cycles counts reconcile cycles since the daemon started.
	Cycles int64  `json:"cycles"`
	Ready  bool   `json:"ready"`
	Listen string `json:"listen,omitempty"`
	// Reads says how the last cycle read each template's directory (SPEC §7): full or
	// incremental, the changes it saw and when the last full read ran.
	Reads []reconcile.SyncRead `json:"directory_reads,omitempty"`
	// Watching names the templates whose directory pushes its changes (refreshAndPersist).
	Watching []string `json:"watching,omitempty"`
}

// Serve runs the daemon until ctx is cancelled (SIGINT/SIGTERM), then returns nil.
//
// Emails go out from a mailer goroutine of their own (mail.go), so a large delivery or an
// unreachable SMTP server never holds up a reconcile.
//
// Shutdown: the loop stops starting cycles; a cycle in its fetch or plan stage stops at
// once (nothing is written before apply), while an apply already in progress runs to its
// commit — SPEC §6 "finishes the running transaction" — since Apply is one SQLite
// transaction it is all or nothing either way. The mailer finishes the messages it is
// sending, then one last delivery run of at most deliverGrace sends what is due; the HTTP
// server shuts down after that (it answers until then, so probes and the status page show
// "stopping"), and the lock is released.
func Serve(ctx context.Context, c Config) error {
	cfg := c.Pipeline.Config
	if c.DSN == ":memory:" || strings.Contains(c.DSN, "mode=memory") {
		return errors.New("serve: state.dsn is an in-memory database; the daemon needs a file")
	}
	c.Pipeline.Incremental = true // SPEC §7: directories that can say what changed are read incrementally
	if c.Pipeline.Engine != nil {
		c.Pipeline.Engine.Incremental = true
	}
	release, err := loop.AcquireLock(strings.TrimPrefix(strings.SplitN(c.DSN, "?", 2)[0], "file:") + ".lock")
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	defer release()
	db, err := c.Pipeline.Store(ctx)
	if err != nil {
		return err
	}
	d := newDaemon(c, db)
	d.stateDir = filepath.Dir(strings.TrimPrefix(strings.SplitN(c.DSN, "?", 2)[0], "file:"))
	if testHook != nil {
		testHook(d)
	}
	d.log.Info("serve: starting", "role", cfg.Role)
	if err := d.initMailer(ctx); err != nil {
		return err
	}
	if err := d.initPusher(ctx); err != nil {
		return err
	}
	if err := d.initPolicy(ctx, !c.Once); err != nil {
		return err
	}
	defer d.closePolicy() // idempotent: the normal path stops it earlier, after the last mail

	if c.Once {
		err := d.cycle(ctx, "once")
		d.pushOnce(ctx) // before the emails, which wait for their objects' push
		d.flushMail(ctx)
		return err
	}

	listen := cfg.HTTP.Listen
	if listen == "" {
		listen = defaultListen
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("serve: listen on %s (http.listen): %w", listen, err)
	}
	addr := ln.Addr().String()
	d.mu.Lock()
	d.st.Listen = addr
	d.mu.Unlock()
	srv := &http.Server{Handler: d.handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
	srvErr := make(chan error, 1)
	go func() { srvErr <- srv.Serve(ln) }()
	d.log.Info("serve: listening", "addr", addr, "interval", d.interval.String(), "repo", source.Scrub(cfg.Repo.URL))
	if c.Listening != nil {
		c.Listening(addr)
	}

	loopCtx, stopLoop := context.WithCancel(ctx)
	defer stopLoop()
	loopDone := make(chan error, 1)
	go func() { loopDone <- d.loop.Start(loopCtx) }()
	mailDone := make(chan struct{})
	go func() { defer close(mailDone); d.mailer(loopCtx) }()
	pushDone := make(chan struct{})
	go func() { defer close(pushDone); d.pusher(loopCtx) }()
	go d.checker(loopCtx)
	go d.watch(loopCtx)
	d.logPolicy()

	var runErr error
	select {
	case err := <-loopDone:
		runErr = err
	case err := <-srvErr:
		runErr = fmt.Errorf("serve: http: %w", err)
		stopLoop()
		<-loopDone
	}
	d.setState("stopping")
	stopLoop()
	<-mailDone
	<-pushDone
	d.log.Info("serve: stopping; delivering what is due", "grace", deliverGrace.String())
	d.flushMail(ctx)
	d.closePolicy()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), httpGrace)
	if err := srv.Shutdown(sctx); err != nil {
		d.log.Warn("serve: http shutdown", "err", err)
	}
	cancel()
	d.log.Info("serve: stopped")
	return runErr
}

// testHook, when set, is given the daemon Serve builds (tests).
var testHook func(*daemon)

// daemon is the state of `roster serve` between cycles.
type daemon struct {
	log      *slog.Logger
	cfg      *schema.Config
	db       *state.DB
	pipe     *pipeline.Pipeline
	met      *metrics
	loop     *loop.Loop
	interval time.Duration

	// Used by the cycle only (the loop runs one at a time).
	good        *schema.Repo // last repo that validated, with goodCommit
	goodCommit  string
	badCommit   string // the newest commit, when it does not validate
	badErrs     []string
	lastMailErr string // the last error an admin was emailed about

	mail        *notify.Deliverer // nil: no smtp server and no mail_dir, or a replica
	policy      *policyEndpoint   // nil: not in policy mode
	stateDir    string            // the state database's directory (the policy snapshot file)
	policyNiced bool              // lowerPriority has logged
	mailKick    chan struct{}
	push        *push.Deliverer // nil: no platform in push mode
	pushKick    chan struct{}
	lastPush    push.Progress // guarded by mu

	mu        sync.Mutex
	st        LoopStatus
	watchRepo *schema.Repo // the repo in force, for the directory watchers (guarded by mu)
}

func newDaemon(c Config, db *state.DB) *daemon {
	cfg := c.Pipeline.Config
	d := &daemon{log: c.Logger, cfg: cfg, db: db, pipe: c.Pipeline, met: newMetrics(),
		interval: cfg.Repo.Interval.Duration, st: LoopStatus{State: "starting"}, mailKick: make(chan struct{}, 1), pushKick: make(chan struct{}, 1)}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if d.interval <= 0 {
		d.interval = defaultInterval
	}
	d.loop = &loop.Loop{Interval: d.interval, Run: d.cycle, Logger: d.log}
	return d
}

func (d *daemon) setState(s string) {
	d.mu.Lock()
	d.st.State = s
	d.mu.Unlock()
}

// snapshot copies the daemon's status.
func (d *daemon) snapshot() LoopStatus {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.st
	s.ValidationErrors = append([]string(nil), d.st.ValidationErrors...)
	return s
}

// cycleErr is a failed stage of a cycle.
func cycleErr(stage string, err error) error { return fmt.Errorf("%s: %w", stage, err) }

// cycle is one reconcile: fetch → load + validate (new commits) → plan → check → apply →
// admin emails → deliver. It returns an error when the cycle failed (the loop backs off);
// an invalid commit is not such an error when the last good commit reconciled fine, so the
// fix is picked up at the normal interval.
func (d *daemon) cycle(ctx context.Context, reason string) error {
	start := time.Now()
	d.mu.Lock()
	d.st.State = "syncing"
	d.st.Cycles++
	d.mu.Unlock()
	d.met.cycles.Inc()
	log := d.log.With("reason", reason)
	log.Debug("serve: cycle start")

	d.lowerPriority() // threads started since the last cycle
	res := d.reconcile(ctx, log)
	d.policyAfterCycle(ctx, res)
	took := time.Since(start)
	d.met.duration.Observe(took.Seconds())

	now := time.Now().UTC()
	d.mu.Lock()
	d.st.LastRun = now
	d.st.Commit = res.commit
	d.st.GoodCommit = d.goodCommit
	d.st.InvalidCommit = d.badCommit
	d.st.ValidationErrors = append([]string(nil), d.badErrs...)
	d.st.LastError = ""
	if res.err != nil {
		d.st.LastError = res.err.Error()
	}
	switch {
	case res.err != nil || d.badCommit != "":
		d.st.State = "failed"
	default:
		d.st.State = "idle"
	}
	if res.applied {
		d.st.LastSuccess = now
		d.st.Ready = true
	}
	if res.plan != nil {
		d.st.Reads = readsOf(res.plan, d.good, now)
	}
	d.watchRepo = d.good
	d.mu.Unlock()
	if res.plan != nil {
		d.met.observeReads(d.st.Reads, res.applied)
	}
	if res.applied {
		d.met.lastSuccess.Set(float64(now.Unix()))
	}

	if ctx.Err() == nil || res.applied {
		d.notifyAdmins(context.WithoutCancel(ctx), res)
	}
	kick(d.pushKick)
	kick(d.mailKick)
	d.met.refreshObjects(context.WithoutCancel(ctx), d.db)

	switch {
	case res.err != nil:
		log.Warn("serve: cycle failed", "commit", shortCommit(res.commit), "took", took.Round(time.Millisecond), "err", res.err)
		return res.err
	case d.badCommit != "":
		log.Warn("serve: commit is invalid; the last good commit stays in force", "commit", shortCommit(d.badCommit),
			"good_commit", shortCommit(d.goodCommit), "errors", len(d.badErrs))
	case res.plan != nil && res.plan.HasChanges():
		s := res.plan.Summary
		log.Info("serve: applied", "commit", shortCommit(res.commit), "create", s.Create, "update", s.Update, "delete", s.Delete,
			"deactivate", s.Deactivate, "reactivate", s.Reactivate, "emails", s.Emails, "took", took.Round(time.Millisecond))
	default:
		log.Debug("serve: nothing to change", "commit", shortCommit(res.commit), "took", took.Round(time.Millisecond))
	}
	return nil
}

// cycleResult is what one reconcile did.
type cycleResult struct {
	commit  string          // fetched commit
	applied bool            // a plan of the good commit was applied (changes or not)
	plan    *reconcile.Plan // the applied plan
	err     error
}

func (d *daemon) reconcile(ctx context.Context, log *slog.Logger) (res cycleResult) {
	commit, err := d.pipe.Fetch(ctx)
	if err != nil {
		d.met.fetchFailures.Inc()
		res.err = cycleErr("fetch", err)
		if d.good == nil || ctx.Err() != nil {
			return res
		}
		// Keep the last good commit in force: directory changes still flow. res.err stays
		// set, so the cycle still counts as failed.
		commit = d.goodCommit
	}
	res.commit = commit
	// A plain folder (commit "") may change on disk between cycles: load it every time.
	reuse := commit != "" && (commit == d.goodCommit && d.good != nil || commit == d.badCommit)
	if !reuse {
		repo, err := d.pipe.Load(commit)
		if err != nil {
			d.met.validationFailures.Inc()
			d.badCommit = commit
			if d.badCommit == "" {
				d.badCommit = "(working tree)"
			}
			d.badErrs = errorLines(err)
			log.Warn("serve: commit does not validate", "commit", shortCommit(commit), "errors", len(d.badErrs), "first", d.badErrs[0])
		} else {
			if commit != d.goodCommit && d.goodCommit != "" {
				log.Info("serve: new commit", "commit", shortCommit(commit), "previous", shortCommit(d.goodCommit))
			}
			d.good, d.goodCommit = repo, commit
			d.badCommit, d.badErrs = "", nil
		}
	}
	if d.good == nil {
		res.err = fmt.Errorf("commit %s does not validate and there is no earlier good commit: %s", shortCommit(commit),
			strings.Join(d.badErrs, "; "))
		return res
	}
	if ctx.Err() != nil {
		res.err = ctx.Err()
		return res
	}
	// The daemon never bypasses the guards: an operator runs `roster apply --allow-…`.
	run, err := d.pipe.Run(ctx, pipeline.Options{Actor: "daemon", Repo: d.good, Commit: d.goodCommit, FinishApply: true,
		Planned: func(p *reconcile.Plan) {
			for _, t := range p.Templates {
				c := d.met.directoryErrors.WithLabelValues(t.Name)
				if t.Error != "" {
					c.Inc()
				}
			}
		},
		Applying: func(p *reconcile.Plan) {
			if p.HasChanges() {
				log.Info("serve: applying plan", "commit", shortCommit(d.goodCommit), "changes", p.Len(), "emails", p.EmailCount())
			}
		},
		Applied: func(p *reconcile.Plan, _ reconcile.ApplyResult) {
			for _, c := range p.All() {
				d.met.changes.WithLabelValues(string(c.Kind), string(c.Action)).Inc()
			}
		}})
	var failed *pipeline.TemplateFailedError
	switch {
	case run.Failed == pipeline.StepPlan || run.Failed == pipeline.StepApply:
		res.err = cycleErr(string(run.Failed), err)
		return res
	case err != nil && !errors.As(err, &failed): // refused by the guard (the admin email tells its numbers), or stopped
		res.err, res.plan = err, run.Plan
		return res
	}
	res.applied, res.plan = true, run.Plan
	if failed != nil && res.err == nil {
		// The other templates applied; the cycle still counts as failed, naming the template.
		res.err = failed
	}
	return res
}

// errorLines splits a load error into its lines (a schema.ErrorList prints one per line).
func errorLines(err error) []string {
	var list schema.ErrorList
	if errors.As(err, &list) {
		out := make([]string, len(list))
		for i, e := range list {
			out[i] = e.Error()
		}
		return out
	}
	var lines []string
	for _, l := range strings.Split(err.Error(), "\n") {
		if strings.TrimSpace(l) != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		lines = []string{err.Error()}
	}
	return lines
}

func shortCommit(c string) string {
	if len(c) > 12 {
		return c[:12]
	}
	return c
}

// webhookSecret reads the webhook secret from the variable repo.webhook_secret_env.
func (d *daemon) webhookSecret() []byte {
	if d.cfg.Repo.WebhookSecretEnv == "" {
		return nil
	}
	return []byte(os.Getenv(d.cfg.Repo.WebhookSecretEnv))
}
