package pexip_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roster-dev/roster/reconcile/platform/pexip"
	"github.com/roster-dev/roster/reconcile/platform/pexip/pexipfake"
)

const testPassword = "s3cret-Pa55"

func newPair(t *testing.T, tune func(*pexip.Config)) (*pexipfake.Server, *pexip.Client) {
	t.Helper()
	fake := pexipfake.New("roster", testPassword)
	t.Cleanup(fake.Close)
	cfg := pexip.Config{URL: fake.URL, Username: "roster", Password: testPassword, Backoff: 10 * time.Millisecond}
	if tune != nil {
		tune(&cfg)
	}
	c, err := pexip.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return fake, c
}

func intp(n int) *int { return &n }

func TestClientCreateGetPatchDelete(t *testing.T) {
	ctx := context.Background()
	fake, c := newPair(t, nil)
	id, err := c.Create(ctx, pexip.Conferences, pexip.Conference{Name: "Alice's room", Description: "Alice", PIN: "1234",
		MaxCallrateIn: intp(2048), Tag: "staff", PrimaryOwnerEmailAddress: "alice@example.com",
		Aliases: []pexip.ConferenceAlias{{Alias: "alice@example.com"}, {Alias: "1001", Description: "dial-in"}}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := pexip.GetAs[pexip.Conference](ctx, c, pexip.Conferences, id)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "Alice's room" || got.PIN != "1234" || *got.MaxCallrateIn != 2048 || got.MaxCallrateOut != nil ||
		got.ServiceType != "conference" || len(got.Aliases) != 2 || got.Aliases[1].Description != "dial-in" ||
		got.ResourceURI != pexip.Conferences.URI(id) {
		t.Fatalf("conference = %+v", got)
	}
	// Patch sends only the fields given: the others stay.
	if err := c.Patch(ctx, pexip.Conferences, id, map[string]any{"description": "Alice B.", "max_callrate_in": nil}); err != nil {
		t.Fatal(err)
	}
	got, _ = pexip.GetAs[pexip.Conference](ctx, c, pexip.Conferences, id)
	if got.Description != "Alice B." || got.MaxCallrateIn != nil || got.PIN != "1234" || got.Tag != "staff" {
		t.Fatalf("after patch = %+v", got)
	}
	fake.PatchStatus.Store(http.StatusNoContent) // the other answer some versions give
	if err := c.Patch(ctx, pexip.Conferences, id, map[string]any{"pin": "4321"}); err != nil {
		t.Fatal(err)
	}
	aliases, err := pexip.ListAll[pexip.ConferenceAlias](ctx, c, pexip.ConferenceAliases, url.Values{"conference": {fmt.Sprint(id)}})
	if err != nil || len(aliases) != 2 || aliases[0].Conference != pexip.Conferences.URI(id) {
		t.Fatalf("aliases = %+v, %v", aliases, err)
	}
	if err := c.Delete(ctx, pexip.Conferences, id); err != nil {
		t.Fatal(err)
	}
	if fake.Count(pexip.Conferences) != 0 || fake.Count(pexip.ConferenceAliases) != 0 {
		t.Errorf("left after delete: %d conferences, %d aliases", fake.Count(pexip.Conferences), fake.Count(pexip.ConferenceAliases))
	}
	if err := c.Delete(ctx, pexip.Conferences, id); !errors.Is(err, pexip.ErrNotFound) {
		t.Errorf("second delete: %v", err)
	}
}

func TestClientDevicePasswordIsWriteOnly(t *testing.T) {
	ctx := context.Background()
	fake, c := newPair(t, nil)
	id, err := c.Create(ctx, pexip.Devices, pexip.Device{Alias: "alice.ep@example.com", Username: "alice", Password: "pw-1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Patch(ctx, pexip.Devices, id, map[string]any{"password": "pw-2"}); err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := c.Get(ctx, pexip.Devices, id, &raw); err != nil {
		t.Fatal(err)
	}
	if _, ok := raw["password"]; ok || raw["username"] != "alice" {
		t.Errorf("GET device = %v", raw)
	}
	if pw, _ := fake.DevicePassword("alice.ep@example.com"); pw != "pw-2" {
		t.Errorf("stored password = %q", pw)
	}
}

func TestClientErrors(t *testing.T) {
	ctx := context.Background()
	fake, c := newPair(t, func(cfg *pexip.Config) { cfg.MaxAttempts = 1 })
	if _, err := fake.Put(pexip.Conferences, map[string]any{"name": "Taken"}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		call  func() error
		kind  error
		field string
	}{
		{"duplicate name", func() error { _, err := c.Create(ctx, pexip.Conferences, pexip.Conference{Name: "Taken"}); return err }, pexip.ErrDuplicate, "name"},
		{"call rate too low", func() error {
			_, err := c.Create(ctx, pexip.Conferences, pexip.Conference{Name: "X", MaxCallrateOut: intp(64)})
			return err
		}, pexip.ErrInvalid, "max_callrate_out"},
		{"participant limit too high", func() error {
			_, err := c.Create(ctx, pexip.Conferences, pexip.Conference{Name: "X", ParticipantLimit: intp(1000001)})
			return err
		}, pexip.ErrInvalid, "participant_limit"},
		{"description too long", func() error {
			_, err := c.Create(ctx, pexip.Conferences, pexip.Conference{Name: "X", Description: strings.Repeat("é", 251)})
			return err
		}, pexip.ErrInvalid, "description"},
		{"alias of a missing conference", func() error {
			_, err := c.Create(ctx, pexip.ConferenceAliases, pexip.ConferenceAlias{Alias: "a", Conference: pexip.Conferences.URI(999)})
			return err
		}, pexip.ErrInvalid, "conference"},
		{"duplicate alias on create", func() error {
			_, err := c.Create(ctx, pexip.Conferences, pexip.Conference{Name: "Y", Aliases: []pexip.ConferenceAlias{{Alias: "z"}, {Alias: "z"}}})
			return err
		}, pexip.ErrDuplicate, "alias"},
		{"patch of a missing object", func() error { return c.Patch(ctx, pexip.Devices, 999, map[string]any{"tag": "x"}) }, pexip.ErrNotFound, ""},
		{"unknown field", func() error { return c.Patch(ctx, pexip.Devices, 1, map[string]any{"colour": "x"}) }, pexip.ErrNotFound, ""},
		{"get of a missing object", func() error { return c.Get(ctx, pexip.EndUsers, 5, &struct{}{}) }, pexip.ErrNotFound, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if !errors.Is(err, tc.kind) {
				t.Fatalf("error %v, want %v", err, tc.kind)
			}
			if got := pexip.FieldOf(err); got != tc.field {
				t.Errorf("field = %q, want %q (%v)", got, tc.field, err)
			}
			if pexip.Retryable(err) {
				t.Errorf("%v is retryable", err)
			}
		})
	}
}

func TestClientWrongPasswordIsScrubbed(t *testing.T) {
	fake := pexipfake.New("roster", "right")
	defer fake.Close()
	c, err := pexip.New(pexip.Config{URL: fake.URL, Username: "roster", Password: testPassword})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Create(context.Background(), pexip.EndUsers, pexip.EndUser{PrimaryEmailAddress: "a@example.com"})
	if !errors.Is(err, pexip.ErrAuth) || pexip.Retryable(err) {
		t.Fatalf("error = %v", err)
	}
	// A node echoing the credentials in an error body: they never reach a message.
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, pw, _ := r.BasicAuth()
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprintf(w, "boom: header %s password %s", r.Header.Get("Authorization"), pw)
	}))
	defer echo.Close()
	c, _ = pexip.New(pexip.Config{URL: echo.URL, Username: "roster", Password: testPassword, MaxAttempts: 1})
	err = c.Delete(context.Background(), pexip.Devices, 1)
	if !errors.Is(err, pexip.ErrServer) || strings.Contains(err.Error(), testPassword) || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("error = %v", err)
	}
	if strings.Contains(err.Error(), "cm9zdGVy") { // base64 of "roster"... the header value
		t.Fatalf("error carries the Authorization header: %v", err)
	}
}

