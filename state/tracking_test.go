package state

import (
	"encoding/json"
	"testing"

	"github.com/roster-dev/roster/schema/account"
)

func TestTracking(t *testing.T) {
	tests := []struct {
		name string
		in   [10]string
		want account.Tracking
	}{
		{"empty", [10]string{}, ""},
		{"first", [10]string{"SALES"}, `["SALES"]`},
		{"gap", [10]string{"", "", "X"}, `["","","X"]`},
		{"last", [10]string{9: "Z"}, `["","","","","","","","","","Z"]`},
		{"quote and separator", [10]string{`a"b`, "c,d\x1f"}, `["a\"b","c,d\u001f"]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := account.MakeTracking(tt.in)
			if got != tt.want {
				t.Fatalf("MakeTracking = %q, want %q", got, tt.want)
			}
			if got.Values() != tt.in {
				t.Errorf("Values = %q, want %q", got.Values(), tt.in)
			}
			if trackingFromDB(trackingDB(got)) != got {
				t.Errorf("database round trip of %q changed it", got)
			}
			b, _ := json.Marshal(got)
			var back account.Tracking
			if err := json.Unmarshal(b, &back); err != nil || back != got {
				t.Errorf("JSON round trip: %s → %q, %v", b, back, err)
			}
		})
	}
	tr := account.MakeTracking([10]string{"A"}).With(3, "D").With(0, "")
	if tr.Get(3) != "D" || tr.Get(0) != "" || tr != `["","","","D"]` {
		t.Errorf("With: %q", tr)
	}
	if account.MakeTracking([10]string{"A"}).With(0, "") != "" {
		t.Error("clearing the only value must give the empty Tracking")
	}
}
