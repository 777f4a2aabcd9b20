package reconcile

// Claims: the unique values objects hold (VMR names, aliases, device aliases), who gets
// a contested one, and the warnings for those who do not.

import (
	"fmt"
	"slices"
	"strings"

	"github.com/roster-dev/roster/schema/account"
)

// claim is a unique value an object holds: a VMR name, an alias, a device alias.
type claim struct{ space, value string }

// claimant is one desired object's claims, and the claims its current version holds.
// Its template is owner.tag.
type claimant struct {
	owner   owner
	key     string // for messages
	claims  []claim
	current []claim // held by the matched actual object, kept if this one is skipped
}

// holder is who holds a claim at the end of the plan.
type holder struct {
	owner   owner
	tag     string
	key     string
	desired bool
}

// claimIndex maps claims to ints: one map per space, keyed by the value alone, so a
// first apply's 1.2 million claims take 16-byte keys instead of 32-byte ones.
type claimIndex map[string]map[string]int

func (x claimIndex) get(c claim) (int, bool) {
	v, ok := x[c.space][c.value]
	return v, ok
}

func (x claimIndex) put(c claim, v int) { x[c.space][c.value] = v }

// newClaimIndex sizes one map per space for the claims of cs (desired and current).
func newClaimIndex(cs []claimant) claimIndex {
	n := map[string]int{}
	for i := range cs {
		for _, c := range cs[i].claims {
			n[c.space]++
		}
		for _, c := range cs[i].current {
			n[c.space]++
		}
	}
	x := make(claimIndex, len(n))
	for space, k := range n {
		x[space] = make(map[string]int, k)
	}
	return x
}

// resolveClaims decides which desired objects must be skipped because a claim of theirs
// is held by an object they do not own (conflict, alias_clash) or by another desired
// object earlier in order (duplicate). held answers for actual objects that stay as they
// are (unchanged, or left alone this cycle). Skipping is monotone: a skipped object keeps
// its current claims, which can make others skip in turn, so the loop runs to a fixed point.
func resolveClaims(cs []claimant, held func(claim) (holder, bool)) (skip []bool, warns []Warning) {
	skip = make([]bool, len(cs))
	if len(cs) == 0 {
		return skip, nil
	}
	reason := map[int]Warning{} // of the skipped ones: few
	// taken maps a claim to the claimant holding it: i+1 for a desired claim of cs[i],
	// -(i+1) for the current claim of a skipped cs[i]. Small values keep a first apply's
	// map of 1.2 million claims cheap.
	holderOf := func(v int) holder {
		if v > 0 {
			c := cs[v-1]
			return holder{owner: c.owner, tag: c.owner.tag, key: c.key, desired: true}
		}
		c := cs[-v-1]
		return holder{owner: c.owner, tag: c.owner.tag, key: c.key}
	}
	// Contested claims go by owner order, not by the order the directory returned the
	// entries in: a full read and an incremental one (which renders only changed entries)
	// then resolve a clash alike, whatever order the server pages in.
	order := make([]int, len(cs))
	for i := range order {
		order[i] = i
	}
	// The position breaks ties, as a stable sort would: pdqsort over a total order is
	// several times faster than SortStableFunc's insertion and merge passes (a first
	// apply sorts 400,000 VMRs and as many devices).
	slices.SortFunc(order, func(a, b int) int {
		if c := strings.Compare(cs[a].owner.tag, cs[b].owner.tag); c != 0 {
			return c
		}
		if c := strings.Compare(cs[a].owner.key, cs[b].owner.key); c != 0 {
			return c
		}
		return a - b
	})
	for changed := true; changed; {
		changed = false
		taken := newClaimIndex(cs)
		for i := range cs {
			if skip[i] {
				for _, c := range cs[i].current {
					taken.put(c, -(i + 1))
				}
			}
		}
		for _, i := range order {
			if skip[i] {
				continue
			}
			var blocked *claim
			var by holder
			for j, c := range cs[i].claims {
				var h holder
				v, ok := taken.get(c)
				if ok {
					h = holderOf(v)
				} else {
					h, ok = held(c)
				}
				if ok && h.owner != cs[i].owner {
					blocked, by = &cs[i].claims[j], h
					break
				}
			}
			if blocked == nil {
				for _, c := range cs[i].claims {
					taken.put(c, i+1)
				}
				continue
			}
			skip[i], changed = true, true
			reason[i] = claimWarning(cs[i], *blocked, by)
		}
	}
	for i := range cs {
		if skip[i] {
			warns = append(warns, reason[i])
		}
	}
	return skip, warns
}

func claimWarning(c claimant, cl claim, by holder) Warning {
	w := Warning{Key: c.key, Template: c.owner.tag}
	owner := by.tag
	if owner == account.ManualTag {
		owner = "declared in the repo"
	} else {
		owner = "owned by template " + owner
	}
	switch {
	case by.desired && cl.space != "vmr-name":
		w.Code = "duplicate_alias"
		w.Message = fmt.Sprintf("%s %q is also rendered for %q (%s); skipped", cl.space, cl.value, by.key, owner)
	case by.desired:
		w.Code = "conflict"
		w.Message = fmt.Sprintf("VMR name %q is also rendered for %q (%s); skipped", cl.value, by.key, owner)
	case cl.space == "vmr-name" || cl.space == "device":
		w.Code = "conflict"
		w.Message = fmt.Sprintf("%s %q exists and is %s; roster never overwrites it; skipped", spaceName(cl.space), cl.value, owner)
	default:
		w.Code = "alias_clash"
		w.Message = fmt.Sprintf("alias %q is held by %q (%s); skipped", cl.value, by.key, owner)
	}
	return w
}

func spaceName(space string) string {
	switch space {
	case "vmr-name":
		return "VMR"
	case "device":
		return "device alias"
	}
	return space
}

func vmrClaims(v *account.VMR) []claim {
	out := make([]claim, 0, 1+len(v.Aliases))
	out = append(out, claim{"vmr-name", v.Name})
	for _, a := range v.Aliases {
		out = append(out, claim{"alias", a})
	}
	return out
}

func deviceClaims(v *account.Device) []claim {
	return []claim{{"device", v.Alias}}
}
