package reconcile

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// TestSetParallelism: a cap below GOMAXPROCS bounds the goroutines parallel runs at once
// (the daemon's policy mode keeps Ps free that way); 0 restores GOMAXPROCS; every index
// is still visited exactly once.
func TestSetParallelism(t *testing.T) {
	prev := runtime.GOMAXPROCS(4)
	defer runtime.GOMAXPROCS(prev)
	defer SetParallelism(0)
	for _, c := range []struct{ cap, want int }{{1, 1}, {2, 2}, {0, 4}, {9, 4}} {
		SetParallelism(c.cap)
		if got := parallelism(); got != c.want {
			t.Errorf("SetParallelism(%d): parallelism() = %d, want %d", c.cap, got, c.want)
		}
		var running, peak atomic.Int32
		var mu sync.Mutex
		seen := map[int]int{}
		gate := make(chan struct{})
		go func() { // let every worker start before the first finishes
			for running.Load() < int32(c.want) {
				runtime.Gosched()
			}
			close(gate)
		}()
		parallel(64, func(i int) {
			n := running.Add(1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			<-gate
			mu.Lock()
			seen[i]++
			mu.Unlock()
			running.Add(-1)
		})
		if int(peak.Load()) != c.want || len(seen) != 64 {
			t.Errorf("cap %d: %d goroutines at once, %d indexes; want %d and 64", c.cap, peak.Load(), len(seen), c.want)
		}
		for i, n := range seen {
			if n != 1 {
				t.Errorf("cap %d: index %d visited %d times", c.cap, i, n)
			}
		}
	}
}
