package push

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/roster-dev/roster/reconcile/platform/pexip"
	"github.com/roster-dev/roster/reconcile/platform/pexip/pexipfake"
	"github.com/roster-dev/roster/state"
)

// The test binary doubles as a deliverer process that TestKilledDelivererResumes starts
// and kills with SIGKILL: ROSTER_PUSH_CHILD names its state database, ROSTER_PUSH_URL the
// fake (which lives in the parent, so its state outlives the children).
func TestMain(m *testing.M) {
	if db := os.Getenv("ROSTER_PUSH_CHILD"); db != "" {
		if err := runChild(db, os.Getenv("ROSTER_PUSH_URL")); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runChild is serve's deliverer at start-up: release the claims a killed process left,
// then drain.
func runChild(dbPath, url string) error {
	ctx := context.Background()
	db, err := state.Open(ctx, dbPath)
	if err != nil {
		return err
	}
	defer db.Close()
	c, err := pexip.New(pexip.Config{URL: url, Username: "roster", Password: "pw", Backoff: 5 * time.Millisecond})
	if err != nil {
		return err
	}
	d := &Deliverer{DB: db, Client: c, Platform: "pexip", Marker: pexip.Marker{Instance: "test1"}, Workers: 4, Batch: 20,
		Backoff: 10 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if _, err := db.ReleasePlatformClaims(ctx, time.Now()); err != nil {
		return err
	}
	p, err := d.Drain(ctx)
	if err == nil && p.Failed+p.Conflicts > 0 {
		err = fmt.Errorf("drain: %+v", p)
	}
	return err
}

// A deliverer killed (SIGKILL) in the middle of a push, again and again: after the last
// restart every object exists exactly once, as made, and every operation is done.
func TestKilledDelivererResumes(t *testing.T) {
	const people, trials = 60, 5
	resent := 0 // creates sent again after a kill, which met their own object
	defer func() {
		if resent == 0 && !t.Failed() {
			t.Error("no kill fell between a create and its record: the adoption path went untested")
		}
	}()
	for trial := range trials {
		t.Run(fmt.Sprint(trial), func(t *testing.T) {
			fake := pexipfake.New("roster", "pw")
			defer fake.Close()
			fake.Latency(time.Millisecond)
			dbPath := filepath.Join(t.TempDir(), "roster.db")
			db, err := state.Open(context.Background(), dbPath)
			if err != nil {
				t.Fatal(err)
			}
			r := &rig{db: db, fake: fake}
			r.enqueue(t, estate(people))
			child := func() *exec.Cmd {
				cmd := exec.Command(os.Args[0], "-test.run=^$")
				cmd.Env = append(os.Environ(), "ROSTER_PUSH_CHILD="+dbPath, "ROSTER_PUSH_URL="+fake.URL)
				cmd.Stderr = os.Stderr
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				return cmd
			}
			// Kill after a different number of created objects in each round and trial.
			for round, at := range []int{10 + 7*trial, 60 + 11*trial, 120 + 5*trial} {
				cmd := child()
				deadline := time.Now().Add(20 * time.Second)
				for created(fake) < at && time.Now().Before(deadline) {
					time.Sleep(time.Millisecond)
				}
				if err := cmd.Process.Kill(); err != nil {
					t.Fatal(err)
				}
				cmd.Wait()
				t.Logf("round %d: killed after %d objects, %d creates sent", round, created(fake), fake.Stats().ByMethod["POST"])
			}
			if err := child().Wait(); err != nil {
				t.Fatalf("the last deliverer: %v", err)
			}
			checkEstate(t, r, people)
			resent += fake.Stats().ByMethod["POST"] - 3*people
			counts, err := db.PlatformCounts(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if c := counts["pexip"]; c[state.PlatformDone] != 3*people {
				t.Errorf("counts = %v", c)
			}
			db.Close()
		})
	}
}

func created(f *pexipfake.Server) int {
	return f.Count(pexip.Conferences) + f.Count(pexip.Devices) + f.Count(pexip.EndUsers)
}
