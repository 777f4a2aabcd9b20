package reconcile

import (
	"testing"
	"unsafe"
)

// TestObjectSizes keeps the objects a first apply holds by the million in their size
// classes: a first apply of 400,000 people holds 1.2 million changes and 400,000 of each
// desired object until the transaction writes them. A field added to one of them must
// go behind a pointer, or this limit be raised knowingly.
func TestObjectSizes(t *testing.T) {
	for _, tc := range []struct {
		name      string
		size, max uintptr
	}{
		{"Change", unsafe.Sizeof(Change{}), 128},
		{"DesiredUser", unsafe.Sizeof(DesiredUser{}), 240},
		{"DesiredVMR", unsafe.Sizeof(DesiredVMR{}), 208},
		{"DesiredDevice", unsafe.Sizeof(DesiredDevice{}), 160},
	} {
		if tc.size > tc.max {
			t.Errorf("%s is %d bytes, more than %d", tc.name, tc.size, tc.max)
		}
	}
}
