package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/roster-dev/roster/reconcile/directory"
	"github.com/roster-dev/roster/schema"
	"github.com/roster-dev/roster/schema/pattern"
	"github.com/roster-dev/roster/state"
)

// Engine runs the reconcile cycle for one configuration and state database.
type Engine struct {
	Config *schema.Config
	DB     *state.DB
	Logger *slog.Logger
	// DefaultEmails are the built-in org-wide emails (activation, invite, admin_summary).
	DefaultEmails map[string]MailSpec
	// Getenv reads the secrets named by *_env settings (os.Getenv when nil).
	Getenv func(string) string
	// OpenDirectory overrides how directories are opened (tests); nil = OpenDirectory.
	OpenDirectory func(name string, cfg schema.DirConfig, repo *schema.Repo) (directory.Directory, error)
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Incremental lets Plan read directories incrementally where they can (SPEC §7): the
	// daemon sets it; commands read in full.
	Incremental bool
	// NoRenderCache renders every entry of a full read, the render cache (rendercache.go)
	// neither read nor written.
	NoRenderCache bool

	mu   sync.Mutex
	last *Plan // the last incremental plan, when it changed nothing (quiet cycles reuse it)
	// Incremental plans keep the index of the state while the database has not changed
	// (sync.go), and the entries of each search, updated from the engine's own applies
	// (syncentries.go), from one cycle to the next.
	index *indexCache
	sets  map[string]*entrySet
	// aheadAlways (tests) skips cached entries ahead of the index in every batch, as if
	// the index never loaded in time.
	aheadAlways bool
	aheadMisses int   // (tests) plans made again because an entry skipped ahead was needed
	aheadHits   int64 // (tests) entries skipped ahead of the index, over all plans
}

func (e *Engine) getenv(k string) string {
	if k == "" {
		return ""
	}
	if e.Getenv != nil {
		return e.Getenv(k)
	}
	return os.Getenv(k)
}

func (e *Engine) now() time.Time {
	if e.Now != nil {
		return e.Now().UTC()
	}
	return time.Now().UTC()
}

// Env returns the pattern environment keyed by the secret key (SPEC §5.5).
func (e *Engine) Env(ctx context.Context) (*pattern.Env, error) {
	key, err := e.DB.SecretKey(ctx, e.getenv(e.Config.SecretKeyEnv))
	if err != nil {
		return nil, err
	}
	return pattern.NewEnv(pattern.Options{SecretKey: key}), nil
}

// OpenDirectory opens a directory of config.cue: an LDIF file of the repo, or LDAP.
func OpenDirectory(cfg schema.DirConfig, repo *schema.Repo, getenv func(string) string, logger *slog.Logger) (directory.Directory, error) {
	if cfg.LDIF != "" {
		open, ok := repo.LDIF[cfg.LDIF]
		if !ok {
			return nil, fmt.Errorf("ldif file %s is not in the repo", cfg.LDIF)
		}
		return directory.OpenLDIF(open, cfg.BaseDN)
	}
	return directory.NewLDAP(directory.Config{URL: cfg.URL, BaseDN: cfg.BaseDN, BindDN: cfg.BindDN,
		BindPassword: getenv(cfg.BindPasswordEnv), StartTLS: cfg.StartTLS, CAFile: cfg.CAFile,
		PageSize: cfg.PageSize, Timeout: cfg.Timeout.Duration, Logger: logger})
}

// Plan renders the repo at commit against the directory and diffs it with the database.
func (e *Engine) Plan(ctx context.Context, repo *schema.Repo, commit string) (*Plan, error) {
	env, err := e.Env(ctx)
	if err != nil {
		return nil, err
	}
	var mu sync.Mutex
	opened := map[string]directory.Directory{}
	openErr := map[string]error{}
	defer func() {
		for _, d := range opened {
			d.Close()
		}
	}()
	open := func(name string) (directory.Directory, error) {
		mu.Lock()
		defer mu.Unlock()
		if d, ok := opened[name]; ok {
			return d, nil
		}
		if err, ok := openErr[name]; ok {
			return nil, err
		}
		cfg, ok := e.Config.Directories[name]
		if !ok {
			return nil, fmt.Errorf("no directory %q in config", name)
		}
		var d directory.Directory
		var err error
		if e.OpenDirectory != nil {
			d, err = e.OpenDirectory(name, cfg, repo)
		} else {
			d, err = OpenDirectory(cfg, repo, e.getenv, e.Logger)
		}
		if err != nil {
			openErr[name] = err
			return nil, err
		}
		opened[name] = d
		return d, nil
	}
	// The database changing between reading its index and its objects (an apply by
	// another process) is caught by the state version; planning again sees the new state.
	var sp *syncPlan
	if e.Incremental {
		if sp, err = e.prepareSync(ctx, repo, commit, open); err != nil {
			return nil, err
		}
		if p, err := e.quiet(ctx, repo, commit, sp); p != nil || err != nil {
			return p, err
		}
	}
	o := planOptions{noCache: e.NoRenderCache}
	for attempt := 1; ; attempt++ {
		p, err := e.plan(ctx, repo, commit, env, open, sp, o)
		if errors.Is(err, state.ErrStateChanged) && attempt < 3 {
			continue
		}
		if errors.Is(err, errCacheConflict) && !o.noCache {
			o.noCache = true
			continue
		}
		if errors.Is(err, errAheadMiss) && !o.noAhead {
			o.noAhead = true
			e.mu.Lock()
			e.aheadMisses++
			e.mu.Unlock()
			continue
		}
		return p, err
	}
}

