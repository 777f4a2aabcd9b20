package account

import (
	"fmt"
	"slices"
	"strings"
)

// Type says how a field's value is held.
type Type uint8

const (
	String  Type = iota // Str
	Int                 // Num
	Bool                // Flag
	Strings             // List
)

// Field describes one field of an account of type T: what it is called where, and what
// each stage does with it. The field lists (VMRFields, DeviceFields) are the one place a
// field is declared beside its struct: the plan's output, the diff, the digests (Go and
// SQL), the overrides and the email variables all walk them. Accessors are typed
// pointers, so hot paths (digests of 400,000 objects) read a field without boxing it.
type Field[T any] struct {
	// Name is the field as plans print it, diffs report it and overrides.yaml names it.
	Name string
	// Column is its column in the state's table ("" when held elsewhere: a VMR's aliases).
	// Digest masks name fields by column.
	Column string
	Type   Type
	// One accessor, of the field's Type, gives the field's address.
	Str  func(*T) *string
	Num  func(*T) *int
	Flag func(*T) *bool
	List func(*T) *[]string

	// Printed: shown in the plan's before/after objects.
	Printed bool
	// Compared: a difference is a field change of an update (and so part of the digest).
	Compared bool
	// Owned: an ownership field (sync tag, entry key): digested, never masked.
	Owned bool
	// Overridable lists the names of a template's `overridable` that keep the stored value
	// of this field on update (SPEC §5.4); none when the field is always written.
	Overridable []string
	// Override: overrides.yaml may set the field.
	Override bool
	// Email is the field's email template variable (SPEC §5.6); "" when not emailed.
	Email string
	// Secret: masked in plans unless --show-secrets.
	Secret bool
}

// Digested says whether the field is part of the object's digest: the compared fields
// but entry_key, which counts as an ownership field, and the ownership fields.
func (f *Field[T]) Digested() bool { return f.Compared || f.Owned }

// Value boxes the field's value of x (for printing and SQL arguments, not hot paths).
func (f *Field[T]) Value(x *T) any {
	switch f.Type {
	case Int:
		return *f.Num(x)
	case Bool:
		return *f.Flag(x)
	case Strings:
		return *f.List(x)
	}
	return *f.Str(x)
}

// Equal says whether the field is equal in a and b.
func (f *Field[T]) Equal(a, b *T) bool {
	switch f.Type {
	case Int:
		return *f.Num(a) == *f.Num(b)
	case Bool:
		return *f.Flag(a) == *f.Flag(b)
	case Strings:
		return slices.Equal(*f.List(a), *f.List(b))
	}
	return *f.Str(a) == *f.Str(b)
}

// Copy sets the field of dst to that of src.
func (f *Field[T]) Copy(dst, src *T) {
	switch f.Type {
	case Int:
		*f.Num(dst) = *f.Num(src)
	case Bool:
		*f.Flag(dst) = *f.Flag(src)
	case Strings:
		*f.List(dst) = *f.List(src)
	default:
		*f.Str(dst) = *f.Str(src)
	}
}

// Parse sets the field of x from the text of an override: integers as numbers, booleans
// true for "true" or "yes".
func (f *Field[T]) Parse(x *T, v string) {
	switch f.Type {
	case Int:
		fmt.Sscan(v, f.Num(x))
	case Bool:
		*f.Flag(x) = v == "true" || v == "yes"
	case Strings:
		*f.List(x) = strings.Split(v, ",")
	default:
		*f.Str(x) = v
	}
}

// OverriddenBy says whether any of the overridable names keeps this field.
func (f *Field[T]) OverriddenBy(overridable map[string]bool) bool {
	for _, n := range f.Overridable {
		if overridable[n] {
			return true
		}
	}
	return false
}

// Lookup returns the field named name of fields, or nil.
func Lookup[T any](fields []Field[T], name string) *Field[T] {
	for i := range fields {
		if fields[i].Name == name {
			return &fields[i]
		}
	}
	return nil
}

