package loop

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func sign(secret []byte, body string) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(body))
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func TestWebhookSignatures(t *testing.T) {
	secret := []byte("s3cret")
	body := `{"ref":"refs/heads/main"}`
	sha1mac := hmac.New(sha1.New, secret)
	sha1mac.Write([]byte(body))
	sha1sig := "sha1=" + hex.EncodeToString(sha1mac.Sum(nil))

	cases := []struct {
		name     string
		method   string
		body     string
		sig      string
		secret   []byte
		want     int
		triggers int
	}{
		{"good", "POST", body, sign(secret, body), secret, 202, 1},
		{"missing", "POST", body, "", secret, 401, 0},
		{"wrong secret", "POST", body, sign([]byte("other"), body), secret, 401, 0},
		{"body changed", "POST", body + " ", sign(secret, body), secret, 401, 0},
		{"sha1 algorithm", "POST", body, sha1sig, secret, 401, 0},
		{"no prefix", "POST", body, strings.TrimPrefix(sign(secret, body), "sha256="), secret, 401, 0},
		{"not hex", "POST", body, "sha256=zz", secret, 401, 0},
		{"truncated", "POST", body, sign(secret, body)[:40], secret, 401, 0},
		{"GET", "GET", "", "", secret, 405, 0},
		{"empty secret", "POST", body, sign(nil, body), nil, 401, 0},
		{"too large", "POST", strings.Repeat("x", MaxWebhookBody+1), sign(secret, strings.Repeat("x", MaxWebhookBody+1)), secret, 413, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var reasons []string
			h := WebhookHandler(c.secret, func(r string) { reasons = append(reasons, r) }, nil)
			req := httptest.NewRequest(c.method, "/hooks/git", strings.NewReader(c.body))
			if c.sig != "" {
				req.Header.Set("X-Hub-Signature-256", c.sig)
			}
			req.Header.Set("X-GitHub-Event", "push")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != c.want {
				t.Fatalf("status = %d, want %d (%s)", rec.Code, c.want, rec.Body.String())
			}
			if len(reasons) != c.triggers {
				t.Fatalf("triggers = %d, want %d", len(reasons), c.triggers)
			}
			if c.triggers == 1 && reasons[0] != "webhook push" {
				t.Fatalf("reason = %q", reasons[0])
			}
			if c.want == 405 && rec.Header().Get("Allow") != "POST" {
				t.Fatal("405 without Allow: POST")
			}
		})
	}
}

func TestWebhookTooLargeWithoutContentLength(t *testing.T) {
	secret := []byte("k")
	triggered := false
	h := WebhookHandler(secret, func(string) { triggered = true }, nil)
	big := strings.Repeat("y", MaxWebhookBody+10)
	req := httptest.NewRequest("POST", "/hooks/git", io.MultiReader(strings.NewReader(big)))
	req.ContentLength = -1
	req.Header.Set("X-Hub-Signature-256", sign(secret, big))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusRequestEntityTooLarge || triggered {
		t.Fatalf("status %d triggered %v", rec.Code, triggered)
	}
}

func TestWebhookEmptySecretWarnsOnce(t *testing.T) {
	logger, buf := testLogger()
	h := WebhookHandler(nil, func(string) { t.Fatal("triggered without a secret") }, logger)
	for i := 0; i < 3; i++ {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("POST", "/hooks/git", strings.NewReader("{}")))
		if rec.Code != 401 {
			t.Fatalf("status %d", rec.Code)
		}
	}
	if n := strings.Count(buf.String(), "no secret configured"); n != 1 {
		t.Fatalf("warning logged %d times, want 1:\n%s", n, buf.String())
	}
}

// TestWebhookFlood sends 500 signed webhooks over loopback to a Loop whose Run is slow:
// they coalesce into a handful of runs, and /healthz keeps answering meanwhile.
func TestWebhookFlood(t *testing.T) {
	secret := []byte("flood-secret")
	const runTime = 300 * time.Millisecond
	var runs, active, overlaps atomic.Int32
	l := &Loop{
		Interval: time.Hour,
		Run: func(ctx context.Context, reason string) error {
			if active.Add(1) != 1 {
				overlaps.Add(1)
			}
			defer active.Add(-1)
			runs.Add(1)
			time.Sleep(runTime)
			return nil
		},
	}
	mux := http.NewServeMux()
	mux.Handle("/hooks/git", WebhookHandler(secret, l.Trigger, nil))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	srv := httptest.NewServer(mux) // listens on 127.0.0.1
	defer srv.Close()

	stop := startLoop(t, l)
	body := `{"ref":"refs/heads/main"}`
	sig := sign(secret, body)
	client := srv.Client()

	// /healthz prober, bounded in count.
	healthDone, healthStop := make(chan struct{}), make(chan struct{})
	var healthOK, healthBad atomic.Int32
	go func() {
		defer close(healthDone)
		for i := 0; i < 2000; i++ {
			select {
			case <-healthStop:
				return
			default:
			}
			resp, err := client.Get(srv.URL + "/healthz")
			if err != nil || resp.StatusCode != 200 {
				healthBad.Add(1)
			} else {
				healthOK.Add(1)
			}
			if resp != nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()

	start := time.Now()
	var wg sync.WaitGroup
	var accepted atomic.Int32
	const workers, perWorker = 4, 125 // 500 requests
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perWorker; i++ {
				req, _ := http.NewRequest("POST", srv.URL+"/hooks/git", strings.NewReader(body))
				req.Header.Set("X-Hub-Signature-256", sig)
				resp, err := client.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusAccepted {
					accepted.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	flood := time.Since(start)
	// Let the last coalesced run start and finish, then stop.
	time.Sleep(runTime + 100*time.Millisecond)
	stop()
	close(healthStop)
	<-healthDone

	if accepted.Load() != workers*perWorker {
		t.Fatalf("accepted %d of %d", accepted.Load(), workers*perWorker)
	}
	got := runs.Load()
	t.Logf("500 webhooks in %v → %d runs; healthz ok %d, failed %d", flood, got, healthOK.Load(), healthBad.Load())
	// One run at start, then at most one per runTime of flood plus the trailing one.
	if limit := int32(2 + flood/runTime + 1); got > limit || got > 10 {
		t.Fatalf("runs = %d for a %v flood, want ≤ min(10, %d)", got, flood, limit)
	}
	if got < 2 {
		t.Fatalf("runs = %d: the webhooks triggered nothing", got)
	}
	if overlaps.Load() != 0 {
		t.Fatal("runs overlapped")
	}
	if healthOK.Load() == 0 || healthBad.Load() != 0 {
		t.Fatalf("healthz: ok %d, failed %d", healthOK.Load(), healthBad.Load())
	}
}
