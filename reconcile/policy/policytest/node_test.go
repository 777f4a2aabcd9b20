package policytest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestNodeReadsAnswersAsPexip: the fake node acts only on well-formed success answers
// and falls back on everything else.
func TestNodeReadsAnswersAsPexip(t *testing.T) {
	for _, tc := range []struct {
		name, ctype, body string
		code              int
		want              Kind
	}{
		{"room", "application/json", `{"status":"success","action":"continue","result":{"service_type":"conference","name":"R","service_tag":"t","allow_guests":false}}`, 200, Conference},
		{"reject", "application/json", `{"status":"success","action":"reject","result":{}}`, 200, Reject},
		{"continue empty", "application/json", `{"status":"success","action":"continue","result":{}}`, 200, Fallback},
		{"continue no result", "application/json", `{"status":"success","action":"continue"}`, 200, Fallback},
		{"no action", "application/json", `{"status":"success","result":{"service_type":"conference","name":"R","service_tag":"t"}}`, 200, Fallback},
		{"error status", "application/json", `{"status":"error","action":"continue","result":{}}`, 200, Fallback},
		{"unknown field", "application/json", `{"status":"success","action":"continue","result":{"service_type":"conference","name":"R","servicetag":"t"}}`, 200, Fallback},
		{"not conference", "application/json", `{"status":"success","action":"continue","result":{"service_type":"gateway","name":"R","service_tag":"t"}}`, 200, Fallback},
		{"not JSON", "application/json", `<html>`, 200, Fallback},
		{"text", "text/plain", `{"status":"success","action":"reject","result":{}}`, 200, Fallback},
		{"HTTP 500", "application/json", `{"status":"success","action":"reject","result":{}}`, 500, Fallback},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if u, p, ok := r.BasicAuth(); !ok || u != "u" || p != "p" || r.URL.Query().Get("local_alias") != "sip:a@example.com" || r.URL.Query().Get("vendor") == "" {
					http.Error(w, "bad request from the node", http.StatusTeapot)
					return
				}
				w.Header().Set("Content-Type", tc.ctype)
				w.WriteHeader(tc.code)
				w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			n := Node{BaseURL: srv.URL, Username: "u", Password: "p", Client: srv.Client()}
			if d := n.ServiceConfiguration(context.Background(), "sip:a@example.com", nil); d.Kind != tc.want {
				t.Errorf("%v (%s), want %v", d.Kind, d.Reason, tc.want)
			}
		})
	}
}

// TestNodeDeadline: a slow policy server is given up on at the deadline.
func TestNodeDeadline(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	n := Node{BaseURL: srv.URL, Client: srv.Client(), Deadline: 100 * time.Millisecond}
	d := n.Registration(context.Background(), "alice@example.com", "sip")
	if d.Kind != Fallback || d.HTTPStatus != 0 || !strings.Contains(d.Reason, "deadline") || d.Elapsed > 2*time.Second {
		t.Errorf("%v HTTP %d after %v: %s", d.Kind, d.HTTPStatus, d.Elapsed, d.Reason)
	}
}
