package daemon

// Incremental directory reads in serve (SPEC §7): how each cycle read the directories
// (status page, /api/status, metrics), and the watchers that keep a refreshAndPersist
// search open on each synced template so a directory change starts a cycle at once.

import (
	"context"
	"errors"
	"maps"
	"os"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/roster-dev/roster/reconcile"
	"github.com/roster-dev/roster/reconcile/directory"
	"github.com/roster-dev/roster/schema"
)

// readsOf is how plan read each template of repo: its sync reads, and a full read now
// for the templates read without one.
func readsOf(plan *reconcile.Plan, repo *schema.Repo, now time.Time) []reconcile.SyncRead {
	if repo == nil {
		return plan.SyncReads()
	}
	synced := map[string]reconcile.SyncRead{}
	for _, r := range plan.SyncReads() {
		synced[r.Template] = r
	}
	out := make([]reconcile.SyncRead, 0, len(repo.Templates))
	for _, t := range repo.Templates {
		r, ok := synced[t.Name]
		if !ok {
			r = reconcile.SyncRead{Directory: t.Source, Template: t.Name, Mode: reconcile.ReadFull, FullRead: now}
		}
		out = append(out, r)
	}
	return out
}

// syncMetrics are the gauges and counters of the directory reads.
type syncMetrics struct {
	incremental *prometheus.GaugeVec
	changes     *prometheus.CounterVec
	lastChanges *prometheus.GaugeVec
	fullRead    *prometheus.GaugeVec
	protocol    *prometheus.GaugeVec
}

func newSyncMetrics(reg *prometheus.Registry) *syncMetrics {
	m := &syncMetrics{
		incremental: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "roster_directory_incremental",
			Help: "1 when the last cycle read the template's directory incrementally, 0 when in full."}, []string{"directory", "template"}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "roster_directory_changes_total",
			Help: "Directory entries changed or deleted, as incremental reads reported them (applied cycles)."}, []string{"directory", "template"}),
		lastChanges: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "roster_directory_changes_last_cycle",
			Help: "Directory entries changed or deleted in the last cycle's incremental read."}, []string{"directory", "template"}),
		fullRead: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "roster_directory_last_full_read_timestamp_seconds",
			Help: "Unix time of the template's last full directory read."}, []string{"directory", "template"}),
		protocol: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "roster_directory_read_protocol",
			Help: "1 for the incremental protocol the template's directory is read with (syncrepl, dirsync or usn); no series when full reads only."},
			[]string{"directory", "template", "protocol"}),
	}
	reg.MustRegister(m.incremental, m.changes, m.lastChanges, m.fullRead, m.protocol)
	return m
}

// observeReads sets the directory metrics after a cycle.
func (m *metrics) observeReads(reads []reconcile.SyncRead, applied bool) {
	m.sync.protocol.Reset() // a protocol no longer used (auto detected another) leaves no series
	for _, r := range reads {
		if r.Protocol != "" {
			m.sync.protocol.WithLabelValues(r.Directory, r.Template, r.Protocol).Set(1)
		}
		inc := 0.0
		if r.Mode == reconcile.ReadIncremental {
			inc = 1
		}
		m.sync.incremental.WithLabelValues(r.Directory, r.Template).Set(inc)
		m.sync.lastChanges.WithLabelValues(r.Directory, r.Template).Set(float64(r.Changes))
		if applied {
			m.sync.changes.WithLabelValues(r.Directory, r.Template).Add(float64(r.Changes))
		}
		if !r.FullRead.IsZero() {
			m.sync.fullRead.WithLabelValues(r.Directory, r.Template).Set(float64(r.FullRead.Unix()))
		}
	}
}

// Backoff of a directory watcher whose persistent search ended.
const (
	watchMinBackoff = time.Second
	watchMaxBackoff = time.Minute
)

// watchRescan is how often the watchers are matched with the repo in force (a variable
// for tests).
var watchRescan = 5 * time.Second

