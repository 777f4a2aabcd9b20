package policy

import (
	"fmt"
	"sort"
	"sync/atomic"
	"time"
	"unsafe"
)

// Counters are the policy server's counts: requests by endpoint, answers by outcome and
// a latency histogram, as plain uint64 words updated atomically. The words live where the
// caller says: on the heap (NewCounters), or in a file mapped MAP_SHARED by both the
// answering process, which counts, and the daemon, which shows them on /metrics and the
// status page (CountersOver) — so the counts survive a restart of the answering process.
type Counters struct {
	w []uint64
}

// Word layout: a magic word naming the layout, then the counts.
const (
	countersMagic    = 0x31435052_54534f52 // "ROSTPRC1", little-endian
	wordRequests     = 1
	wordAnswers      = wordRequests + int(numEndpoints)
	wordBuckets      = wordAnswers + int(numOutcomes) // one per latencyBuckets bound, then +Inf
	numBuckets       = 13                             // len(latencyBuckets), checked by init
	wordLatencySum   = wordBuckets + numBuckets + 1
	countersWords    = wordLatencySum + 1
	CountersFileSize = countersWords * 8 // bytes of a counters file
)

func init() {
	if len(latencyBuckets) != numBuckets {
		panic("policy: numBuckets is not len(latencyBuckets)")
	}
}

// NewCounters makes counters on the heap.
func NewCounters() *Counters {
	c := &Counters{w: make([]uint64, countersWords)}
	c.w[0] = countersMagic
	return c
}

// CountersOver lays counters over b, a mapping of at least CountersFileSize bytes aligned
// to 8 (a page): zero words are initialized, words of another layout refused.
func CountersOver(b []byte) (*Counters, error) {
	if len(b) < CountersFileSize || uintptr(unsafe.Pointer(unsafe.SliceData(b)))%8 != 0 {
		return nil, fmt.Errorf("policy counters: %d bytes, want %d aligned to 8", len(b), CountersFileSize)
	}
	c := &Counters{w: unsafe.Slice((*uint64)(unsafe.Pointer(unsafe.SliceData(b))), countersWords)}
	if !atomic.CompareAndSwapUint64(&c.w[0], 0, countersMagic) && atomic.LoadUint64(&c.w[0]) != countersMagic {
		return nil, fmt.Errorf("policy counters: not a counters file of this version (magic %#x)", c.w[0])
	}
	return c, nil
}

func (c *Counters) add(i int) { atomic.AddUint64(&c.w[i], 1) }

func (c *Counters) load(i int) uint64 { return atomic.LoadUint64(&c.w[i]) }

// record counts one request.
func (c *Counters) record(ep endpoint, out outcome, d time.Duration) {
	c.add(wordRequests + int(ep))
	c.add(wordAnswers + int(out))
	c.add(wordBuckets + sort.SearchFloat64s(latencyBuckets, d.Seconds()))
	atomic.AddUint64(&c.w[wordLatencySum], uint64(max(d, 0)))
}

// Answers returns the answers by outcome name.
func (c *Counters) Answers() map[string]uint64 {
	m := make(map[string]uint64, numOutcomes)
	for i := range numOutcomes {
		m[outcomeNames[i]] = c.load(wordAnswers + int(i))
	}
	return m
}

// latency returns the histogram as Prometheus wants it: cumulative counts by upper
// bound, the total count and the sum in seconds.
func (c *Counters) latency() (buckets map[float64]uint64, count uint64, sum float64) {
	buckets = make(map[float64]uint64, len(latencyBuckets))
	for i, le := range latencyBuckets {
		count += c.load(wordBuckets + i)
		buckets[le] = count
	}
	count += c.load(wordBuckets + len(latencyBuckets))
	return buckets, count, time.Duration(c.load(wordLatencySum)).Seconds()
}