// VMRFields are a VMR's fields, in the order plans print them and digests hash them.
var VMRFields = []Field[VMR]{
	{Name: "name", Column: "name", Type: String, Str: func(v *VMR) *string { return &v.Name },
		Printed: true, Compared: true, Overridable: []string{"name"}, Email: "name"},
	{Name: "description", Column: "description", Type: String, Str: func(v *VMR) *string { return &v.Description },
		Printed: true, Compared: true, Overridable: []string{"description"}, Override: true, Email: "description"},
	{Name: "aliases", Type: Strings, List: func(v *VMR) *[]string { return &v.Aliases },
		Printed: true, Compared: true, Overridable: []string{"aliases"}, Email: "aliases"},
	{Name: "pin", Column: "pin", Type: String, Str: func(v *VMR) *string { return &v.PIN },
		Printed: true, Compared: true, Overridable: []string{"pin_settings", "pin"}, Override: true, Email: "pin", Secret: true},
	{Name: "guest_pin", Column: "guest_pin", Type: String, Str: func(v *VMR) *string { return &v.GuestPIN },
		Printed: true, Compared: true, Overridable: []string{"pin_settings", "pin", "guest_pin"}, Override: true, Email: "guest_pin", Secret: true},
	{Name: "allow_guests", Column: "allow_guests", Type: Bool, Flag: func(v *VMR) *bool { return &v.AllowGuests },
		Printed: true, Compared: true, Overridable: []string{"pin_settings", "pin", "allow_guests"}, Override: true, Email: "allow_guests"},
	{Name: "max_callrate_in", Column: "max_callrate_in", Type: Int, Num: func(v *VMR) *int { return &v.MaxCallrateIn },
		Printed: true, Compared: true, Overridable: []string{"callrate", "max_callrate_in"}, Override: true, Email: "max_callrate_in"},
	{Name: "max_callrate_out", Column: "max_callrate_out", Type: Int, Num: func(v *VMR) *int { return &v.MaxCallrateOut },
		Printed: true, Compared: true, Overridable: []string{"callrate", "max_callrate_out"}, Override: true, Email: "max_callrate_out"},
	{Name: "participant_limit", Column: "participant_limit", Type: Int, Num: func(v *VMR) *int { return &v.ParticipantLimit },
		Printed: true, Compared: true, Overridable: []string{"participant_limit"}, Override: true, Email: "participant_limit"},
	{Name: "tag", Column: "tag", Type: String, Str: func(v *VMR) *string { return &v.Tag },
		Printed: true, Compared: true, Overridable: []string{"tag"}, Override: true, Email: "tag"},
	{Name: "primary_owner_email_address", Column: "owner_email", Type: String, Str: func(v *VMR) *string { return &v.OwnerEmail },
		Printed: true, Compared: true, Overridable: []string{"primary_owner_email_address"}, Override: true, Email: "primary_owner_email_address"},
	{Name: "sync_tag", Column: "sync_tag", Type: String, Str: func(v *VMR) *string { return &v.SyncTag }, Printed: true, Owned: true},
	{Name: "entry_key", Column: "entry_key", Type: String, Str: func(v *VMR) *string { return &v.EntryKey }, Compared: true, Owned: true},
}

// DeviceFields are a device's fields, in the order plans print them and digests hash them.
var DeviceFields = []Field[Device]{
	{Name: "alias", Column: "alias", Type: String, Str: func(d *Device) *string { return &d.Alias },
		Printed: true, Compared: true, Email: "device_alias"},
	{Name: "description", Column: "description", Type: String, Str: func(d *Device) *string { return &d.Description },
		Printed: true, Compared: true, Overridable: []string{"description"}, Override: true, Email: "device_description"},
	{Name: "username", Column: "username", Type: String, Str: func(d *Device) *string { return &d.Username },
		Printed: true, Compared: true, Overridable: []string{"username"}, Override: true, Email: "device_username"},
	{Name: "password", Column: "password", Type: String, Str: func(d *Device) *string { return &d.Password },
		Printed: true, Compared: true, Overridable: []string{"password"}, Override: true, Email: "device_password", Secret: true},
	{Name: "tag", Column: "tag", Type: String, Str: func(d *Device) *string { return &d.Tag },
		Printed: true, Compared: true, Overridable: []string{"tag"}, Override: true, Email: "device_tag"},
	{Name: "primary_owner_email_address", Column: "owner_email", Type: String, Str: func(d *Device) *string { return &d.OwnerEmail },
		Printed: true, Compared: true, Overridable: []string{"primary_owner_email_address"}, Override: true, Email: "primary_owner_email_address"},
	{Name: "sync_tag", Column: "sync_tag", Type: String, Str: func(d *Device) *string { return &d.SyncTag }, Printed: true, Owned: true},
	{Name: "entry_key", Column: "entry_key", Type: String, Str: func(d *Device) *string { return &d.EntryKey }, Compared: true, Owned: true},
}
