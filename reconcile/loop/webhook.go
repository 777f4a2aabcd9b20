package loop

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// MaxWebhookBody is the largest webhook body accepted (GitHub caps payloads at 25 MB,
// but a push notification needs no more than this: only the signature matters).
const MaxWebhookBody = 1 << 20

// rejectLogEvery limits warnings about rejected webhook requests to one per period.
const rejectLogEvery = 10 * time.Second

// WebhookHandler verifies X-Hub-Signature-256 ("sha256=" + hex HMAC-SHA256 of the raw body
// with secret, constant-time compare via hmac.Equal) and calls trigger on success.
//
// POST only (405 otherwise); a body over MaxWebhookBody gets 413; a missing or bad
// signature gets 401 and no trigger. An empty secret refuses every request (401) and logs
// a warning once. Success answers 202 Accepted: the sync runs later, in the loop.
func WebhookHandler(secret []byte, trigger func(reason string), logger *slog.Logger) http.Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	key := append([]byte(nil), secret...)
	h := &webhook{secret: key, trigger: trigger, log: logger}
	return h
}

type webhook struct {
	secret     []byte
	trigger    func(string)
	log        *slog.Logger
	noSecret   sync.Once
	lastReject atomic.Int64 // unix nanos of the last rejection warning
	rejected   atomic.Int64 // rejections since the last warning
}

func (h *webhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if len(h.secret) == 0 {
		h.noSecret.Do(func() {
			h.log.Warn("webhook: no secret configured (repo.webhook_secret_env); refusing all webhook requests")
		})
		http.Error(w, "webhook disabled: no secret configured", http.StatusUnauthorized)
		return
	}
	if r.ContentLength > MaxWebhookBody {
		h.reject(r, "body too large")
		http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxWebhookBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			h.reject(r, "body too large")
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "cannot read body", http.StatusBadRequest)
		return
	}
	if !validSignature(h.secret, body, r.Header.Get("X-Hub-Signature-256")) {
		h.reject(r, "missing or bad X-Hub-Signature-256")
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	reason := "webhook"
	if ev := token(r.Header.Get("X-GitHub-Event")); ev != "" {
		reason += " " + ev
	}
	h.trigger(reason)
	h.log.Debug("webhook: accepted", "reason", reason, "delivery", token(r.Header.Get("X-GitHub-Delivery")))
	w.WriteHeader(http.StatusAccepted)
	_, _ = io.WriteString(w, "accepted\n")
}

// reject logs a refused request, at most once per rejectLogEvery with the count since.
func (h *webhook) reject(r *http.Request, why string) {
	n := h.rejected.Add(1)
	now := time.Now().UnixNano()
	last := h.lastReject.Load()
	if now-last < int64(rejectLogEvery) || !h.lastReject.CompareAndSwap(last, now) {
		return
	}
	h.rejected.Add(-n)
	h.log.Warn("webhook: request refused", "why", why, "remote", r.RemoteAddr, "refused_since_last_warning", n)
}

// validSignature checks header = "sha256=" + hex(HMAC-SHA256(secret, body)).
func validSignature(secret, body []byte, header string) bool {
	hexSig, ok := strings.CutPrefix(header, "sha256=")
	if !ok {
		return false
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil || len(got) != sha256.Size {
		return false
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return hmac.Equal(got, mac.Sum(nil))
}

// token keeps a header value fit for a log line: short, letters, digits and -_.
func token(s string) string {
	if len(s) > 64 {
		s = s[:64]
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return ""
		}
	}
	return s
}
