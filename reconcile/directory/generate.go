package directory

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
)

var (
	genGiven = []string{"Anna", "Ben", "Chloé", "David", "Emma", "François", "Grace", "Håkon",
		"Ines", "Jürgen", "Kim", "Łukasz", "Maria", "Noah", "Olivia", "Paul", "Quinn", "Renée",
		"Sofia", "Tomás", "Uma", "Victor", "Wei", "Xavier", "Yuki", "Zoë"}
	genSur = []string{"Andersen", "Brown", "Çelik", "Dubois", "Evans", "Fischer", "García",
		"Hansen", "Ivanova", "Jensen", "Kowalski", "López", "Müller", "Nguyen", "O'Brien",
		"Petrović", "Quist", "Rossi", "Schröder", "Tanaka", "Ünal", "Virtanen", "Wójcik",
		"Xu", "Yılmaz", "Zhang"}
	genDept = []string{"Engineering", "Sales", "Support", "Finance", "Legal", "Research"}
)

// GeneratePeople writes a deterministic LDIF of n inetOrgPerson entries under
// ou=people,<baseDN> (only the people: the base and ou=people entries are not written, so the
// file can be slapadd-ed into a directory that has them, such as ldaptest's). Entry i (0-based) has
// uid u<i>, a given name and surname (some non-ASCII, written base64 as RFC 2849 requires),
// cn, mail, telephoneNumber, departmentNumber, employeeType ("disabled" for every 50th entry,
// i%50 == 49, else "staff") and an entryUUID derived from i. The same n gives the same bytes.
func GeneratePeople(w io.Writer, n int, baseDN string) error {
	return generateLDIF(w, n, "generate people", func(b *bytes.Buffer, i int) {
		given := genGiven[i%len(genGiven)]
		sur := genSur[(i/len(genGiven))%len(genSur)]
		uid := fmt.Sprintf("u%d", i)
		writeLDIFValue(b, "dn", "uid="+uid+",ou=people,"+baseDN)
		b.WriteString("objectClass: inetOrgPerson\n")
		writeLDIFValue(b, "uid", uid)
		writeLDIFValue(b, "cn", given+" "+sur+" "+uid)
		writeLDIFValue(b, "givenName", given)
		writeLDIFValue(b, "sn", sur)
		fmt.Fprintf(b, "mail: %s@example.com\n", uid)
		fmt.Fprintf(b, "telephoneNumber: +1 555 %07d\n", i)
		fmt.Fprintf(b, "departmentNumber: %s\n", genDept[i%len(genDept)])
		writeTypeAndUUID(b, i)
	})
}

// writeTypeAndUUID ends entry i: employeeType ("disabled" for i%50 == 49, else "staff"),
// its entryUUID and the blank line.
func writeTypeAndUUID(b *bytes.Buffer, i int) {
	typ := "staff"
	if i%50 == 49 {
		typ = "disabled"
	}
	fmt.Fprintf(b, "employeeType: %s\n", typ)
	fmt.Fprintf(b, "entryUUID: %s\n\n", genUUID(i))
}

