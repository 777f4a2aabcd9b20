package policy_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
	swapMidTraffic(t, func(t *testing.T, s *policy.Snapshot) *policy.Snapshot { return s })
}

// TestSwapMidTrafficMapped: the same through snapshot files, as the answering process
// serves them: each version written, mapped and swapped in while requests run; the
// mappings replaced are unmapped once their requests are answered (only the one served
// remains).
func TestSwapMidTrafficMapped(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.snapshot")
	seq := uint64(0)
	swapMidTraffic(t, func(t *testing.T, s *policy.Snapshot) *policy.Snapshot {
		seq++
		if err := policy.WriteFile(path, s, seq); err != nil {
			t.Fatal(err)
		}
		m, got, err := policy.OpenFile(path)
		if err != nil || got != seq {
			t.Fatalf("open file %d: seq %d, %v", seq, got, err)
		}
		return m
	})
	if n := mappingsOf(t, dir); n != 1 {
		t.Errorf("%d snapshot files of %s still mapped after the swaps, want the one served", n, dir)
	}
}

// mappingsOf counts the distinct files under dir this process maps (Linux; -1 elsewhere).
func mappingsOf(t *testing.T, dir string) int {
	b, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Skip("no /proc/self/maps")
	}
	inodes := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 6 && strings.HasPrefix(f[5], dir) {
			inodes[f[4]] = true
		}
	}
	return len(inodes)
}

func swapMidTraffic(t *testing.T, prepare func(*testing.T, *policy.Snapshot) *policy.Snapshot) {
	const rooms, versions, workers = 500, 60, 6
	p := startServer(t, "continue", true)
	var published swapClock
	published.swap(p.idx, prepare(t, buildVersion(t, rooms, rooms, 1, nil)), 1)

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
		published.swap(p.idx, prepare(t, buildVersion(t, rooms, rooms, v, nil)), v)
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

// swapClock tells which versions a request may be answered from: at least the last one
// whose Swap returned before it was sent, at most the last one whose Swap started before
// its answer came (a Swap that releases a mapping takes a while to return).
type swapClock struct{ started, done atomic.Int64 }

func (c *swapClock) swap(idx *policy.Index, s *policy.Snapshot, v int) {
	c.started.Store(int64(v))
	idx.Swap(s)
	c.done.Store(int64(v))
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
func probe(ctx context.Context, node *policytest.Node, i int, device bool, published *swapClock) probed {
	lo := published.done.Load()
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
	hi := published.started.Load()
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
