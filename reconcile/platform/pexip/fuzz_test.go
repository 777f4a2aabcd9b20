package pexip

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// FuzzDecodeList: any body either decodes into a consistent page or is refused; never a
// panic, never an object that is not a JSON object.
func FuzzDecodeList(f *testing.F) {
	f.Add([]byte(`{"meta": {"limit": 2, "offset": 0, "total_count": 3, "next": "/api/admin/configuration/v1/conference/?limit=2&offset=2", "previous": null}, "objects": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]}`))
	f.Add([]byte(`{"meta": {"limit": 20, "offset": 0, "total_count": 0, "next": null, "previous": null}, "objects": []}`))
	f.Add([]byte(`{"objects": [1, 2]}`))
	f.Add([]byte(`{"meta": {"total_count": -1}, "objects": []}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		meta, objects, err := decodeList(body)
		if err != nil {
			if objects != nil {
				t.Fatalf("objects with an error: %v", err)
			}
			return
		}
		if meta.TotalCount < 0 || meta.Limit < 0 || meta.Offset < 0 {
			t.Fatalf("negative meta %+v", meta)
		}
		for _, o := range objects {
			var m map[string]any
			if json.Unmarshal(o, &m) != nil {
				t.Fatalf("object %q is not a JSON object", o)
			}
		}
	})
}

// FuzzClassify400: any 400 body gives ErrDuplicate or ErrInvalid, a duplicate only for a
// message that says so, and no message longer than the body allows.
func FuzzClassify400(f *testing.F) {
	f.Add([]byte(`{"conference": {"name": ["Conference with this Name already exists."]}}`), "")
	f.Add([]byte(`{"alias": ["Conference alias with this Alias already exists."], "description": "x"}`), "")
	f.Add([]byte(`{"error": "Bad request"}`), "")
	f.Add([]byte(`{"device": {"__all__": ["x"], "alias": [1, 2]}}`), "")
	f.Add([]byte(`<html>oops</html>`), "3")
	f.Fuzz(func(t *testing.T, body []byte, retryAfter string) {
		now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		e := classify("create conference", 400, retryAfter, body, now)
		switch e.Kind {
		case ErrDuplicate:
			if !strings.Contains(strings.ToLower(e.Detail), "already exist") {
				t.Fatalf("duplicate from %q: %+v", body, e)
			}
		case ErrInvalid:
		default:
			t.Fatalf("kind %v from a 400", e.Kind)
		}
		if Retryable(e) {
			t.Fatal("a 400 is retryable")
		}
		_ = e.Error()
		if d := parseRetryAfter(retryAfter, now); d < 0 || d > maxRetryAfter {
			t.Fatalf("Retry-After %q → %s", retryAfter, d)
		}
	})
}
