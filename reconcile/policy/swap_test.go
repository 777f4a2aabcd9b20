package policy_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/roster-dev/roster/reconcile/policy"
	"github.com/roster-dev/roster/reconcile/policy/policytest"
)

// versionedEstate is the state after apply v: room i exists (enabled) unless
// (i+v)%7 == 0, its guest PIN is v and its PIN derives from i and v; device i's password
// names v (devices exist for the first rooms only). Rooms thus come and go and change PINs from one apply to the next.
func versionedEstate(b *policy.Builder, rooms, devices, v int) {
	for i := range rooms {
		r := policytest.PersonalRoom(i, v)
		r.Enabled = (i+v)%7 != 0
		b.AddRoom(&r)
		if i >= devices {
			continue
		}
		b.AddDevice(&policy.Device{Alias: deviceAlias(i), Username: "dev" + strconv.Itoa(i),
			Password: fmt.Sprintf("pw-%d-v%d", i, v), Enabled: r.Enabled})
	}
}

func deviceAlias(i int) string { return fmt.Sprintf("sip:dev%d@video.example.com", i) }

// buildVersion builds apply v of versionedEstate with devices for the first rooms,
// sizing the arena after prev (nil for none).
func buildVersion(t testing.TB, rooms, devices, v int, prev *policy.Snapshot) *policy.Snapshot {
	b := policy.NewBuilder(strconv.Itoa(v))
	if prev != nil {
		b.Grow(prev.Stats().Bytes)
	}
	versionedEstate(b, rooms, devices, v)
	s, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestSwapMidTraffic hammers the server while snapshots are swapped. Every answer must
// come from one version, no older than the last one published before the request was
// sent and no newer than the last one published after its answer came.
func TestSwapMidTraffic(t *testing.T) {
	const rooms, versions, workers = 500, 60, 6
	p := startServer(t, "continue", true)
	var published atomic.Int64 // last version whose Swap returned
	p.idx.Swap(buildVersion(t, rooms, rooms, 1, nil))
	published.Store(1)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	var answers, fallbacks atomic.Int64
	errs := make(chan string, 100)
	report := func(problem string) {
		select {
		case errs <- problem:
		default: // enough to show
		}
	}
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := w; ctx.Err() == nil; n += workers {
				pr := probe(ctx, p.node, n*31%rooms, n%4 == 3, &published)
				switch {
				case ctx.Err() != nil:
					return
				case pr.problem != "":
					report(pr.problem)
				case pr.present:
					answers.Add(1)
				default:
					fallbacks.Add(1)
				}
			}
		}()
	}
	for v := 2; v <= versions; v++ {
		s := buildVersion(t, rooms, rooms, v, nil)
		p.idx.Swap(s)
		published.Store(int64(v))
		time.Sleep(2 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	t.Logf("%d answers, %d unknown, across %d swaps", answers.Load(), fallbacks.Load(), versions-1)
	if answers.Load() < 100 || fallbacks.Load() == 0 {
		t.Errorf("too little traffic to judge: %d answers, %d unknown", answers.Load(), fallbacks.Load())
	}
}

// probed is the outcome of one probe: whether the object was answered, how long the
// node waited, and what was wrong with the answer, if anything.
type probed struct {
	present bool
	elapsed time.Duration
	problem string
}

// probe asks for room i (or device i) of versionedEstate and checks the answer: from a
// single version, no older than the last one published before it was sent, no newer
// than the last one published after it came; an unknown object must be disabled in one
// of those versions.
func probe(ctx context.Context, node *policytest.Node, i int, device bool, published *atomic.Int64) probed {
	lo := published.Load()
	var d policytest.Decision
	var v int64
	var pr probed
	if device {
		d = node.Registration(ctx, deviceAlias(i), "sip")
		if pr.present = d.Kind == policytest.Register; pr.present {
			if _, err := fmt.Sscanf(d.Credentials.Password, fmt.Sprintf("pw-%d-v%%d", i), &v); err != nil {
				pr.problem = fmt.Sprintf("device %d: password %q", i, d.Credentials.Password)
			}
		}
	} else {
		d = node.ServiceConfiguration(ctx, "sip:"+policytest.PersonalAlias(i), nil)
		if pr.present = d.Kind == policytest.Conference; pr.present {
			v, _ = strconv.ParseInt(d.Service.GuestPIN, 10, 64)
			if d.Service.PIN != policytest.PersonalPIN(i, int(v)) {
				pr.problem = fmt.Sprintf("room %d: PIN %s and guest PIN %s from different versions", i, d.Service.PIN, d.Service.GuestPIN)
			}
		}
	}
	hi := published.Load()
	pr.elapsed = d.Elapsed
	switch {
	case pr.problem != "":
	case !pr.present && d.HTTPStatus != 200:
		pr.problem = fmt.Sprintf("object %d: %v HTTP %d %s", i, d.Kind, d.HTTPStatus, d.Reason)
	case pr.present && (v < lo || v > hi):
		pr.problem = fmt.Sprintf("object %d answered from version %d outside [%d, %d]", i, v, lo, hi)
	case pr.present && (i+int(v))%7 == 0:
		pr.problem = fmt.Sprintf("object %d answered from version %d, where it is disabled", i, v)
	case !pr.present:
		absentSomewhere := false
		for u := lo; u <= hi; u++ {
			absentSomewhere = absentSomewhere || (i+int(u))%7 == 0
		}
		if !absentSomewhere {
			pr.problem = fmt.Sprintf("object %d unknown, but enabled in every version %d..%d", i, lo, hi)
		}
	}
	return pr
}

// TestBuildInProgress: a snapshot half built changes nothing; requests keep the
// published one until the new one is swapped in, then see all of it.
func TestBuildInProgress(t *testing.T) {
	p := startServer(t, "continue", true)
	p.idx.Swap(buildVersion(t, 10, 10, 1, nil))
	ctx := context.Background()
	pin := func(i int) string {
		return p.node.ServiceConfiguration(ctx, policytest.PersonalAlias(i), nil).Service.PIN
	}
	b := policy.NewBuilder("2")
	for i := range 5 { // half of apply 2
		r := policytest.PersonalRoom(i, 2)
		b.AddRoom(&r)
	}
	for i := range 5 { // all enabled in version 1 (room 6 is not)
		if got := pin(i); got != policytest.PersonalPIN(i, 1) {
			t.Errorf("room %d during build: PIN %q, want version 1's %q", i, got, policytest.PersonalPIN(i, 1))
		}
	}
	for i := 5; i < 10; i++ {
		r := policytest.PersonalRoom(i, 2)
		b.AddRoom(&r)
	}
	s, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	if got := pin(3); got != policytest.PersonalPIN(3, 1) {
		t.Errorf("built, not swapped: PIN %q, want version 1's", got)
	}
	p.idx.Swap(s)
	for i := range 10 {
		if got := pin(i); got != policytest.PersonalPIN(i, 2) {
			t.Errorf("room %d after swap: PIN %q, want version 2's %q", i, got, policytest.PersonalPIN(i, 2))
		}
	}
}
