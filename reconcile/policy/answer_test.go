package policy

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestRoomAnswer(t *testing.T) {
	for _, tc := range []struct {
		name string
		room Room
		want map[string]any
	}{
		{"full", Room{Name: "R", ServiceTag: "t", Description: "d <&>", PIN: "1234", GuestPIN: "5678#",
			AllowGuests: true, MaxCallrateIn: 4128, MaxCallrateOut: 128, ParticipantLimit: 50, OwnerEmail: "o@example.com"},
			map[string]any{"service_type": "conference", "name": "R", "service_tag": "t", "description": "d <&>",
				"pin": "1234", "guest_pin": "5678#", "allow_guests": true, "max_callrate_in": 4128000.0,
				"max_callrate_out": 128000.0, "participant_limit": 50.0, "primary_owner_email_address": "o@example.com"}},
		{"unset fields left out", Room{Name: "R"},
			map[string]any{"service_type": "conference", "name": "R", "service_tag": "", "allow_guests": false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got struct {
				Status, Action string
				Result         map[string]any
			}
			b := appendRoomAnswer(nil, &tc.room)
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatalf("%s: %v", b, err)
			}
			if got.Status != "success" || got.Action != "continue" || !reflect.DeepEqual(got.Result, tc.want) {
				t.Errorf("answer %s\nwant result %v", b, tc.want)
			}
		})
	}
}
