package stablehash

import (
	"fmt"
	"testing"
)

// TestStringStable: the value depends on the seed and the string only (files written by
// one process are read by another), every byte counts, and neither half of the hash
// clusters: 100,000 keys that differ in a few bytes spread over both 32-bit halves.
func TestStringStable(t *testing.T) {
	if String(1, "meet.alice@example.com") != String(1, "meet.alice@example.com") {
		t.Fatal("same seed and string, different hashes")
	}
	if String(1, "meet.alice@example.com") == String(2, "meet.alice@example.com") {
		t.Error("the seed changes nothing")
	}
	for _, pair := range [][2]string{{"abcdefgh", "abcdefgi"}, {"abcdefghi", "abcdefghj"}, {"a", "a\x00"}, {"", "\x00"}} {
		if String(7, pair[0]) == String(7, pair[1]) {
			t.Errorf("%q and %q hash alike", pair[0], pair[1])
		}
	}
	const n = 100_000
	lo, hi := map[uint32]bool{}, map[uint32]bool{}
	for i := range n {
		h := String(42, fmt.Sprintf("%07d@vc.example.com", i))
		lo[uint32(h)], hi[uint32(h>>32)] = true, true
	}
	// Random 32-bit values collide about n²/2³³ ≈ 1 time in n.
	if len(lo) < n-10 || len(hi) < n-10 {
		t.Errorf("distinct halves of %d hashes: low %d, high %d", n, len(lo), len(hi))
	}
}
