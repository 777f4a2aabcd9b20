package pexip

import (
	"fmt"
	"strconv"
	"strings"
)

// Resource is one collection of the management API.
type Resource string

// The resources roster owns objects of.
const (
	Conferences       Resource = "conference"
	ConferenceAliases Resource = "conference_alias"
	Devices           Resource = "device"
	EndUsers          Resource = "end_user"
)

// BasePath is where the configuration API lives on the management node.
const BasePath = "/api/admin/configuration/v1/"

// URI is the resource URI of object id, as the API writes it (and as an alias's
// conference field must name its conference).
func (r Resource) URI(id int) string {
	return BasePath + string(r) + "/" + strconv.Itoa(id) + "/"
}

// IDFromURI reads the id out of a resource URI or a Location (absolute or not):
// the last path segment.
func IDFromURI(uri string) (int, error) {
	if i := strings.Index(uri, "://"); i >= 0 { // drop scheme and host
		rest := uri[i+3:]
		if j := strings.IndexByte(rest, '/'); j >= 0 {
			uri = rest[j:]
		} else {
			uri = ""
		}
	}
	if i := strings.IndexAny(uri, "?#"); i >= 0 {
		uri = uri[:i]
	}
	uri = strings.TrimSuffix(uri, "/")
	seg := uri[strings.LastIndexByte(uri, '/')+1:]
	id, err := strconv.Atoi(seg)
	if err != nil || id <= 0 || !strings.HasPrefix(uri, BasePath) {
		return 0, fmt.Errorf("pexip: %q is not an object URI", uri)
	}
	return id, nil
}

// Conference is a Virtual Meeting Room. Null call rates and participant limit mean
// "no limit".
type Conference struct {
	ID                       int               `json:"id,omitempty"`
	ResourceURI              string            `json:"resource_uri,omitempty"`
	Name                     string            `json:"name"`
	ServiceType              string            `json:"service_type,omitempty"`
	Description              string            `json:"description"`
	PIN                      string            `json:"pin"`
	GuestPIN                 string            `json:"guest_pin"`
	AllowGuests              bool              `json:"allow_guests"`
	MaxCallrateIn            *int              `json:"max_callrate_in"`
	MaxCallrateOut           *int              `json:"max_callrate_out"`
	ParticipantLimit         *int              `json:"participant_limit"`
	Tag                      string            `json:"tag"`
	PrimaryOwnerEmailAddress string            `json:"primary_owner_email_address"`
	Aliases                  []ConferenceAlias `json:"aliases,omitempty"`
}

// ConferenceAlias is one alias of a conference; Conference is the conference's URI.
type ConferenceAlias struct {
	ID          int    `json:"id,omitempty"`
	ResourceURI string `json:"resource_uri,omitempty"`
	Alias       string `json:"alias"`
	Description string `json:"description"`
	Conference  string `json:"conference,omitempty"`
}

// Device is a device alias registrations log in with. Password is write-only: sent on
// create or patch, never returned.
type Device struct {
	ID                          int    `json:"id,omitempty"`
	ResourceURI                 string `json:"resource_uri,omitempty"`
	Alias                       string `json:"alias"`
	Description                 string `json:"description"`
	Username                    string `json:"username"`
	Password                    string `json:"password,omitempty"`
	Tag                         string `json:"tag"`
	PrimaryOwnerEmailAddress    string `json:"primary_owner_email_address"`
	EnableSIP                   bool   `json:"enable_sip"`
	EnableH323                  bool   `json:"enable_h323"`
	EnableInfinityConnectNonSSO bool   `json:"enable_infinity_connect_non_sso"`
	EnableInfinityConnectSSO    bool   `json:"enable_infinity_connect_sso"`
}

// EndUser is a person; primary_email_address is unique.
type EndUser struct {
	ID                  int    `json:"id,omitempty"`
	ResourceURI         string `json:"resource_uri,omitempty"`
	PrimaryEmailAddress string `json:"primary_email_address"`
	FirstName           string `json:"first_name"`
	LastName            string `json:"last_name"`
	DisplayName         string `json:"display_name"`
	TelephoneNumber     string `json:"telephone_number"`
	MobileNumber        string `json:"mobile_number"`
	Title               string `json:"title"`
	Department          string `json:"department"`
}

// Meta is a list page's envelope.
type Meta struct {
	Limit      int     `json:"limit"`
	Offset     int     `json:"offset"`
	TotalCount int     `json:"total_count"`
	Next       *string `json:"next"`
	Previous   *string `json:"previous"`
}
