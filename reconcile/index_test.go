package reconcile

import "testing"

func TestPosTable(t *testing.T) {
	tab := newPosTable(5)
	hashes := []uint64{7, 7 + 16, 7, 3, 15} // chains wrap at the end of 16 slots and collide
	for i, h := range hashes {
		tab.insert(h, int32(i))
	}
	for i, h := range hashes {
		got, ok := tab.find(h, func(p int32) bool { return p == int32(i) })
		if !ok || got != int32(i) {
			t.Errorf("find(%d, pos %d) = %d, %v", h, i, got, ok)
		}
	}
	if _, ok := tab.find(7, func(p int32) bool { return false }); ok {
		t.Error("find must stop at an empty slot when nothing matches")
	}
	if _, ok := tab.find(12, func(int32) bool { return true }); ok {
		t.Error("an empty slot means absent")
	}
}
