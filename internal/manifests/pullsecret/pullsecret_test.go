package pullsecret

import (
	"strconv"
	"strings"
	"testing"
)

func TestCheckNames(t *testing.T) {
	field := func(i int) string { return "pull[" + strconv.Itoa(i) + "]" }
	if err := CheckNames([]string{"regcred", "mirror.creds", "a-b"}, field); err != nil {
		t.Errorf("good names: %v", err)
	}
	if err := CheckNames(nil, field); err != nil {
		t.Errorf("no names: %v", err)
	}
	// Every problem at once, each naming its entry.
	err := CheckNames([]string{"regcred", "Reg_Cred", "", "regcred", strings.Repeat("a", 254)}, field)
	for _, want := range []string{
		`pull[1] "Reg_Cred": not a Secret name: a lowercase RFC 1123 subdomain`,
		`pull[2] "": not a Secret name`,
		"pull[3]: regcred is given twice",
		`pull[4] "aaaa`, "no more than 253 characters",
		"kubectl create secret docker-registry",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not say %q", err, want)
		}
	}
}
