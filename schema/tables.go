package schema

import "strings"

// Languages are the WebEx Meetings Server LANGUAGE values (seed 001), canonical lower case.
var Languages = []string{"en-us", "zh-cn", "zh-tw", "jp", "ko", "fr", "de", "it", "es-me", "es", "nl", "pt-br", "ru"}

// TimeZones are the WebEx Meetings Server TIMEZONE values (seed 001), matched exactly.
var TimeZones = []string{
	"Marshall Islands", "Samoa", "Honolulu", "Anchorage", "San Francisco", "Tijuana", "Arizona",
	"Denver", "Chihuahua", "Chicago", "Mexico City", "Saskatchewan", "Tegucigalpa", "Bogota",
	"New York", "Indiana", "Caracas", "Halifax", "Newfoundland", "Brasilia", "Buenos Aires",
	"Recife", "Nuuk", "Mid-Atlantic", "Azores", "Reykjavik", "London", "Casablanca",
	"West Africa", "Amsterdam", "Berlin", "Madrid", "Paris", "Rome", "Stockholm", "Athens",
	"Cairo", "Pretoria", "Helsinki", "Tel Aviv", "Amman", "Istanbul", "Riyadh", "Nairobi",
	"Tehran", "Moscow", "Abu Dhabi", "Baku", "Kabul", "Islamabad", "Mumbai", "Colombo",
	"Ekaterinburg", "Almaty", "Kathmandu", "Bangkok", "Beijing", "Perth", "Singapore", "Taipei",
	"Kuala Lumpur", "Tokyo", "Seoul", "Adelaide", "Darwin", "Yakutsk", "Brisbane", "Sydney",
	"Guam", "Hobart", "Vladivostok", "Solomon Islands", "Wellington", "Fiji",
}

// ReservedFieldNames are the WebEx user fields a tracking code group may not be named after.
var ReservedFieldNames = []string{"USERID", "ACTIVE", "FIRSTNAME", "LASTNAME", "EMAIL", "LANGUAGE", "HOSTPRIVILEGE", "TIMEZONE"}

var (
	timeZoneSet = map[string]bool{}
	languageSet = map[string]string{}
)

func init() {
	for _, z := range TimeZones {
		timeZoneSet[z] = true
	}
	for _, l := range Languages {
		languageSet[l] = l
	}
}

// languageOf returns the canonical form of a LANGUAGE value (case-insensitive).
func languageOf(s string) (string, bool) {
	if c, ok := languageSet[s]; ok {
		return c, true
	}
	c, ok := languageSet[strings.ToLower(s)]
	return c, ok
}

// IsTimeZone reports whether s is a WebEx TIMEZONE value.
func IsTimeZone(s string) bool { return timeZoneSet[s] }

// IsLanguage reports whether s is a WebEx LANGUAGE value (any case).
func IsLanguage(s string) bool { _, ok := languageOf(s); return ok }
