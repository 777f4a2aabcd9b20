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
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/roster-dev/roster/reconcile/policy"
	"github.com/roster-dev/roster/schema"
)

// Policy mode (SPEC §8): the daemon answers the conferencing nodes' external policy
// requests on a listener of its own (policy_listen). The answers come from a separate
// answering process (policy.RunAnswerer, `roster policy-answer`) that the daemon starts
// and supervises, so that the reconciler's heap, collections and CPU never stall a call
// (issue 19). The daemon builds the snapshot from the state at start and after each apply
// that changed something, writes it to a file in the state directory and tells the
// process, which maps it and swaps it in at once: a request never waits for a reconcile
// and never sees half of an apply.

// PolicyStatus is the policy endpoint's state on the status page and /api/status.
type PolicyStatus struct {
	Listen        string `json:"listen"`
	TLS           bool   `json:"tls"`
	Role          string `json:"role"` // primary or replica (SPEC §8): both answer alike
	policy.Status        // the snapshot served (version, counts, built_at) and the answers given
	// LastBuildError is why the last rebuild failed, or why the answering process
	// refused the last snapshot file; the previous snapshot stays served.
	LastBuildError string `json:"last_build_error,omitempty"`
	// AnswererPID is the answering process's (0: not running, being restarted);
	// AnswererRestarts counts its restarts since the daemon started.
	AnswererPID      int `json:"answerer_pid,omitempty"`
	AnswererRestarts int `json:"answerer_restarts"`
	// Unreachable is set by `roster status` alone: why it could not read the running
	// daemon's endpoint (the rest then comes from config.cue).
	Unreachable string `json:"unreachable,omitempty"`
}

// policyEndpoint is the daemon's side of the policy answers.
type policyEndpoint struct {
	sup    *policy.Supervisor
	ln     net.Listener
	listen string
	tls    bool
	reject bool

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

// initPolicy opens the policy listener, starts the answering process (with its counters
// on the daemon's metrics) and builds the first snapshot from the state as it is, so the
// nodes get answers before the first cycle ends. listen false (--once) starts nothing.
func (d *daemon) initPolicy(ctx context.Context, listen bool) error {
	px := policyConfig(d.cfg)
	if px == nil || !listen {
		return nil
	}
	acfg := policy.AnswererConfig{Username: px.Username, Password: os.Getenv(px.PasswordEnv), Unknown: px.PolicyUnknown,
		CertFile: px.PolicyCert, KeyFile: px.PolicyKey, SnapshotPath: filepath.Join(d.stateDir, "policy.snapshot"),
		Debug: d.log.Enabled(ctx, slog.LevelDebug)}
	// The answering process would refuse the same: say it here, once, with the setting's name.
	if err := (policy.Config{Username: acfg.Username, Password: acfg.Password, Unknown: acfg.Unknown}).Validate(); err != nil {
		return fmt.Errorf("serve: %w (platforms.pexip.username, password_env %s)", err, px.PasswordEnv)
	}
	ln, err := policy.ListenTCP(px.PolicyListen, px.PolicyCert, px.PolicyKey)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	sup, err := policy.NewSupervisor(policy.SupervisorConfig{Listener: ln, Answerer: acfg,
		CountersPath: filepath.Join(d.stateDir, "policy.counters"), Logger: d.log})
	if err != nil {
		ln.Close()
		return fmt.Errorf("serve: %w", err)
	}
	pe := &policyEndpoint{sup: sup, ln: ln, listen: ln.Addr().String(), tls: px.PolicyCert != "", reject: px.PolicyUnknown == "reject"}
	if err := policy.RegisterMetrics(d.met.reg, sup.Counters(), func() *policy.SnapshotStats { return sup.State().Served }); err != nil {
		pe.close()
		return fmt.Errorf("serve: policy metrics: %w", err)
	}
	d.policy = pe
	d.lowerPriority()
	d.rebuildPolicy(ctx)
	return nil
}

// close stops the answering process (after its answers in flight) and the listener.
func (pe *policyEndpoint) close() {
	pe.sup.Stop()
	pe.ln.Close()
}

// logPolicy says where policy answers are served. The answering process runs from
// initPolicy on, restarted whenever it dies, until closePolicy (after the mailer's last
// run, so the nodes get answers while the daemon shuts down).
func (d *daemon) logPolicy() {
	if pe := d.policy; pe != nil {
		d.log.Info("serve: policy listening", "addr", pe.listen, "tls", pe.tls, "answerer_pid", pe.sup.State().PID)
	}
}

// closePolicy stops the policy endpoint, if any; Serve defers it for the early returns.
func (d *daemon) closePolicy() {
	if d.policy != nil {
		d.policy.close()
	}
}

// policyAfterCycle rebuilds the policy snapshot after a cycle whose apply committed
// changes (or while none is published yet): the new answers appear only after the apply
// that makes them, and all at once.
func (d *daemon) policyAfterCycle(ctx context.Context, res cycleResult) {
	if d.policy == nil || !res.applied {
		return
	}
	if res.plan.HasChanges() || d.policy.sup.Published() == 0 {
		d.rebuildPolicy(ctx)
	}
}

// rebuildPolicy reads the state into a new snapshot and publishes it to the answering
// process. On failure the previous snapshot stays served and the status page shows why.
func (d *daemon) rebuildPolicy(ctx context.Context) {
	pe := d.policy
	if pe == nil {
		return
	}
	hint := 0
	if cur := pe.sup.State().Served; cur != nil {
		hint = cur.Bytes
	}
	snap, err := d.db.PolicySnapshot(context.WithoutCancel(ctx), hint)
	if err == nil {
		err = pe.sup.Publish(snap)
	}
	pe.mu.Lock()
	defer pe.mu.Unlock()
	if err != nil {
		pe.lastErr = err.Error()
		d.log.Warn("serve: policy snapshot; the previous one stays served", "err", err)
		return
	}
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
	as := pe.sup.State()
	s := &PolicyStatus{Listen: pe.listen, TLS: pe.tls, Role: roleOf(d.cfg), Status: policy.NewStatus(as.Served, pe.reject, pe.sup.Counters()),
		AnswererPID: as.PID, AnswererRestarts: as.Restarts}
	pe.mu.Lock()
	s.LastBuildError = cmp.Or(pe.lastErr, as.Refused)
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
	fmt.Fprintf(w, "  answering process: pid %d, %d restarts\n", p.AnswererPID, p.AnswererRestarts)
}
