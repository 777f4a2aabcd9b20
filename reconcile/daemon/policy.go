package daemon

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/roster-dev/roster/reconcile"
	"github.com/roster-dev/roster/reconcile/policy"
	"github.com/roster-dev/roster/schema"
)

// Policy mode (SPEC §8): the daemon answers the conferencing nodes' external policy
// requests on a listener of its own (policy_listen), from a policy.Index built from the
// state at start and rebuilt after each apply that changed something. The rebuild reads
// one committed state and publishes it with one atomic swap: a request never waits for a
// reconcile and never sees half of an apply.

// PolicyStatus is the policy endpoint's state on the status page and /api/status.
type PolicyStatus struct {
	Listen        string `json:"listen"`
	TLS           bool   `json:"tls"`
	Role          string `json:"role"` // primary or replica (SPEC §8): both answer alike
	policy.Status        // the snapshot served (version, counts, built_at) and the answers given
	// LastBuildError is why the last rebuild failed; the previous snapshot stays served.
	LastBuildError string `json:"last_build_error,omitempty"`
	// Unreachable is set by `roster status` alone: why it could not read the running
	// daemon's endpoint (the rest then comes from config.cue).
	Unreachable string `json:"unreachable,omitempty"`
}

// policyEndpoint is the daemon's policy server.
type policyEndpoint struct {
	idx    policy.Index
	srv    *policy.Server
	ln     net.Listener
	listen string
	tls    bool

	mu      sync.Mutex // guards lastErr; never held by a request
	lastErr string
}

// policyConfig returns platforms.pexip when it is in policy mode, else nil.
func policyConfig(cfg *schema.Config) *schema.PexipConfig {
	if px := cfg.Platforms.Pexip; px != nil && px.Mode == schema.PexipPolicy {
		return px
	}
	return nil
}

// initPolicy makes the policy endpoint (with its metrics on the daemon's registry) and
// builds the first snapshot from the state as it is, so the nodes get answers before the
// first cycle ends. listen false (--once) builds nothing and opens no listener.
func (d *daemon) initPolicy(ctx context.Context, listen bool) error {
	px := policyConfig(d.cfg)
	if px == nil || !listen {
		return nil
	}
	pe := &policyEndpoint{listen: px.PolicyListen, tls: px.PolicyCert != ""}
	met, err := policy.NewMetrics(d.met.reg, &pe.idx)
	if err != nil {
		return fmt.Errorf("serve: policy metrics: %w", err)
	}
	pe.srv, err = policy.NewServer(&pe.idx, policy.Config{Username: px.Username, Password: os.Getenv(px.PasswordEnv),
		Unknown: px.PolicyUnknown, Logger: d.log, Metrics: met})
	if err != nil {
		return fmt.Errorf("serve: %w (platforms.pexip.username, password_env %s)", err, px.PasswordEnv)
	}
	if pe.ln, err = policy.Listen(px.PolicyListen, px.PolicyCert, px.PolicyKey); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	pe.listen = pe.ln.Addr().String()
	d.policy = pe
	sparePolicyP(d.log)
	d.rebuildPolicy(ctx)
	return nil
}

// sparePolicyP gives the process two Ps (Go's right to run code) more than it has CPUs
// and caps the plan's CPU-bound workers at the CPUs. A reconcile's busy goroutines (the
// render's workers and the directory reader feeding them) then never occupy every P: a
// policy request runs as soon as it arrives, its thread scheduled by the kernel beside
// the render's, instead of queueing until the Go scheduler preempts a render worker
// (every 10 ms). An explicit GOMAXPROCS in the environment is left alone.
// Once per process: several daemons in one process (tests) share it.
func sparePolicyP(log *slog.Logger) {
	if os.Getenv("GOMAXPROCS") != "" {
		return
	}
	spareP.Do(func() {
		cpus := runtime.GOMAXPROCS(0)
		reconcile.SetParallelism(cpus)
		runtime.GOMAXPROCS(cpus + 2)
		log.Info("serve: policy mode keeps a P free for the policy answers", "gomaxprocs", cpus+2, "plan_workers", cpus)
	})
}

var spareP sync.Once