// generateLDIF writes entries 0..n-1, each made by entry into a reused buffer, to w;
// op names the operation in errors.
func generateLDIF(w io.Writer, n int, op string, entry func(b *bytes.Buffer, i int)) error {
	bw := bufio.NewWriterSize(w, 1<<16)
	var b bytes.Buffer
	for i := 0; i < n; i++ {
		b.Reset()
		entry(&b, i)
		if _, err := bw.Write(b.Bytes()); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

// genUUID is a deterministic version-4-shaped UUID for entry i.
func genUUID(i int) string {
	h := sha256.Sum256([]byte(fmt.Sprintf("roster-person-%d", i)))
	h[6] = h[6]&0x0f | 0x40
	h[8] = h[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

// A realistic estate's names: display form and the ASCII form its mail address uses.
var (
	realGiven = [][2]string{{"Anna", "anna"}, {"Benoît", "benoit"}, {"Chloé", "chloe"}, {"David", "david"},
		{"Émilie", "emilie"}, {"François", "francois"}, {"Grace", "grace"}, {"Håkon", "hakon"},
		{"Inès", "ines"}, {"Jürgen", "juergen"}, {"Kim", "kim"}, {"Łukasz", "lukasz"},
		{"María José", "mariajose"}, {"Noah", "noah"}, {"Olivia", "olivia"}, {"Paul", "paul"},
		{"Quentin", "quentin"}, {"Renée", "renee"}, {"Søren", "soren"}, {"Tomás", "tomas"},
		{"Uma", "uma"}, {"Victor", "victor"}, {"Wei", "wei"}, {"Xavier", "xavier"},
		{"Yuki", "yuki"}, {"Zoë", "zoe"}, {"Ahmed", "ahmed"}, {"Björn", "bjorn"},
		{"Camille", "camille"}, {"Dagný", "dagny"}, {"Elif", "elif"}, {"Fatima", "fatima"},
		{"Gérard", "gerard"}, {"Hannah", "hannah"}, {"Ivan", "ivan"}, {"Joana", "joana"}, {"Karl-Heinz", "karlheinz"}}
	realSur = [][2]string{{"Andersen", "andersen"}, {"Brown", "brown"}, {"Çelik", "celik"}, {"Dubois", "dubois"},
		{"Evans", "evans"}, {"Fischer", "fischer"}, {"García Márquez", "garciamarquez"}, {"Hansen", "hansen"},
		{"Ivanova", "ivanova"}, {"Jensen", "jensen"}, {"Kowalski", "kowalski"}, {"López", "lopez"},
		{"Müller", "mueller"}, {"Nguyễn", "nguyen"}, {"O'Brien", "obrien"}, {"Petrović", "petrovic"},
		{"Quist", "quist"}, {"Rossi", "rossi"}, {"Schröder", "schroeder"}, {"Tanaka", "tanaka"},
		{"Ünal", "unal"}, {"Virtanen", "virtanen"}, {"Wójcik", "wojcik"}, {"Xu", "xu"},
		{"Yılmaz", "yilmaz"}, {"Zhang", "zhang"}, {"de la Fuente", "delafuente"}, {"van der Berg", "vanderberg"},
		{"Ødegård", "odegard"}, {"Smith-Jones", "smithjones"}, {"Novák", "novak"}, {"Åberg", "aberg"},
		{"Kovács", "kovacs"}, {"Papadopoulos", "papadopoulos"}, {"Sánchez", "sanchez"}, {"MacDonald", "macdonald"},
		{"Fernández", "fernandez"}, {"Lindqvist", "lindqvist"}, {"Dąbrowski", "dabrowski"}, {"Horvát", "horvat"},
		{"Ó Súilleabháin", "osuilleabhain"}}
	realTitle = []string{"Software Engineer", "Senior Software Engineer", "Account Executive",
		"Support Specialist", "Financial Analyst", "Legal Counsel", "Research Scientist", "Head of Operations",
		"HR Business Partner", "Chief Technology Officer and Vice President of Global Engineering Platforms",
		"Chargée d'affaires", "Projektleiterin"}
	// realDept are departmentNumber values; the bench's tracking-codes.yaml has their
	// upper-case forms as DIVISION codes.
	realDept = []string{"eng", "sales", "support", "fin", "legal", "res", "ops", "hr"}
)

// realPhone writes subscriber number s (0 ≤ s < 10^8) in one of several national and
// international formats, chosen by i. The last 8 digits of the cleaned number are always
// s, so telephoneNumber|pex_clean_phone_number|pex_tail(8) is unique per person.
func realPhone(i, s int) string {
	d := fmt.Sprintf("%08d", s)
	switch i % 9 {
	case 0:
		return "+44 20 " + d[:4] + " " + d[4:] // UK, London
	case 1:
		return "+49 (0)30 " + d[:4] + "-" + d[4:] // Germany, with trunk prefix
	case 2:
		return "+33 1 " + d[:2] + " " + d[2:4] + " " + d[4:6] + " " + d[6:] // France
	case 3:
		return "+1 (2" + d[:2] + ") " + d[2:5] + "-" + d[5:] // North America
	case 4:
		return "+47 " + d[:3] + " " + d[3:5] + " " + d[5:] // Norway
	case 5:
		return "+81-3-" + d[:4] + "-" + d[4:] // Japan
	case 6:
		return "020 " + d[:4] + " " + d[4:] // UK national, no country code
	case 7:
		return "+46 (8) " + d[:3] + " " + d[3:5] + " " + d[5:] // Sweden
	default:
		return "+61 (0)2 " + d[:4] + "." + d[4:] // Australia, trunk prefix and a dot
	}
}

// GenerateRealisticPeople writes a deterministic LDIF of n inetOrgPerson entries under
// ou=people,<baseDN> shaped like a real estate (the benchmarks' realistic profile; base and
// ou=people entries are not written, as with GeneratePeople). Entry i (0-based) has uid
// u<i>; givenName, sn and cn from lists with many accented and multi-word names; mail
// <given>.<sn>.<i>@example.com in ASCII, except that every 50th entry (i%50 == 17, 2 %)
// has no mail; telephoneNumber in one of nine national formats whose cleaned last 8 digits
// are i; title (none for i%10 == 3); departmentNumber from a short list (none for
// i%40 == 5); employeeType "disabled" for i%50 == 49, else "staff"; and an entryUUID
// derived from i. The same n gives the same bytes.
func GenerateRealisticPeople(w io.Writer, n int, baseDN string) error {
	return generateLDIF(w, n, "generate realistic people", func(b *bytes.Buffer, i int) {
		given := realGiven[i%len(realGiven)]
		sur := realSur[(i/len(realGiven))%len(realSur)]
		uid := fmt.Sprintf("u%d", i)
		writeLDIFValue(b, "dn", "uid="+uid+",ou=people,"+baseDN)
		b.WriteString("objectClass: inetOrgPerson\n")
		writeLDIFValue(b, "uid", uid)
		writeLDIFValue(b, "cn", given[0]+" "+sur[0])
		writeLDIFValue(b, "givenName", given[0])
		writeLDIFValue(b, "sn", sur[0])
		if i%50 != 17 {
			fmt.Fprintf(b, "mail: %s.%s.%d@example.com\n", given[1], sur[1], i)
		}
		writeLDIFValue(b, "telephoneNumber", realPhone(i, i))
		if i%10 != 3 {
			writeLDIFValue(b, "title", realTitle[(i/7)%len(realTitle)])
		}
		if i%40 != 5 {
			fmt.Fprintf(b, "departmentNumber: %s\n", realDept[(i/3)%len(realDept)])
		}
		writeTypeAndUUID(b, i)
	})
}
