package policy_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/roster-dev/roster/reconcile/policy"
	"github.com/roster-dev/roster/reconcile/policy/policytest"
)

const (
	testUser = "pexip-policy"
	testPass = "correct horse battery staple"
)

// policyServer is a policy server on loopback with its index, metrics and a node that
// calls it with the right credentials.
type policyServer struct {
	idx  *policy.Index
	srv  *policy.Server
	reg  *prometheus.Registry
	node *policytest.Node
}

// startServer serves a policy server with policy_unknown unknown on 127.0.0.1 over
// HTTPS, or plain HTTP when plain, until the test ends; wrap, if any, wraps its handler.
func startServer(t testing.TB, unknown string, plain bool, wrap ...func(http.Handler) http.Handler) *policyServer {
	t.Helper()
	p := &policyServer{idx: &policy.Index{}, reg: prometheus.NewRegistry()}
	c := policy.NewCounters()
	if err := policy.RegisterMetrics(p.reg, c, policy.IndexStats(p.idx)); err != nil {
		t.Fatal(err)
	}
	var err error
	p.srv, err = policy.NewServer(p.idx, policy.Config{Username: testUser, Password: testPass, Unknown: unknown, Counters: c})
	if err != nil {
		t.Fatal(err)
	}
	var ln net.Listener
	p.node = &policytest.Node{Username: testUser, Password: testPass}
	if plain {
		ln, err = policy.Listen("127.0.0.1:0", "", "")
		p.node.Client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
		p.node.BaseURL = "http://" + ln.Addr().String()
	} else {
		cert := policytest.SelfSigned(t, t.TempDir())
		ln, err = policy.Listen("127.0.0.1:0", cert.CertFile, cert.KeyFile)
		p.node.Client = cert.Client()
		p.node.BaseURL = "https://" + ln.Addr().String()
	}
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var h http.Handler = p.srv
	for _, w := range wrap {
		h = w(h)
	}
	go func() { done <- policy.Serve(ctx, ln, h, nil) }()
	t.Cleanup(func() {
		// The client's kept-alive connections go first, so shutdown waits only for
		// requests still in flight.
		p.node.Client.CloseIdleConnections()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return p
}

func (p *policyServer) publish(t testing.TB, version string, e policytest.Estate) {
	t.Helper()
	s, err := policy.Build(version, e.Rooms, e.Devices)
	if err != nil {
		t.Fatal(err)
	}
	p.idx.Swap(s)
}

// metric returns the value of the counter name{label=value}, or the sample count of a
// histogram name.
func (p *policyServer) metric(t testing.TB, name, label, value string) float64 {
	t.Helper()
	mfs, err := p.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label == "" || hasLabel(m, label, value) {
				if h := m.GetHistogram(); h != nil {
					return float64(h.GetSampleCount())
				}
				return m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("no metric %s{%s=%q}", name, label, value)
	return 0
}

func hasLabel(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}

// dialledForms are the ways a node may present a stored alias.
func dialledForms(alias string) []string {
	bare := strings.TrimPrefix(strings.TrimPrefix(alias, "sip:"), "h323:")
	forms := []string{alias, bare, "sip:" + bare, "SIP:" + strings.ToUpper(bare), " <sips:" + bare + ";transport=tls> "}
	if !strings.Contains(bare, "@") {
		forms = append(forms, "h323:"+bare, "tel:"+bare)
	}
	return forms
}

// TestOwnedAliases: every alias of every enabled room answers its room, in every form
// a node may send it, over HTTPS; every device alias answers its credentials.
func TestOwnedAliases(t *testing.T) {
	e := policytest.LoadEstate(t, "testdata/estate.json")
	p := startServer(t, "continue", false)
	p.publish(t, "v1", e)
	ctx := context.Background()
	rooms, devices := 0, 0
	for _, r := range e.Rooms {
		if !r.Enabled || r.Name == "No aliases" || strings.HasPrefix(r.Name, "Case ") {
			continue // disabled, unreachable and case-colliding rooms: TestUnknownAliases
		}
		for _, a := range r.Aliases {
			for _, dialled := range dialledForms(a) {
				d := p.node.ServiceConfiguration(ctx, dialled, url.Values{"protocol": {"h323"}, "call_direction": {"non_dial"}})
				rooms++
				if d.Kind != policytest.Conference || d.Service.Name != r.Name {
					t.Errorf("%q: %v %q (%s), want room %q", dialled, d.Kind, d.Service.Name, d.Reason, r.Name)
					continue
				}
				checkService(t, dialled, d.Service, r)
			}
		}
	}
	for _, dev := range e.Devices {
		if !dev.Enabled {
			continue
		}
		for _, dialled := range dialledForms(dev.Alias) {
			d := p.node.Registration(ctx, dialled, "sip")
			devices++
			if d.Kind != policytest.Register || d.Credentials != (policytest.Credentials{Username: dev.Username, Password: dev.Password}) {
				t.Errorf("registration %q: %v %+v (%s)", dialled, d.Kind, d.Credentials, d.Reason)
			}
		}
	}
	if got := p.metric(t, "roster_policy_answers_total", "outcome", "room"); got != float64(rooms) {
		t.Errorf("room answers metric = %v, want %d", got, rooms)
	}
	if got := p.metric(t, "roster_policy_answers_total", "outcome", "device"); got != float64(devices) {
		t.Errorf("device answers metric = %v, want %d", got, devices)
	}
	if got := p.metric(t, "roster_policy_request_duration_seconds", "", ""); got != float64(rooms+devices) {
		t.Errorf("latency samples = %v, want %d", got, rooms+devices)
	}
	st := p.srv.Status()
	if !st.Ready || st.Snapshot.Version != "v1" || st.Answers["room"] != uint64(rooms) || st.Answers["device"] != uint64(devices) {
		t.Errorf("status = %+v", st)
	}
}

// checkService compares an answer with the room it should describe (call rates in bps).
func checkService(t *testing.T, dialled string, got policytest.Service, r policy.Room) {
	t.Helper()
	want := policytest.Service{ServiceType: "conference", Name: r.Name, ServiceTag: r.ServiceTag,
		Description: r.Description, PIN: r.PIN, GuestPIN: r.GuestPIN, PrimaryOwnerEmailAddress: r.OwnerEmail}
	if got.AllowGuests == nil || *got.AllowGuests != r.AllowGuests {
		t.Errorf("%q: allow_guests %v, want %v", dialled, got.AllowGuests, r.AllowGuests)
	}
	for _, n := range []struct {
		name      string
		got       *int64
		want, mul int
	}{
		{"max_callrate_in", got.MaxCallrateIn, r.MaxCallrateIn, 1000},
		{"max_callrate_out", got.MaxCallrateOut, r.MaxCallrateOut, 1000},
		{"participant_limit", got.ParticipantLimit, r.ParticipantLimit, 1},
	} {
		switch {
		case n.want == 0 && n.got != nil:
			t.Errorf("%q: %s = %d, want none", dialled, n.name, *n.got)
		case n.want != 0 && (n.got == nil || *n.got != int64(n.want*n.mul)):
			t.Errorf("%q: %s = %v, want %d", dialled, n.name, n.got, n.want*n.mul)
		}
	}
	got.AllowGuests, got.MaxCallrateIn, got.MaxCallrateOut, got.ParticipantLimit = nil, nil, nil, nil
	if got != want {
		t.Errorf("%q: answer %+v\nwant %+v", dialled, got, want)
	}
}

// TestUnknownAliases: aliases roster does not own, or owns disabled, get policy_unknown;
// so does one that two rooms share up to letter case when neither matches exactly.
func TestUnknownAliases(t *testing.T) {
	e := policytest.LoadEstate(t, "testdata/estate.json")
	services := []string{"nobody@example.com", "board@example.com", "sip:5550000", "DUP@example.com", "old-phone@example.com"}
	registrations := []string{"nobody@example.com", "old-phone@example.com", "meet.alice.smith@example.com"}
	for _, tc := range []struct {
		unknown string
		want    policytest.Kind
		outcome string
	}{
		{"continue", policytest.Fallback, "unknown"},
		{"", policytest.Fallback, "unknown"},
		{"reject", policytest.Reject, "reject"},
	} {
		t.Run("policy_unknown="+tc.unknown, func(t *testing.T) {
			p := startServer(t, tc.unknown, true)
			p.publish(t, "v1", e)
			ctx := context.Background()
			for _, a := range services {
				if d := p.node.ServiceConfiguration(ctx, a, nil); d.Kind != tc.want || d.HTTPStatus != http.StatusOK {
					t.Errorf("service %q: %v (HTTP %d, %s), want %v", a, d.Kind, d.HTTPStatus, d.Reason, tc.want)
				}
			}
			for _, a := range registrations {
				if d := p.node.Registration(ctx, a, "h323"); d.Kind != tc.want || d.HTTPStatus != http.StatusOK {
					t.Errorf("registration %q: %v (HTTP %d, %s), want %v", a, d.Kind, d.HTTPStatus, d.Reason, tc.want)
				}
			}
			if got := p.metric(t, "roster_policy_answers_total", "outcome", tc.outcome); got != float64(len(services)+len(registrations)) {
				t.Errorf("%s answers = %v", tc.outcome, got)
			}
		})
	}
}

// TestRefusedRequests: wrong or missing credentials get 401 with a challenge; other
// methods, paths and missing aliases get 4xx; before the first snapshot, 503. A node
// falls back on all of them.
func TestRefusedRequests(t *testing.T) {
	e := policytest.LoadEstate(t, "testdata/estate.json")
	p := startServer(t, "reject", false)
	ctx := context.Background()
	if d := p.node.ServiceConfiguration(ctx, "meet.alice.smith@example.com", nil); d.Kind != policytest.Fallback || d.HTTPStatus != http.StatusServiceUnavailable {
		t.Errorf("before the first snapshot: %v HTTP %d", d.Kind, d.HTTPStatus)
	}
	p.publish(t, "v1", e)
	for _, tc := range []struct {
		name, user, pass string
	}{
		{"wrong password", testUser, testPass + "x"},
		{"wrong user", "admin", testPass},
		{"password as user", testPass, testUser},
		{"no credentials", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := *p.node
			n.Username, n.Password = tc.user, tc.pass
			for _, d := range []policytest.Decision{
				n.ServiceConfiguration(ctx, "meet.alice.smith@example.com", nil),
				n.Registration(ctx, "alice.smith@example.com", "sip"),
			} {
				if d.Kind != policytest.Fallback || d.HTTPStatus != http.StatusUnauthorized {
					t.Errorf("%v HTTP %d, want fallback on 401", d.Kind, d.HTTPStatus)
				}
			}
		})
	}
	req, _ := http.NewRequest(http.MethodGet, p.node.BaseURL+policy.ServiceConfigurationPath, nil)
	resp, err := p.node.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
		t.Errorf("no credentials: HTTP %d, WWW-Authenticate %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{http.MethodPost, policy.ServiceConfigurationPath + "?local_alias=board%40example.com", http.StatusMethodNotAllowed},
		{http.MethodHead, policy.RegistrationsPrefix + "alice.smith%40example.com", http.StatusMethodNotAllowed},
		{http.MethodGet, policy.ServiceConfigurationPath + "?remote_alias=x", http.StatusBadRequest},
		{http.MethodGet, policy.ServiceConfigurationPath + "?local_alias=%20", http.StatusBadRequest},
		{http.MethodGet, policy.ServiceConfigurationPath + "?local_alias=%zz", http.StatusBadRequest},
		{http.MethodGet, policy.RegistrationsPrefix, http.StatusBadRequest},
		{http.MethodGet, "/policy/v1/participant/properties?local_alias=x", http.StatusNotFound},
	} {
		req, _ := http.NewRequest(tc.method, p.node.BaseURL+tc.path, nil)
		req.SetBasicAuth(testUser, testPass)
		resp, err := p.node.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s: HTTP %d, want %d", tc.method, tc.path, resp.StatusCode, tc.want)
		}
	}
	st := p.srv.Status()
	if st.Answers["unauthorized"] != 9 || st.Answers["bad_request"] != 7 || st.Answers["unavailable"] != 1 || st.PolicyUnknown != "reject" {
		t.Errorf("status answers = %v (policy_unknown %s)", st.Answers, st.PolicyUnknown)
	}
	if got := p.metric(t, "roster_policy_answers_total", "outcome", "unauthorized"); got != 9 {
		t.Errorf("unauthorized metric = %v, want 9", got)
	}
}

func TestNewServerConfig(t *testing.T) {
	idx := &policy.Index{}
	for _, tc := range []struct {
		name string
		cfg  policy.Config
	}{
		{"no password", policy.Config{Username: "u"}},
		{"no username", policy.Config{Password: "p"}},
		{"bad policy_unknown", policy.Config{Username: "u", Password: "p", Unknown: "drop"}},
	} {
		if _, err := policy.NewServer(idx, tc.cfg); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
	if _, err := policy.NewServer(idx, policy.Config{Username: "u", Password: "p", Unknown: "reject"}); err != nil {
		t.Error(err)
	}
	reg := prometheus.NewRegistry()
	c := policy.NewCounters()
	if err := policy.RegisterMetrics(reg, c, policy.IndexStats(idx)); err != nil {
		t.Fatal(err)
	}
	if err := policy.RegisterMetrics(reg, c, policy.IndexStats(idx)); err == nil || !errors.As(err, new(prometheus.AlreadyRegisteredError)) {
		t.Errorf("registering twice: %v", err)
	}
}

// TestNoSecretsLogged: at debug level every answer is logged, and a wrong password
// warned about, without a PIN, a device password or the credentials sent.
func TestNoSecretsLogged(t *testing.T) {
	e := policytest.LoadEstate(t, "testdata/estate.json")
	var buf syncBuffer
	idx := &policy.Index{}
	s, err := policy.Build("v1", e.Rooms, e.Devices)
	if err != nil {
		t.Fatal(err)
	}
	idx.Swap(s)
	srv, err := policy.NewServer(idx, policy.Config{Username: testUser, Password: testPass,
		Logger: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	ctx := context.Background()
	node := policytest.Node{BaseURL: hs.URL, Username: testUser, Password: testPass, Client: hs.Client()}
	if d := node.ServiceConfiguration(ctx, "meet.alice.smith@example.com", nil); d.Kind != policytest.Conference {
		t.Fatalf("room: %v %s", d.Kind, d.Reason)
	}
	if d := node.Registration(ctx, "alice.smith@example.com", "sip"); d.Kind != policytest.Register {
		t.Fatalf("device: %v %s", d.Kind, d.Reason)
	}
	node.Password = "wrong-Secret-42"
	node.ServiceConfiguration(ctx, "meet.alice.smith@example.com", nil)
	log := buf.String()
	if !strings.Contains(log, "outcome=room") || !strings.Contains(log, "outcome=device") || !strings.Contains(log, "wrong credentials") {
		t.Fatalf("expected log lines missing:\n%s", log)
	}
	for _, secret := range []string{e.Rooms[0].PIN, e.Rooms[0].GuestPIN, e.Devices[0].Password, testPass, "wrong-Secret-42"} {
		if strings.Contains(log, secret) {
			t.Errorf("log contains %q:\n%s", secret, log)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