// startPolicy serves policy requests until stop is called (after the mailer's last run,
// so the nodes get answers while the daemon shuts down). failed reports a server that
// stopped by itself; without a policy endpoint it never does.
func (d *daemon) startPolicy() (failed <-chan error, stop func()) {
	errc := make(chan error, 1)
	pe := d.policy
	if pe == nil {
		return errc, func() {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	d.log.Info("serve: policy listening", "addr", pe.listen, "tls", pe.tls)
	go func() {
		defer close(done)
		if err := policy.Serve(ctx, pe.ln, pe.srv, d.log); err != nil && ctx.Err() == nil {
			errc <- err
		}
	}()
	return errc, func() { cancel(); <-done }
}

// policyAfterCycle rebuilds the policy snapshot after a cycle whose apply committed
// changes (or while none is served yet): the new answers appear only after the apply
// that makes them, and all at once.
func (d *daemon) policyAfterCycle(ctx context.Context, res cycleResult) {
	if d.policy == nil || !res.applied {
		return
	}
	if res.plan.HasChanges() || d.policy.idx.Load() == nil {
		d.rebuildPolicy(ctx)
	}
}

// rebuildPolicy reads the state into a new snapshot and swaps it in. On failure the
// previous snapshot stays served and the status page shows why.
func (d *daemon) rebuildPolicy(ctx context.Context) {
	pe := d.policy
	if pe == nil {
		return
	}
	hint := 0
	if cur := pe.idx.Load(); cur != nil {
		hint = cur.Stats().Bytes
	}
	snap, err := d.db.PolicySnapshot(context.WithoutCancel(ctx), hint)
	pe.mu.Lock()
	defer pe.mu.Unlock()
	if err != nil {
		pe.lastErr = err.Error()
		d.log.Warn("serve: policy snapshot; the previous one stays served", "err", err)
		return
	}
	pe.idx.Swap(snap)
	pe.lastErr = ""
	st := snap.Stats()
	d.log.Info("serve: policy snapshot published", "version", st.Version, "rooms", st.Rooms, "aliases", st.RoomAliases,
		"devices", st.Devices, "took", st.BuildDuration.Round(time.Millisecond))
}

// policyStatus is the endpoint's status, or nil outside policy mode.
func (d *daemon) policyStatus() *PolicyStatus {
	pe := d.policy
	if pe == nil {
		return nil
	}
	s := &PolicyStatus{Listen: pe.listen, TLS: pe.tls, Role: roleOf(d.cfg), Status: pe.srv.Status()}
	pe.mu.Lock()
	s.LastBuildError = pe.lastErr
	pe.mu.Unlock()
	return s
}

// roleOf is cfg's role, primary when unset.
func roleOf(cfg *schema.Config) string {
	if cfg.Role == "" {
		return schema.RolePrimary
	}
	return cfg.Role
}

// QueryPolicyStatus is the policy endpoint's state for `roster status`, which reads the
// state database and not the daemon: in policy mode it asks the running daemon's
// /api/status (http.listen, on loopback when it listens on every interface). When that
// fails the status names the configured listener and role and says why; outside policy
// mode it is nil.
func QueryPolicyStatus(ctx context.Context, cfg *schema.Config) *PolicyStatus {
	px := policyConfig(cfg)
	if px == nil {
		return nil
	}
	fallback := func(why string) *PolicyStatus {
		return &PolicyStatus{Listen: px.PolicyListen, TLS: px.PolicyCert != "", Role: roleOf(cfg), Unreachable: why,
			Status: policy.Status{PolicyUnknown: cmp.Or(px.PolicyUnknown, "continue")}}
	}
	if cfg.HTTP.Listen == "" {
		return fallback("the daemon's status is not served (http.listen is not set)")
	}
	host, port, err := net.SplitHostPort(cfg.HTTP.Listen)
	if err != nil {
		return fallback(fmt.Sprintf("http.listen %q: %v", cfg.HTTP.Listen, err))
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	u := "http://" + net.JoinHostPort(host, port) + "/api/status"
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fallback(err.Error())
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fallback(fmt.Sprintf("no answer from the daemon at %s: %v", u, err))
	}
	defer resp.Body.Close()
	var s Status
	if resp.StatusCode != http.StatusOK {
		return fallback(fmt.Sprintf("the daemon at %s answered HTTP %d", u, resp.StatusCode))
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&s); err != nil {
		return fallback(fmt.Sprintf("read the daemon's status at %s: %v", u, err))
	}
	if s.Policy == nil {
		return fallback(fmt.Sprintf("the daemon at %s serves no policy endpoint (started before policy mode was configured?)", u))
	}
	return s.Policy
}

// writeText is the policy section of `roster status`; nothing outside policy mode.
func (p *PolicyStatus) writeText(w io.Writer, now time.Time) {
	if p == nil {
		return
	}
	transport := "plain HTTP, loopback"
	if p.TLS {
		transport = "HTTPS"
	}
	fmt.Fprintf(w, "Policy endpoint: %s (%s), role %s, unknown aliases: %s.\n", p.Listen, transport, p.Role, p.PolicyUnknown)
	switch {
	case p.Unreachable != "":
		fmt.Fprintf(w, "  its state is unknown: %s\n", p.Unreachable)
		return
	case p.Snapshot == nil:
		fmt.Fprintln(w, "  no snapshot yet: the nodes fall back to their own configuration")
	default:
		sn := p.Snapshot
		fmt.Fprintf(w, "  serving %s, built %s (%s ago) in %s: %d rooms (%d aliases), %d devices, %d bytes\n", sn.Version,
			sn.BuiltAt.UTC().Format(time.RFC3339), now.Sub(sn.BuiltAt).Round(time.Second), sn.BuildDuration.Round(time.Millisecond),
			sn.Rooms, sn.RoomAliases, sn.Devices, sn.Bytes)
	}
	if p.LastBuildError != "" {
		fmt.Fprintf(w, "  last rebuild failed (the previous snapshot stays served): %s\n", p.LastBuildError)
	}
	var total uint64
	parts := make([]string, 0, len(p.Answers))
	for _, o := range policy.Outcomes() {
		total += p.Answers[o]
		parts = append(parts, fmt.Sprintf("%d %s", p.Answers[o], o))
	}
	fmt.Fprintf(w, "  %d requests since start: %s\n", total, strings.Join(parts, ", "))
}
