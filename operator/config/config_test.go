package config_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/roam-dev/roam/operator/config"
)

// generateArgs are the controller-gen arguments of config.go's
// //go:generate line, so the test runs what `go generate` runs.
func generateArgs(t *testing.T) (tool string, args []string) {
	t.Helper()
	f, err := os.Open("config.go")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "//go:generate go run "); ok {
			fields := strings.Fields(rest)
			return fields[0], fields[1:]
		}
	}
	t.Fatal("no //go:generate line in config.go")
	return "", nil
}

// TestGeneratedFilesAreFresh runs controller-gen, at the version pinned in
// config.go's //go:generate line, into a temporary directory and compares
// its output with the committed CRD, RBAC role and deepcopy code. A type or
// marker changed without `go generate ./operator/config` fails here.
func TestGeneratedFilesAreFresh(t *testing.T) {
	if testing.Short() {
		t.Skip("runs controller-gen (go run, about 30 s the first time)")
	}
	tool, args := generateArgs(t)
	tmp := t.TempDir()
	var run []string
	for _, a := range args {
		switch {
		case strings.HasPrefix(a, "output:crd:dir="):
			a = "output:crd:dir=" + filepath.Join(tmp, "crd")
		case strings.HasPrefix(a, "output:rbac:dir="):
			a = "output:rbac:dir=" + filepath.Join(tmp, "rbac")
		}
		run = append(run, a)
	}
	// deepcopy goes beside the types unless told otherwise.
	run = append(run, "output:object:dir="+filepath.Join(tmp, "object"))
	cmd := exec.Command("go", append([]string{"run", tool}, run...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("go run %s %s: %v\n%s", tool, strings.Join(run, " "), err, stderr.String())
	}
	for gen, committed := range map[string]string{
		"crd/roam.dev_roamapps.yaml":      "crd/roam.dev_roamapps.yaml",
		"rbac/role.yaml":                  "rbac/role.yaml",
		"object/zz_generated.deepcopy.go": "../api/v1alpha1/zz_generated.deepcopy.go",
	} {
		want, err := os.ReadFile(filepath.Join(tmp, gen))
		if err != nil {
			t.Errorf("controller-gen wrote no %s: %v", gen, err)
			continue
		}
		got, err := os.ReadFile(committed)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("operator/config/%s is stale: run go generate ./operator/config\n%s", committed, firstDiff(string(want), string(got)))
		}
	}
	// Nothing else generated that is not committed.
	filepath.WalkDir(filepath.Join(tmp, "crd"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if _, err := os.Stat(filepath.Join("crd", d.Name())); err != nil {
				t.Errorf("controller-gen generates crd/%s, which is not committed", d.Name())
			}
		}
		return nil
	})
}

func firstDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var a, b string
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			b = g[i]
		}
		if a != b {
			return "line " + strconv.Itoa(i+1) + ":\n  generated: " + a + "\n  committed: " + b
		}
	}
	return ""
}

// TestRBACIsLeastPrivilege: no wildcard anywhere, nothing that reads
// Secrets or writes RoamApps, and leases only through the namespaced Role.
func TestRBACIsLeastPrivilege(t *testing.T) {
	raw, err := os.ReadFile("rbac/role.yaml")
	if err != nil {
		t.Fatal(err)
	}
	docs, err := config.Documents(raw)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	for _, d := range docs {
		kinds[d["kind"].(string)] = true
		for _, r := range d["rules"].([]any) {
			rule := r.(map[string]any)
			for _, field := range []string{"apiGroups", "resources", "verbs"} {
				for _, v := range rule[field].([]any) {
					if strings.Contains(v.(string), "*") {
						t.Errorf("%s %v: wildcard %q in %s", d["kind"], rule["resources"], v, field)
					}
				}
			}
			for _, res := range rule["resources"].([]any) {
				verbs := strs(rule["verbs"])
				switch res {
				case "secrets", "configmaps", "pods":
					t.Errorf("%s grants %v on %s, which the operator never touches", d["kind"], verbs, res)
				case "roamapps":
					if strings.Join(verbs, ",") != "get,list,watch" {
						t.Errorf("roamapps: %v, want only get, list, watch", verbs)
					}
				case "leases":
					if d["kind"] != "Role" {
						t.Errorf("leases granted by a %s, want the namespaced Role", d["kind"])
					}
				}
			}
		}
	}
	if !kinds["ClusterRole"] || !kinds["Role"] {
		t.Errorf("role.yaml has %v, want a ClusterRole and a Role", kinds)
	}
}

