package push

import "github.com/roster-dev/roster/reconcile/platform/pexip"

// The objects as the platform holds them, in the terms of VMROps, DeviceOps and UserOps:
// VMROps(platform, &FromConference(got), want) is then exactly the repair of a drifted
// conference (none when it matches), for `roster platform check` and adoption.

// FromConference is a conference as a VMR: roster's marker left out of the description,
// "no limit" (null) as 0.
func FromConference(c pexip.Conference) VMR {
	v := VMR{Name: c.Name, Description: pexip.Strip(c.Description), PIN: c.PIN, GuestPIN: c.GuestPIN,
		AllowGuests: c.AllowGuests, MaxCallrateIn: deref(c.MaxCallrateIn), MaxCallrateOut: deref(c.MaxCallrateOut),
		ParticipantLimit: deref(c.ParticipantLimit), Tag: c.Tag, OwnerEmail: c.PrimaryOwnerEmailAddress}
	for _, a := range c.Aliases {
		v.Aliases = append(v.Aliases, a.Alias)
	}
	return v
}

// FromDevice is a device as roster's. Its password is not known (Pexip never returns
// it): password is what the caller believes it holds — roster's when the digest of the
// last push matches, so that no password is sent again.
func FromDevice(d pexip.Device, password string) Device {
	return Device{Alias: d.Alias, Description: pexip.Strip(d.Description), Username: d.Username, Password: password,
		Tag: d.Tag, OwnerEmail: d.PrimaryOwnerEmailAddress}
}

// FromEndUser is an end user as roster's user.
func FromEndUser(u pexip.EndUser) User {
	return User{Email: u.PrimaryEmailAddress, FirstName: u.FirstName, LastName: u.LastName, DisplayName: u.DisplayName}
}

func deref(n *int) int {
	if n == nil {
		return 0
	}
	return *n
}
