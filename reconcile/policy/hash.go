package policy

import "github.com/roster-dev/roster/reconcile/internal/stablehash"

// hashAlias hashes a folded alias under seed. It is deterministic for a given seed: the
// answering process probes tables that the daemon placed, reading the seed from the
// snapshot file.
func hashAlias(seed uint64, s string) uint64 { return stablehash.String(seed, s) }
