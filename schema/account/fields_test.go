package account

import (
	"reflect"
	"testing"
	"unsafe"
)

// Every field of VMR and Device but ID is described exactly once, by an accessor of its
// Type: a field added to the struct and not to its list fails here.
func TestFieldListsCoverTheStructs(t *testing.T) {
	check(t, VMRFields)
	check(t, DeviceFields)
}

func check[T any](t *testing.T, fields []Field[T]) {
	var x T
	base := uintptr(unsafe.Pointer(&x))
	seen := map[uintptr]string{}
	for _, f := range fields {
		var p unsafe.Pointer
		switch f.Type {
		case String:
			p = unsafe.Pointer(f.Str(&x))
		case Int:
			p = unsafe.Pointer(f.Num(&x))
		case Bool:
			p = unsafe.Pointer(f.Flag(&x))
		case Strings:
			p = unsafe.Pointer(f.List(&x))
		}
		off := uintptr(p) - base
		if prev, dup := seen[off]; dup {
			t.Errorf("%T: %s and %s address one field", x, prev, f.Name)
		}
		seen[off] = f.Name
		if f.Secret && f.Email == "" && f.Printed {
			t.Errorf("%T: secret %s has no email variable to mask", x, f.Name)
		}
	}
	rt := reflect.TypeOf(x)
	for i := 0; i < rt.NumField(); i++ {
		sf := rt.Field(i)
		if _, ok := seen[sf.Offset]; !ok && sf.Name != "ID" {
			t.Errorf("%T.%s is in no field list", x, sf.Name)
		}
	}
	if len(seen) != rt.NumField()-1 {
		t.Errorf("%T: %d fields described, the struct has %d besides ID", x, len(seen), rt.NumField()-1)
	}
}

// Parse and Equal follow each field's Type.
func TestFieldParseEqual(t *testing.T) {
	tests := []struct {
		field, text string
		want        VMR
	}{
		{"participant_limit", "12", VMR{ParticipantLimit: 12}},
		{"allow_guests", "yes", VMR{AllowGuests: true}},
		{"allow_guests", "no", VMR{}},
		{"tag", "room", VMR{Tag: "room"}},
	}
	for _, tt := range tests {
		var v VMR
		f := Lookup(VMRFields, tt.field)
		f.Parse(&v, tt.text)
		if !reflect.DeepEqual(v, tt.want) || !f.Equal(&v, &tt.want) {
			t.Errorf("Parse(%s, %q) = %+v, want %+v", tt.field, tt.text, v, tt.want)
		}
	}
	a, b := VMR{Aliases: []string{"x"}}, VMR{Aliases: []string{"y"}}
	if Lookup(VMRFields, "aliases").Equal(&a, &b) {
		t.Error("different alias lists compare equal")
	}
}
