// Package push delivers the platform queue (state.PlatformOp rows written by an apply)
// to Pexip Infinity's management API through package pexip: claimed in dependency order
// (a conference before its aliases, aliases deleted before their conference), sent within
// the client's rate, retried on 429 (after its Retry-After), 5xx and network errors with
// backoff, and recorded done only after the platform answered, so a crash at any point
// resumes where it stopped.
//
// Idempotence rests on roster's marker (pexip.Marker, in the description): a create that
// meets "already exists" looks the object up and adopts it when the marker says this
// roster made it (a create whose answer was lost, sent again after a restart); otherwise
// the operation is a conflict, left for the operator and never overwritten. End users
// carry no marker (they have no free-text field): one is adopted only when an earlier try
// of the same operation may have made it (attempts > 1) and every field matches what it
// would have made; otherwise it is a conflict too. Patches and deletes go to the id
// roster recorded, or to an object found by its unique field that carries the marker.
//
// VMROps, DeviceOps and UserOps map one applied change of roster's objects to queue
// operations (pure functions over plain values), and Order sorts one apply's operations
// so that freed names and aliases are deleted before they are taken again.
//
// # Wiring
//
// In the apply's transaction, for every applied change of a VMR, device or user (old
// nil: created; new nil: deleted):
//
//	ops = append(ops, push.VMROps("pexip", old, new)...) // and DeviceOps, UserOps
//	push.Order(ops)
//	err = w.EnqueuePlatform(ops) // or state.EnqueuePlatform(ctx, tx, now, ops)
//
// In serve, one deliverer per platform, woken after each committed apply:
//
//	c, _ := pexip.New(pexip.Config{URL: cfg.URL, Username: cfg.Username,
//		Password: os.Getenv(cfg.PasswordEnv), CAFile: cfg.CAFile, Rate: cfg.Rate})
//	d := &push.Deliverer{DB: db, Client: c, Platform: "pexip", Marker: pexip.NewMarker(secretKey)}
//	go d.Run(ctx, wake, time.Minute)
//
// An email of a VMR, device or user waits while db.PlatformWaiting(kind, key) (kinds
// KindVMR, KindDevice, KindUser; keys the VMR's name, the device's alias, the user's
// email). Status and metrics read db.PlatformCounts and db.PlatformOpsByStatus
// (conflicts, failures); a replica (role "replica") runs no deliverer.
package push
