package state

import (
	"context"
	"database/sql/driver"
	"fmt"

	"github.com/mattn/go-sqlite3"

	"github.com/roster-dev/roster/reconcile/policy"
)

// PolicySnapshot builds the policy index (SPEC §8, policy mode) from the state: every VMR
// with its aliases and every device with its credentials, read in one transaction so the
// snapshot is one applied state, never half of an apply. The state holds only live
// objects (a deleted one is removed by its apply), so every row is Enabled. The snapshot
// is labelled with the state version.
//
// Rows stream straight into the builder (no account structs): the index of 400,000
// rooms costs its arena, not a copy of the state.
func (db *DB) PolicySnapshot(ctx context.Context, sizeHint int) (*policy.Snapshot, error) {
	var b *policy.Builder
	err := db.rawLoad(ctx, nil, func(sc *sqlite3.SQLiteConn, _ *Actual) error {
		version := "0"
		if err := eachRow(sc, `SELECT value FROM meta WHERE key = 'state_version'`, func(r []driver.Value) error {
			version = rawStr(r[0])
			return nil
		}); err != nil {
			return err
		}
		b = policy.NewBuilder("state " + version)
		b.Grow(sizeHint)
		if err := streamPolicyRooms(sc, b); err != nil {
			return err
		}
		return eachRow(sc, `SELECT alias, username, password FROM devices ORDER BY id`, func(r []driver.Value) error {
			b.AddDevice(&policy.Device{Alias: rawStr(r[0]), Username: rawStr(r[1]), Password: rawStr(r[2]), Enabled: true})
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read policy snapshot: %w", err)
	}
	return b.Finish()
}

// streamPolicyRooms adds each VMR with its aliases (in their declared order): one joined
// scan ordered by VMR, a room flushed when the next one starts.
func streamPolicyRooms(sc *sqlite3.SQLiteConn, b *policy.Builder) error {
	var cur policy.Room
	curID := int64(-1)
	flush := func() {
		if curID >= 0 {
			b.AddRoom(&cur)
		}
	}
	err := eachRow(sc, `SELECT v.id, v.name, v.description, v.pin, v.guest_pin, v.allow_guests, v.max_callrate_in,
		v.max_callrate_out, v.participant_limit, v.tag, v.owner_email, a.alias
		FROM vmrs v LEFT JOIN vmr_aliases a ON a.vmr_id = v.id ORDER BY v.id, a.pos`, func(r []driver.Value) error {
		if id := rawInt(r[0]); id != curID {
			flush()
			curID = id
			cur = policy.Room{Name: rawStr(r[1]), Description: rawStr(r[2]), PIN: rawStr(r[3]), GuestPIN: rawStr(r[4]),
				AllowGuests: rawInt(r[5]) != 0, MaxCallrateIn: int(rawInt(r[6])), MaxCallrateOut: int(rawInt(r[7])),
				ParticipantLimit: int(rawInt(r[8])), ServiceTag: rawStr(r[9]), OwnerEmail: rawStr(r[10]),
				Aliases: cur.Aliases[:0], Enabled: true}
		}
		if r[11] != nil {
			cur.Aliases = append(cur.Aliases, rawStr(r[11]))
		}
		return nil
	})
	if err != nil {
		return err
	}
	flush()
	return nil
}
