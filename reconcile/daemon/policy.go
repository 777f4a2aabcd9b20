package daemon

import (
	"context"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

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
	policy.Status        // the snapshot served (version, counts, built_at) and the answers given
	// LastBuildError is why the last rebuild failed; the previous snapshot stays served.
	LastBuildError string `json:"last_build_error,omitempty"`
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
	d.rebuildPolicy(ctx)
	return nil
}

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
	s := &PolicyStatus{Listen: pe.listen, TLS: pe.tls, Status: pe.srv.Status()}
	pe.mu.Lock()
	s.LastBuildError = pe.lastErr
	pe.mu.Unlock()
	return s
}
