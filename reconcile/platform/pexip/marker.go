package pexip

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"unicode/utf8"
)

// MaxText is the longest name or description Pexip stores (PEXIP.md: ≤ 250).
const MaxText = 250

// Marker is roster's ownership mark on the objects it makes (see the package doc): a
// suffix " [roster:<Instance>]" of the description. Instance names one roster
// installation, so that a second roster's objects are recognised as not ours.
type Marker struct {
	Instance string
}

const markerPrefix = " [roster:"

// NewMarker derives the instance from roster's secret key (SPEC §5.5): stable for an
// installation, the same on its replicas (which share the key, so a failover keeps
// ownership), different for another installation. The key itself cannot be recovered
// from the eight hex digits an HMAC gives.
func NewMarker(secretKey []byte) Marker {
	m := hmac.New(sha256.New, secretKey)
	m.Write([]byte("roster platform ownership marker"))
	return Marker{Instance: hex.EncodeToString(m.Sum(nil)[:4])}
}

// Suffix is what Mark appends.
func (m Marker) Suffix() string { return markerPrefix + m.Instance + "]" }

// Mark returns description with the marker, cut (at a rune boundary) so that the whole
// stays within MaxText characters.
func (m Marker) Mark(description string) string {
	suffix := m.Suffix()
	room := MaxText - utf8.RuneCountInString(suffix)
	if utf8.RuneCountInString(description) > room {
		description = string([]rune(description)[:max(room, 0)])
	}
	return description + suffix
}

// Owner returns the instance named by description's marker; ok is false without one.
func Owner(description string) (instance string, ok bool) {
	i := strings.LastIndex(description, markerPrefix)
	if i < 0 || !strings.HasSuffix(description, "]") {
		return "", false
	}
	inst := description[i+len(markerPrefix) : len(description)-1]
	if inst == "" || strings.ContainsAny(inst, "[] ") {
		return "", false
	}
	return inst, true
}

// Ours reports whether description carries this marker.
func (m Marker) Ours(description string) bool {
	inst, ok := Owner(description)
	return ok && inst == m.Instance
}

// Strip returns description without its marker (of any instance): the text roster
// manages, for comparing with the desired description.
func Strip(description string) string {
	if _, ok := Owner(description); !ok {
		return description
	}
	return description[:strings.LastIndex(description, markerPrefix)]
}
