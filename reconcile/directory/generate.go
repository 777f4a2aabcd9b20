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
	bw := bufio.NewWriterSize(w, 1<<16)
	var b bytes.Buffer
	for i := 0; i < n; i++ {
		b.Reset()
		given := genGiven[i%len(genGiven)]
		sur := genSur[(i/len(genGiven))%len(genSur)]
		uid := fmt.Sprintf("u%d", i)
		typ := "staff"
		if i%50 == 49 {
			typ = "disabled"
		}
		writeLDIFValue(&b, "dn", "uid="+uid+",ou=people,"+baseDN)
		b.WriteString("objectClass: inetOrgPerson\n")
		writeLDIFValue(&b, "uid", uid)
		writeLDIFValue(&b, "cn", given+" "+sur+" "+uid)
		writeLDIFValue(&b, "givenName", given)
		writeLDIFValue(&b, "sn", sur)
		fmt.Fprintf(&b, "mail: %s@example.com\n", uid)
		fmt.Fprintf(&b, "telephoneNumber: +1 555 %07d\n", i)
		fmt.Fprintf(&b, "departmentNumber: %s\n", genDept[i%len(genDept)])
		fmt.Fprintf(&b, "employeeType: %s\n", typ)
		fmt.Fprintf(&b, "entryUUID: %s\n\n", genUUID(i))
		if _, err := bw.Write(b.Bytes()); err != nil {
			return fmt.Errorf("generate people: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("generate people: %w", err)
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