func TestClientListPages(t *testing.T) {
	ctx := context.Background()
	fake, c := newPair(t, func(cfg *pexip.Config) { cfg.PageSize = 100 })
	for i := range 1234 {
		tag := "a"
		if i%2 == 1 {
			tag = "b"
		}
		if _, err := fake.Put(pexip.Conferences, map[string]any{"name": fmt.Sprintf("room %04d", i), "tag": tag}); err != nil {
			t.Fatal(err)
		}
	}
	before := fake.Stats().ByMethod["GET"]
	all, err := pexip.ListAll[pexip.Conference](ctx, c, pexip.Conferences, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1234 || all[0].Name != "room 0000" || all[1233].Name != "room 1233" {
		t.Fatalf("listed %d", len(all))
	}
	if pages := fake.Stats().ByMethod["GET"] - before; pages != 13 {
		t.Errorf("%d pages, want 13", pages)
	}
	tagged, err := pexip.ListAll[pexip.Conference](ctx, c, pexip.Conferences, url.Values{"tag": {"b"}})
	if err != nil || len(tagged) != 617 || tagged[0].Name != "room 0001" {
		t.Fatalf("tag=b: %d, %v", len(tagged), err)
	}
	one, err := pexip.ListAll[pexip.Conference](ctx, c, pexip.Conferences, url.Values{"name": {"room 0042"}})
	if err != nil || len(one) != 1 || one[0].Tag != "a" {
		t.Fatalf("name filter: %+v, %v", one, err)
	}
	if err := c.List(ctx, pexip.Conferences, url.Values{"colour": {"x"}}, nil); !errors.Is(err, pexip.ErrInvalid) {
		t.Errorf("unknown filter: %v", err)
	}
}

func TestClientRefusesForeignNextPage(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"meta": {"limit": 1, "offset": 0, "total_count": 2, "next": "http://elsewhere.example/api/admin/configuration/v1/conference/?offset=1"}, "objects": [{"name": "a"}]}`)
	}))
	defer srv.Close()
	c, _ := pexip.New(pexip.Config{URL: srv.URL, Username: "u", Password: "p"})
	err := c.List(context.Background(), pexip.Conferences, nil, func(json.RawMessage) error { return nil })
	if !errors.Is(err, pexip.ErrUnexpected) || !strings.Contains(err.Error(), "not a page of conference on this node") {
		t.Fatalf("error = %v", err)
	}
}

func TestClientRetries(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name     string
		fault    func(*pexipfake.Server)
		attempts int
		wantErr  error
		requests int
		minWait  time.Duration
		acted    bool // the error says an earlier try may have taken effect
	}{
		{"429 then success honours Retry-After", func(f *pexipfake.Server) { f.Throttle(2, "0.2") }, 5, nil, 3, 400 * time.Millisecond, false},
		{"503 then success", func(f *pexipfake.Server) { f.Fail(2, 503) }, 5, nil, 3, 0, false},
		{"dropped connection then success", func(f *pexipfake.Server) { f.Drop(1) }, 5, nil, 2, 0, false},
		{"500 past the attempts", func(f *pexipfake.Server) { f.Fail(9, 500) }, 3, pexip.ErrServer, 3, 0, true},
		{"dropped after taking effect: the retry meets the object", func(f *pexipfake.Server) { f.DropAfter(1) }, 5, pexip.ErrDuplicate, 2, 0, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fake, c := newPair(t, func(cfg *pexip.Config) { cfg.MaxAttempts = tc.attempts })
			tc.fault(fake)
			start := time.Now()
			_, err := c.Create(ctx, pexip.EndUsers, pexip.EndUser{PrimaryEmailAddress: "bob@example.com"})
			if tc.wantErr == nil && err != nil || tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("error = %v, want %v", err, tc.wantErr)
			}
			if pexip.MayHaveActed(err) != tc.acted {
				t.Errorf("MayHaveActed = %v, want %v", !tc.acted, tc.acted)
			}
			if n := fake.Stats().Requests; n != tc.requests {
				t.Errorf("%d requests, want %d", n, tc.requests)
			}
			if el := time.Since(start); el < tc.minWait {
				t.Errorf("took %s, want at least %s", el, tc.minWait)
			}
			if fake.Count(pexip.EndUsers) != 1 && tc.wantErr != pexip.ErrServer {
				t.Errorf("%d end users", fake.Count(pexip.EndUsers))
			}
		})
	}
}

// A 429 to one request pauses the others too: the limit is the node's.
func TestClient429PausesEveryRequest(t *testing.T) {
	ctx := context.Background()
	fake, c := newPair(t, nil)
	fake.Throttle(1, "0.5")
	start := time.Now()
	var wg sync.WaitGroup
	times := make([]time.Duration, 4)
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i > 0 {
				time.Sleep(100 * time.Millisecond) // after the first got its 429
			}
			if _, err := c.Create(ctx, pexip.EndUsers, pexip.EndUser{PrimaryEmailAddress: fmt.Sprintf("u%d@example.com", i)}); err != nil {
				t.Error(err)
			}
			times[i] = time.Since(start)
		}()
	}
	wg.Wait()
	for i, d := range times {
		if d < 450*time.Millisecond {
			t.Errorf("request %d done after %s, before the Retry-After ended", i, d)
		}
	}
}

func TestClientRate(t *testing.T) {
	ctx := context.Background()
	fake, c := newPair(t, func(cfg *pexip.Config) { cfg.Rate, cfg.Burst = 3000, 1 }) // one per 20 ms
	start := time.Now()
	for i := range 26 {
		if _, err := c.Create(ctx, pexip.EndUsers, pexip.EndUser{PrimaryEmailAddress: fmt.Sprintf("u%d@example.com", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if el := time.Since(start); el < 500*time.Millisecond {
		t.Errorf("26 requests at 3000/min took %s, want >= 500ms", el)
	}
	// In any 100 ms, at most 5 slots of 20 ms, plus one for a request sent late.
	ts := fake.Stats().Times
	for i := range ts {
		n := 0
		for j := i; j < len(ts) && ts[j].Sub(ts[i]) < 100*time.Millisecond; j++ {
			n++
		}
		if n > 6 {
			t.Errorf("%d requests in the 100 ms after request %d", n, i)
		}
	}
}

func TestClientTLSWithCAFile(t *testing.T) {
	fake := pexipfake.NewTLS("roster", testPassword)
	defer fake.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, fake.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c, err := pexip.New(pexip.Config{URL: fake.URL, Username: "roster", Password: testPassword, CAFile: ca})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Create(ctx, pexip.EndUsers, pexip.EndUser{PrimaryEmailAddress: "a@example.com"}); err != nil {
		t.Fatal(err)
	}
	// Without the CA the node's certificate is refused.
	c, _ = pexip.New(pexip.Config{URL: fake.URL, Username: "roster", Password: testPassword, MaxAttempts: 1})
	if _, err := c.Create(ctx, pexip.EndUsers, pexip.EndUser{PrimaryEmailAddress: "b@example.com"}); !errors.Is(err, pexip.ErrNetwork) ||
		!strings.Contains(err.Error(), "certificate") {
		t.Fatalf("error = %v", err)
	}
	if _, err := pexip.New(pexip.Config{URL: fake.URL, CAFile: filepath.Join(t.TempDir(), "none.pem")}); err == nil {
		t.Error("a missing ca_file is accepted")
	}
}

func TestNewRefuses(t *testing.T) {
	for _, u := range []string{"http://pexip.example.com", "https://u:p@pexip.example.com", "ftp://x", "pexip.example.com", ""} {
		if _, err := pexip.New(pexip.Config{URL: u, Username: "u", Password: "p"}); err == nil {
			t.Errorf("New(%q) accepted", u)
		} else if strings.Contains(err.Error(), "u:p") {
			t.Errorf("New(%q): error shows credentials: %v", u, err)
		}
	}
}
