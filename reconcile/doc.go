// Package reconcile turns desired state (the repo and the directory) and actual state
// (SQLite) into a Plan — a value — and applies a plan in one transaction. It holds the
// stages; reconcile/pipeline runs them in order for every command and every daemon cycle.
//
// # Layers
//
//	cmd/roster ─► reconcile/daemon ─► reconcile/pipeline ─► reconcile (stages), reconcile/directory,
//	reconcile/source, reconcile/platform/... ─► state, notify ─► schema/account, schema
//
// state and notify import nothing of reconcile; state is the only package that speaks SQL.
// The account types (VMR, Device, User, TrackingGroup, Invite) and the named Kind and
// Action live in schema/account, with one field list per kind (account.VMRFields,
// account.DeviceFields) that drives render, digests, diff, overrides, email variables and
// the plan's printout.
//
// # Files, in pipeline order
//
//   - engine.go: the plan of one commit: read the state's index, open the directories,
//     render, load what the diff must see (hydrate), diff
//   - sync.go: incremental directory reads (SPEC §7): only changed entries rendered, the
//     others' objects marked unchanged, the cookie stored with the apply; after the
//     engine's own apply the cached state index is refreshed in place
//     (state.RefreshIndex), not reloaded; syncentries.go: each search's entries and the
//     objects they own, kept across cycles and updated from the engine's own applies;
//     refresh_tables.go: the index's lookup tables moved to the refreshed index
//   - render.go: directory entries × sync templates → desired objects (Desired), in batches;
//     render_entry.go: one entry, the declared objects, the value limits; mail.go: the
//     email templates; usermerge.go: directory and CSV users into one account per email
//   - pack.go, desired.go: desired objects packed in pointer-free chunks
//   - digest.go, index.go: objects whose digest equals the stored one are marked unchanged
//   - rendercache.go, rendercache_record.go: the render cache beside the state database:
//     a full read skips the entries settled at the state version (their objects marked
//     unchanged unrendered); latedigest.go: the digests a command's index left out, read
//     for the entries rendered anyway
//   - hydrate.go: which stored objects the diff must see in full, loaded by id
//   - diff.go: Diff(desired, actual) → *Plan, pure set arithmetic, no I/O; owned.go: VMRs and
//     devices (one generic ownedKind: match, update, delete, email); claims.go: names and
//     aliases held by others; users.go: users, invitations, licences; tracking.go;
//     reminders.go; emails.go: email variables; counts.go: per-template counts
//   - plan.go, created.go: the Plan value; creations held as positions in the packed lists
//   - safety.go: the removal-delta and email guards a plan must pass before apply
//   - output.go, fields.go: the plan as text, JSON and markdown
//   - apply.go: Apply writes a plan in one transaction: objects, audit, outbox, sync status,
//     state version
//   - manual.go: the operator's one-off plans: reminders, Notify Now, accepting invitations
//
// Subpackages: directory (LDAP with its bulk search reader and incremental reads: sync.go
// syncrepl, dirsync.go AD DirSync, usn.go AD uSNChanged; and LDIF; ldaptest / sambatest
// start a real slapd / Samba AD DC for tests), source (Git and folders), pipeline (the orchestrator), daemon (serve: loop, webhook, pages, metrics),
// loop (the daemon's trigger loop and lock), platform/pexip and platform/push (delivery to
// Pexip Infinity), policy (Pexip's external policy answers, served by a separate answering
// process the daemon supervises and hands each snapshot to as a mapped file).
//
// # One entry's journey, from the directory to an SMTP message (12 files)
//
//  1. reconcile/pipeline/pipeline.go — Pipeline.Run: LoadSource, then Plan, Guard, Apply,
//     Deliver
//  2. schema/load.go — Load: the sync template that names the directory (`source:`)
//  3. reconcile/engine.go — Engine.Plan → plan: opens the directory, loads the index,
//     Render, hydrate, Diff
//  4. reconcile/directory/ldap.go — ldapDirectory.Search → paged (the bulk reader) hands
//     the entry over (ldifdir.go for an LDIF file)
//  5. reconcile/render.go — Render → renderTemplate; render_entry.go — renderEntry makes
//     the person's VMR, device and user
//  6. reconcile/owned.go — ownedKind.planUpdate (or a creation), ownedKind.addEmail: a
//     Change and an Email for the owner
//  7. reconcile/safety.go — Plan.Check (called by Pipeline.Guard)
//  8. reconcile/apply.go — Apply → applyChanges, enqueue (a first apply of 5,000+
//     creations in state/bulk.go's InBulkTx: rollback-journal mode, pages written once)
//  9. state/outbox.go — Enqueue in the same transaction (an email of a VMR, device or
//     user the apply wrote references its row: state/outboxref.go); later ClaimDue
//  10. notify/deliver.go — Deliverer.DeliverAll → DeliverDue
//  11. notify/compose.go — Composer.Compose: the MIME message (go-message)
//  12. notify/smtp.go — pool.work → sendMessage hands it to the SMTP server
package reconcile
