package pexipfake

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/roster-dev/roster/reconcile/platform/pexip"
)

// kind is how a field's value is checked.
type kind int

const (
	kString  kind = iota // a string of at most max characters
	kBool                // true or false
	kNullInt             // null or an integer in [min, max]
	kRef                 // the resource URI of an existing conference
	kAliases             // conference create only: [{"alias": …, "description": …}]
)

type field struct {
	kind     kind
	min, max int
}

// resourceSpec is what PEXIP.md says of one resource.
type resourceSpec struct {
	fields   map[string]field
	unique   string // the unique field, which lookups and duplicates name
	required []string
	filters  []string
	label    string // how a duplicate message names the resource
}

func str(n int) field { return field{kind: kString, max: n} }

var specs = map[pexip.Resource]*resourceSpec{
	pexip.Conferences: {
		fields: map[string]field{
			"name": str(250), "service_type": str(250), "description": str(250), "pin": str(20), "guest_pin": str(20),
			"allow_guests": {kind: kBool}, "max_callrate_in": {kind: kNullInt, min: 128, max: 8192},
			"max_callrate_out": {kind: kNullInt, min: 128, max: 8192}, "participant_limit": {kind: kNullInt, min: 0, max: 1000000},
			"tag": str(250), "primary_owner_email_address": str(250), "aliases": {kind: kAliases},
		},
		unique: "name", required: []string{"name"}, filters: []string{"name", "tag"}, label: "Conference",
	},
	pexip.ConferenceAliases: {
		fields: map[string]field{"alias": str(250), "description": str(250), "conference": {kind: kRef}},
		unique: "alias", required: []string{"alias", "conference"}, filters: []string{"alias", "conference"},
		label: "Conference alias",
	},
	pexip.Devices: {
		fields: map[string]field{
			"alias": str(250), "description": str(250), "username": str(250), "password": str(250), "tag": str(250),
			"primary_owner_email_address": str(250), "enable_sip": {kind: kBool}, "enable_h323": {kind: kBool},
			"enable_infinity_connect_non_sso": {kind: kBool}, "enable_infinity_connect_sso": {kind: kBool},
		},
		unique: "alias", required: []string{"alias"}, filters: []string{"alias", "tag"}, label: "Device",
	},
	pexip.EndUsers: {
		fields: map[string]field{
			"primary_email_address": str(250), "first_name": str(250), "last_name": str(250), "display_name": str(250),
			"telephone_number": str(250), "mobile_number": str(250), "title": str(250), "department": str(250),
		},
		unique: "primary_email_address", required: []string{"primary_email_address"},
		filters: []string{"primary_email_address"}, label: "End user",
	},
}

// defaults are the values of fields a create leaves out.
func (s *resourceSpec) defaults(res pexip.Resource) map[string]any {
	o := map[string]any{}
	for name, f := range s.fields {
		switch f.kind {
		case kString:
			o[name] = ""
		case kBool:
			o[name] = false
		case kNullInt, kRef:
			o[name] = nil
		}
	}
	if res == pexip.Conferences {
		o["service_type"] = "conference"
	}
	return o
}

// fieldError is a 400 naming a field.
type fieldError struct {
	field, msg string
	value      any // the value refused, when one was
}

func (e *fieldError) Error() string { return e.field + ": " + e.msg }

// check validates one field's value and returns it as stored (json.Number → int).
func (s *resourceSpec) check(name string, v any) (any, error) {
	f, ok := s.fields[name]
	if !ok {
		return nil, &fieldError{name, "Unknown field.", nil}
	}
	switch f.kind {
	case kString:
		t, ok := v.(string)
		if !ok {
			return nil, &fieldError{name, "This field must be a string.", nil}
		}
		if n := len([]rune(t)); n > f.max {
			return nil, &fieldError{name, fmt.Sprintf("Ensure this value has at most %d characters (it has %d).", f.max, n), t}
		}
		return t, nil
	case kBool:
		if _, ok := v.(bool); !ok {
			return nil, &fieldError{name, "This field must be true or false.", nil}
		}
		return v, nil
	case kNullInt:
		if v == nil {
			return nil, nil
		}
		n, ok := v.(json.Number)
		i, err := n.Int64()
		if !ok || err != nil {
			return nil, &fieldError{name, "Enter a whole number.", nil}
		}
		if i < int64(f.min) || i > int64(f.max) {
			return nil, &fieldError{name, fmt.Sprintf("Ensure this value is between %d and %d.", f.min, f.max), i}
		}
		return int(i), nil
	case kRef:
		t, ok := v.(string)
		if !ok || !strings.HasPrefix(t, pexip.BasePath+string(pexip.Conferences)+"/") {
			return nil, &fieldError{name, "Expected a conference resource URI.", nil}
		}
		if _, err := pexip.IDFromURI(t); err != nil {
			return nil, &fieldError{name, "Expected a conference resource URI.", nil}
		}
		return t, nil
	}
	return v, nil
}