func strs(v any) []string {
	var s []string
	for _, x := range v.([]any) {
		s = append(s, x.(string))
	}
	return s
}

func TestInstall(t *testing.T) {
	files, err := config.Install(config.Options{Namespace: "platform", Image: "reg.example/roam-operator:v1.2.3", EdgeHostImage: "reg.example/roam-edge:v1.2.3"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	objects := map[string]map[string]any{}
	for _, f := range files {
		names = append(names, f.Name)
		docs, err := config.Documents(f.Data)
		if err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		for _, d := range docs {
			md := d["metadata"].(map[string]any)
			objects[d["kind"].(string)+"/"+md["name"].(string)] = d
			if ns, ok := md["namespace"]; ok && ns != "platform" {
				t.Errorf("%s %s in namespace %v", d["kind"], md["name"], ns)
			}
			if strings.Contains(string(f.Data), "roam-system") {
				t.Errorf("%s still names roam-system", f.Name)
			}
		}
	}
	if strings.Join(names, " ") != "0-namespace.yaml 1-crd.yaml 2-rbac.yaml 3-operator.yaml" {
		t.Errorf("files %v", names)
	}
	for _, k := range []string{"Namespace/platform", "CustomResourceDefinition/roamapps.roam.dev", "ServiceAccount/roam-operator",
		"ClusterRole/roam-operator", "ClusterRoleBinding/roam-operator", "Role/roam-operator", "RoleBinding/roam-operator",
		"Deployment/roam-operator", "Service/roam-operator-metrics"} {
		if objects[k] == nil {
			t.Errorf("no %s", k)
		}
	}
	for _, b := range []string{"ClusterRoleBinding/roam-operator", "RoleBinding/roam-operator"} {
		for _, s := range objects[b]["subjects"].([]any) {
			if ns := s.(map[string]any)["namespace"]; ns != "platform" {
				t.Errorf("%s subject in namespace %v", b, ns)
			}
		}
	}
	d := objects["Deployment/roam-operator"]
	pod := d["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)
	c := pod["containers"].([]any)[0].(map[string]any)
	if c["image"] != "reg.example/roam-operator:v1.2.3" {
		t.Errorf("image %v", c["image"])
	}
	args := strings.Join(strs(c["args"]), " ")
	for _, want := range []string{"--leader-elect", "--edge-host-image=reg.example/roam-edge:v1.2.3", "--health-probe-bind-address=:8081", "--metrics-bind-address=:8080"} {
		if !strings.Contains(args, want) {
			t.Errorf("args %q lack %s", args, want)
		}
	}
	// The restricted Pod Security Standard (the envtest suite of
	// cmd/roam-operator has the API server enforce it on a pod of this
	// template); here, what the standard names.
	psc := pod["securityContext"].(map[string]any)
	sc := c["securityContext"].(map[string]any)
	if psc["runAsNonRoot"] != true || psc["seccompProfile"].(map[string]any)["type"] != "RuntimeDefault" ||
		sc["allowPrivilegeEscalation"] != false || sc["readOnlyRootFilesystem"] != true ||
		strings.Join(strs(sc["capabilities"].(map[string]any)["drop"]), ",") != "ALL" {
		t.Errorf("security contexts: pod %v, container %v", psc, sc)
	}
	for probe, path := range map[string]string{"livenessProbe": "/healthz", "readinessProbe": "/readyz"} {
		if got := c[probe].(map[string]any)["httpGet"].(map[string]any)["path"]; got != path {
			t.Errorf("%s path %v, want %s", probe, got, path)
		}
	}

	if _, ok := pod["imagePullSecrets"]; ok {
		t.Errorf("imagePullSecrets without --pull-secret: %v", pod["imagePullSecrets"])
	}

	if _, err := config.Install(config.Options{Namespace: "Bad_NS", Image: "x", EdgeHostImage: "y"}); err == nil {
		t.Error("a bad namespace was accepted")
	}

	// A private registry: the operator's pod pulls with the named Secrets.
	files, err = config.Install(config.Options{Image: "x", EdgeHostImage: "y", PullSecrets: []string{"regcred", "mirror"}})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range files {
		docs, _ := config.Documents(f.Data)
		for _, d := range docs {
			if d["kind"] == "Deployment" {
				ps := d["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["imagePullSecrets"]
				found = fmt.Sprint(ps) == "[map[name:regcred] map[name:mirror]]"
				if !found {
					t.Errorf("imagePullSecrets %v", ps)
				}
			}
		}
	}
	if !found {
		t.Error("no Deployment with the pull secrets")
	}
	for _, bad := range [][]string{{"Reg_Cred"}, {"a", "a"}, {""}} {
		if _, err := config.Install(config.Options{Image: "x", EdgeHostImage: "y", PullSecrets: bad}); err == nil {
			t.Errorf("pull secrets %q accepted", bad)
		}
	}
}

// TestInstallDefaultIsCommitted: the committed files are the install for
// roam-system, so kubectl apply -f on them and roam operator install agree.
func TestInstallDefaultIsCommitted(t *testing.T) {
	files, err := config.Install(config.Options{Image: "ghcr.io/roam-dev/roam-operator:latest", EdgeHostImage: "ghcr.io/roam-dev/roam-edge:latest"})
	if err != nil {
		t.Fatal(err)
	}
	var rendered []map[string]any
	for _, f := range files {
		docs, _ := config.Documents(f.Data)
		rendered = append(rendered, docs...)
	}
	var committed []map[string]any
	for _, glob := range []string{"manager/namespace.yaml", "crd/*.yaml", "rbac/*.yaml", "manager/operator.yaml"} {
		paths, _ := filepath.Glob(glob)
		for _, p := range paths {
			raw, _ := os.ReadFile(p)
			docs, err := config.Documents(raw)
			if err != nil {
				t.Fatal(err)
			}
			committed = append(committed, docs...)
		}
	}
	if len(rendered) != len(committed) {
		t.Fatalf("%d objects rendered, %d committed", len(rendered), len(committed))
	}
	for i := range rendered {
		if a, b := mustJSON(t, rendered[i]), mustJSON(t, committed[i]); a != b {
			t.Errorf("object %d differs:\n%s\n%s", i, a, b)
		}
	}
}

func TestEdgeHostImageFor(t *testing.T) {
	for in, want := range map[string]string{
		"ghcr.io/acme/roam-operator:v1":           "ghcr.io/acme/roam-edge:v1",
		"localhost:5000/roam-operator:dev":        "localhost:5000/roam-edge:dev",
		"roam-operator:v1":                        "roam-edge:v1",
		"ghcr.io/acme/roam-operator":              "",
		"ghcr.io/acme/operator:v1":                "",
		"ghcr.io/acme/roam-operator@sha256:abcd":  "",
		"localhost:5000/roam-operator":            "",
		"ghcr.io/acme/roam-operator:v1@sha256:ab": "",
	} {
		if got := config.EdgeHostImageFor(in); got != want {
			t.Errorf("EdgeHostImageFor(%q) = %q, want %q", in, got, want)
		}
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
