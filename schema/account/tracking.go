package account

import "encoding/json"

// Tracking holds a user's ten tracking-code values (WebEx TRACKING CODE 1…10) in one
// string: the JSON array of the values up to the last non-empty one, "" when all are
// empty — exactly what the users table stores.
//
// Why not [10]string: that is 160 bytes in every user, loaded or desired, and most of the
// ten are empty; 400,000 users spent 64 MB on it. A string is 16 bytes, compares with ==,
// and is loaded from the database without decoding. It is a value: With returns a new one.
type Tracking string

// MakeTracking packs ten values.
func MakeTracking(v [10]string) Tracking {
	last := -1
	for i, s := range v {
		if s != "" {
			last = i
		}
	}
	if last < 0 {
		return ""
	}
	b, _ := json.Marshal(v[:last+1])
	return Tracking(b)
}

// Values unpacks the ten values.
func (t Tracking) Values() [10]string {
	var out [10]string
	if t == "" {
		return out
	}
	var vals []string
	json.Unmarshal([]byte(t), &vals)
	copy(out[:], vals)
	return out
}

// Get returns value i (0–9).
func (t Tracking) Get(i int) string { return t.Values()[i] }

// With returns t with value i set to v.
func (t Tracking) With(i int, v string) Tracking {
	vals := t.Values()
	vals[i] = v
	return MakeTracking(vals)
}

// MarshalJSON writes the ten values as an array, as a [10]string would.
func (t Tracking) MarshalJSON() ([]byte, error) {
	v := t.Values()
	return json.Marshal(v[:])
}

// UnmarshalJSON reads an array of up to ten values.
func (t *Tracking) UnmarshalJSON(b []byte) error {
	var vals []string
	if err := json.Unmarshal(b, &vals); err != nil {
		return err
	}
	var v [10]string
	copy(v[:], vals)
	*t = MakeTracking(v)
	return nil
}