// planOptions are what an attempt of Plan leaves out after an earlier one failed.
type planOptions struct {
	noCache bool // the render cache (a skipped entry took part in a duplicate email)
	noAhead bool // skipping cached entries before the index is loaded (one was needed)
}

// plan is one attempt of Plan:
//  1. start reading the index of the actual state (owner and digest of every object);
//  2. search the directory and render each entry, marking the objects it renders
//     unchanged by their digest (Render waits for the index at its first batch, but a
//     command's skips the entries the render cache holds while the index loads, and marks
//     their objects once it is there: rendercache_ahead.go);
//  3. load in full the objects the diff must see (hydrate): a no-op plan loads none;
//  4. diff.
//
// A no-op reconcile of 400,000 people so holds an index of the state, never the state.
func (e *Engine) plan(ctx context.Context, repo *schema.Repo, commit string, env *pattern.Env, open func(string) (directory.Directory, error), sp *syncPlan, o planOptions) (*Plan, error) {
	start := time.Now()
	var rc *renderCache
	if !o.noCache {
		if key, err := e.DB.SecretKey(ctx, e.getenv(e.Config.SecretKeyEnv)); err == nil {
			rc = openRenderCache(ctx, e.DB, e.Config, repo, key)
		}
	}
	dg, cached := e.cachedIndex(ctx, sp, commit)
	if dg == nil {
		dg = newDigester(repo)
		// A command's index (the daemon keeps its own from cycle to cycle) leaves out the
		// digests of the templates whose entries the render cache holds: it marks them
		// unchanged without comparing.
		if sp == nil && rc != nil {
			dg.spec.Undigested = rc.undigested()
		}
	}
	type loaded struct {
		ix     *state.Index
		tables *refTables
		err    error
		at     time.Duration
	}
	ch := make(chan loaded, 1)
	ready := make(chan struct{})
	go func() {
		defer close(ready)
		if cached != nil {
			ch <- loaded{cached, e.refTables(cached), nil, 0}
			return
		}
		ix, err := e.DB.LoadIndex(ctx, dg.spec)
		if err != nil {
			ch <- loaded{err: err, at: time.Since(start)}
			return
		}
		if sp != nil {
			e.keepIndex(commit, dg, ix)
		}
		// The lookup tables are built here, beside the directory read, not when the
		// render first needs them.
		tables := e.refTables(ix)
		if tables == nil {
			tables = buildRefTables(ix, dg)
		}
		ch <- loaded{ix, tables, nil, time.Since(start)}
	}()
	// A command's render skips cached entries before the index is there (the daemon
	// keeps its index from cycle to cycle and reads incrementally).
	var ahead *indexAhead
	if sp == nil && rc != nil && !o.noAhead {
		ahead = &indexAhead{ready: ready, dg: dg, never: e.aheadAlways}
	}
	var got *loaded
	var late *lateDigests
	refs := func() (*refIndex, error) {
		if got == nil {
			l := <-ch
			got = &l
		}
		if got.err != nil {
			return nil, got.err
		}
		ri := newRefIndexWith(got.ix, dg, got.tables)
		if len(dg.spec.Undigested) > 0 {
			ri.late = &lateDigests{ctx: ctx, db: e.DB, ix: got.ix, spec: dg.spec}
			late = ri.late
		}
		return ri, nil
	}
	desired, err := Render(ctx, Inputs{Config: e.Config, Repo: repo, Commit: commit, Env: env, Directory: open,
		Now: e.now(), DefaultEmails: e.DefaultEmails, refs: refs, sync: sp, cache: rc, ahead: ahead})
	if err != nil {
		if got == nil {
			<-ch // let the load finish before the caller closes the database
		}
		return nil, err
	}
	if late.stateChanged() {
		return nil, state.ErrStateChanged
	}
	rendered, loadedAt := time.Since(start), got.at
	actual, err := hydrate(ctx, e.DB, desired)
	if err != nil {
		return nil, err
	}
	hydrated := time.Since(start)
	p := Diff(desired, actual)
	if sp != nil && got != nil && got.err == nil {
		ix := got.ix
		p.applied = func(ctx context.Context, version int64, own bool) {
			next, tables := ix, e.cachedTables(ix)
			switch {
			case !own:
				next, tables = nil, nil
			case p.HasChanges():
				next, tables = e.refreshIndex(ctx, commit, dg, ix, p, version)
			}
			e.syncApplied(sp, p, dg, ix, next, tables)
		}
	}
	if rc != nil {
		p.cached, p.late = int(rc.hits.Load()), late.reads()
		e.mu.Lock()
		e.aheadHits += rc.ahead.Load()
		e.mu.Unlock()
	}
	rc.keep(ctx, e.DB, e.Logger, p, desired)
	p.loaded = len(actual.VMRs) + len(actual.Devices) + len(actual.Users)
	if sp != nil {
		p.syncWrites, p.syncReads = sp.writes(p, desired), sp.infos(desired)
		e.remember(p, desired)
	}
	if e.Logger != nil {
		e.Logger.Debug("planned", "commit", commit, "render", rendered, "load_index", loadedAt,
			"load_objects", hydrated-rendered, "diff", time.Since(start)-hydrated, "changes", p.Len(),
			"loaded", len(actual.VMRs)+len(actual.Devices)+len(actual.Users), "emails", p.EmailCount(), "render_cached", p.cached, "late_digests", p.late)
	}
	return p, nil
}
