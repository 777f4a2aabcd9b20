package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"github.com/roster-dev/roster/reconcile/pipeline"
	"io"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/roster-dev/roster/reconcile/loop"
)

// handler is the daemon's HTTP API: the status page, its JSON, probes, metrics, webhook.
func (d *daemon) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/hooks/git", loop.WebhookHandler(d.webhookSecret(), d.loop.Trigger, d.log)) // POST only; 405 else
	mux.HandleFunc("GET /{$}", d.serveStatus("text/html; charset=utf-8", "status page", func(w io.Writer, s *Status) error {
		return statusPage.Execute(w, s)
	}))
	mux.HandleFunc("GET /api/status", d.serveStatus("application/json", "status JSON", func(w io.Writer, s *Status) error {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !d.snapshot().Ready {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("not ready: no successful sync yet\n"))
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	prom := promhttp.HandlerFor(d.met.reg, promhttp.HandlerOpts{Registry: d.met.reg})
	mux.Handle("GET /metrics", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.met.refreshQueues(r.Context(), d.db) // the queue moves between cycles
		prom.ServeHTTP(w, r)
	}))
	return securityHeaders(mux)
}

func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
		w.Header().Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	})
}

// status is ReadStatus plus the daemon's own state; while a cycle runs every template
// shows "syncing".
func (d *daemon) status(ctx context.Context) (*Status, error) {
	s, err := ReadStatus(ctx, d.db, time.Now())
	if err != nil {
		return nil, err
	}
	ls := d.snapshot()
	s.Daemon = &ls
	d.mu.Lock()
	pr := d.lastPush
	d.mu.Unlock()
	if q := s.Platforms[pipeline.PexipPlatform]; q != nil && pr.Total > 0 {
		q.Push = &PushProgress{Done: pr.Done, Total: pr.Total, RatePerS: pr.Rate, ETASecond: int64(pr.ETA.Seconds())}
	}
	s.Policy = d.policyStatus()
	if ls.State == "syncing" {
		for i := range s.Templates {
			s.Templates[i].State = "syncing"
		}
	}
	return s, nil
}

// serveStatus answers with the status as render writes it; render writes into a buffer
// first, so a failure is a clean 500 rather than half a page.
func (d *daemon) serveStatus(contentType, what string, render func(io.Writer, *Status) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, err := d.status(r.Context())
		if err != nil {
			d.log.Warn("serve: status", "err", err)
			http.Error(w, "cannot read status", http.StatusInternalServerError)
			return
		}
		var b bytes.Buffer
		if err := render(&b, s); err != nil {
			d.log.Warn("serve: "+what, "err", err)
			http.Error(w, "cannot render "+what, http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", contentType)
		_, _ = w.Write(b.Bytes())
	}
}
