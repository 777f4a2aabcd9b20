package main

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/roster-dev/roster/reconcile/loop"
)

// handler is the daemon's HTTP API: the status page, its JSON, probes, metrics, webhook.
func (d *daemon) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/hooks/git", loop.WebhookHandler(d.webhookSecret(), d.loop.Trigger, d.a.logger)) // POST only; 405 else
	mux.HandleFunc("GET /{$}", d.serveStatusPage)
	mux.HandleFunc("GET /api/status", d.serveStatusJSON)
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
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.met.reg, promhttp.HandlerOpts{Registry: d.met.reg}))
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

// status is collectStatus plus the daemon's own state; while a cycle runs every template
// shows "syncing".
func (d *daemon) status(ctx context.Context) (*Status, error) {
	s, err := collectStatus(ctx, d.db, time.Now())
	if err != nil {
		return nil, err
	}
	ds := d.snapshot()
	s.Daemon = &ds
	if ds.State == "syncing" {
		for i := range s.Templates {
			s.Templates[i].State = "syncing"
		}
	}
	return s, nil
}

func (d *daemon) serveStatusJSON(w http.ResponseWriter, r *http.Request) {
	s, err := d.status(r.Context())
	if err != nil {
		d.a.logger.Warn("serve: status", "err", err)
		http.Error(w, "cannot read status", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(s)
}