// watch runs one watcher per synced template of the repo in force until ctx ends. A
// watcher keeps a refreshAndPersist search open from the stored cookie and triggers a
// cycle when a batch of changes arrives; the cycle reads them with refreshOnly and stores
// the cookie with its apply, so the watcher itself never writes. When the search drops,
// the watcher reconnects with backoff; the interval's polling goes on meanwhile.
func (d *daemon) watch(ctx context.Context) {
	running := map[string]context.CancelFunc{} // by template name + source
	defer func() {
		for _, stop := range running {
			stop()
		}
	}()
	tick := time.NewTicker(watchRescan)
	defer tick.Stop()
	for {
		d.mu.Lock()
		repo := d.watchRepo
		d.mu.Unlock()
		want := map[string]*schema.Template{}
		if repo != nil {
			for _, t := range repo.Templates {
				if cfg, ok := d.cfg.Directories[t.Source]; ok && cfg.Sync != schema.SyncFull {
					want[t.Source+"/"+t.Name] = t
				}
			}
		}
		for k, stop := range running {
			if _, ok := want[k]; !ok {
				stop()
				delete(running, k)
			}
		}
		for k, t := range want {
			if _, ok := running[k]; !ok {
				wctx, stop := context.WithCancel(ctx)
				running[k] = stop
				go d.watchTemplate(wctx, repo, t)
			}
		}
		d.mu.Lock()
		d.st.Watching = slices.Sorted(maps.Keys(running))
		d.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// watchTemplate keeps t's persistent search open until ctx ends.
func (d *daemon) watchTemplate(ctx context.Context, repo *schema.Repo, t *schema.Template) {
	backoff := watchMinBackoff
	for ctx.Err() == nil {
		started := time.Now()
		err := d.persist(ctx, repo, t)
		if ctx.Err() != nil {
			return
		}
		if time.Since(started) > watchMaxBackoff {
			backoff = watchMinBackoff // it ran a while: a fresh drop
		}
		var cannot watchError
		switch {
		case errors.As(err, &cannot): // not a drop: look again now and then
			backoff = watchMaxBackoff
			d.log.Debug("serve: directory not watched", "template", t.Name, "directory", t.Source, "why", err)
		case err != nil:
			d.log.Info("serve: directory watch ended; polling until it reconnects", "template", t.Name, "directory", t.Source, "err", err, "retry_in", backoff)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, watchMaxBackoff)
	}
}

// watchError: the directory cannot push changes (yet); the watcher looks again slowly.
type watchError string

func (e watchError) Error() string { return string(e) }

// persist runs one persistent search of t from its stored cookie.
func (d *daemon) persist(ctx context.Context, repo *schema.Repo, t *schema.Template) error {
	cfg := d.cfg.Directories[t.Source]
	var dir directory.Directory
	var err error
	if e := d.pipe.Engine; e != nil && e.OpenDirectory != nil {
		dir, err = e.OpenDirectory(t.Source, cfg, repo)
	} else {
		dir, err = reconcile.OpenDirectory(cfg, repo, os.Getenv, d.log)
	}
	if err != nil {
		return err
	}
	defer dir.Close()
	syncer, ok := dir.(directory.Syncer)
	if !ok {
		return watchError("the directory cannot report changes")
	}
	protocol, err := syncer.Mode(ctx)
	if err != nil {
		return err
	}
	if protocol != directory.ModeSyncrepl {
		return watchError("no persistent search on this directory (" + protocol + "); polling")
	}
	if d.pipe.Engine == nil {
		return watchError("no cycle has run yet")
	}
	req, id, err := d.pipe.Engine.SyncRequest(ctx, t, protocol)
	if err != nil {
		return err
	}
	cookies, err := d.db.SyncCookies(ctx)
	if err != nil {
		return err
	}
	c, ok := cookies[id]
	if !ok {
		return errors.New("no cookie yet: waiting for a full read")
	}
	var knownErr error
	err = syncer.Persist(ctx, req, c.Cookie, d.db.KnownSyncIDs(ctx, id, &knownErr), func(res directory.SyncResult) error {
		if knownErr != nil {
			return knownErr // a short list of known ids would hide deletions
		}
		if len(res.Changes) > 0 || res.Refresh {
			d.log.Debug("serve: directory changed", "template", t.Name, "changes", len(res.Changes))
			d.loop.Trigger("directory change")
		}
		return nil
	})
	if knownErr != nil {
		return knownErr
	}
	return err
}
