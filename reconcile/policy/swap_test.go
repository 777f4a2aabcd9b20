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
// names v. Rooms thus come and go and change PINs from one apply to the next.
func versionedEstate(b *policy.Builder, rooms, v int) {
	for i := range rooms {
		r := policytest.PersonalRoom(i, v)
		r.Enabled = (i+v)%7 != 0
		b.AddRoom(&r)
		b.AddDevice(&policy.Device{Alias: deviceAlias(i), Username: "dev" + strconv.Itoa(i),
			Password: fmt.Sprintf("pw-%d-v%d", i, v), Enabled: r.Enabled})
	}
}

func deviceAlias(i int) string { return fmt.Sprintf("sip:dev%d@video.example.com", i) }

func buildVersion(t testing.TB, rooms, v int) *policy.Snapshot {
	b := policy.NewBuilder(strconv.Itoa(v))
	versionedEstate(b, rooms, v)
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
	p.idx.Swap(buildVersion(t, rooms, 1))
	published.Store(1)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	var answers, fallbacks atomic.Int64
	errs := make(chan string, 100)
	report := func(format string, args ...any) {
		select {
		case errs <- fmt.Sprintf(format, args...):
		default:
		}
	}
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := w; ctx.Err() == nil; n += workers {
				i := n * 31 % rooms
				lo := published.Load()
				var v int64
				var present bool
				if n%4 == 3 {
					d := p.node.Registration(ctx, deviceAlias(i), "sip")
					if ctx.Err() != nil {
						return
					}
					if present = d.Kind == policytest.Register; present {
						if _, err := fmt.Sscanf(d.Credentials.Password, fmt.Sprintf("pw-%d-v%%d", i), &v); err != nil {
							report("device %d: password %q", i, d.Credentials.Password)
						}
					} else if d.HTTPStatus != 200 {
						report("device %d: %v HTTP %d %s", i, d.Kind, d.HTTPStatus, d.Reason)
					}
				} else {
					d := p.node.ServiceConfiguration(ctx, "sip:"+policytest.PersonalAlias(i), nil)
					if ctx.Err() != nil {
						return
					}
					if present = d.Kind == policytest.Conference; present {
						v, _ = strconv.ParseInt(d.Service.GuestPIN, 10, 64)
						if d.Service.PIN != policytest.PersonalPIN(i, int(v)) {
							report("room %d: PIN %s and guest PIN %s from different versions", i, d.Service.PIN, d.Service.GuestPIN)
						}
					} else if d.HTTPStatus != 200 {
						report("room %d: %v HTTP %d %s", i, d.Kind, d.HTTPStatus, d.Reason)
					}
				}
				hi := published.Load()
				if present {
					answers.Add(1)
					if v < lo || v > hi {
						report("object %d answered from version %d outside [%d, %d]", i, v, lo, hi)
					}
					if (i+int(v))%7 == 0 {
						report("object %d answered from version %d, where it is disabled", i, v)
					}
					continue
				}
				fallbacks.Add(1)
				// Absent: it must be disabled in some version the request may have read.
				absentSomewhere := false
				for u := lo; u <= hi; u++ {
					absentSomewhere = absentSomewhere || (i+int(u))%7 == 0
				}
				if !absentSomewhere {
					report("object %d unknown, but enabled in every version %d..%d", i, lo, hi)
				}
			}
		}()
	}
	for v := 2; v <= versions; v++ {
		s := buildVersion(t, rooms, v)
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

// TestBuildInProgress: a snapshot half built changes nothing; requests keep the
// published one until the new one is swapped in, then see all of it.
func TestBuildInProgress(t *testing.T) {
	p := startServer(t, "continue", true)
	p.idx.Swap(buildVersion(t, 10, 1))
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
