package e2e

import (
	"context"
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// conformanceSuite is the OCI distribution-spec conformance module, pinned in go.mod as a tool
// (`go mod download` fetches it).
const conformanceSuite = "github.com/opencontainers/distribution-spec/conformance"

// TestRegistryConformance builds the OCI distribution-spec conformance suite, runs it against
// `wharf registry` on a loopback port with the 1.0 profile (pull, push, content discovery and
// content management; sha512 content off: distribution v3 stores sha256 only) and fails on any
// failed test. The counts go to the test log.
func TestRegistryConformance(t *testing.T) {
	d := needWharf(t)
	dir := t.TempDir()
	suite := filepath.Join(dir, "conformance")
	bctx, bcancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer bcancel()
	build := exec.CommandContext(bctx, "go", "build", "-o", suite, conformanceSuite)
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the conformance suite: %v\n%s", err, out)
	}

	reg := startRegistryProc(t, d.bin)
	results := filepath.Join(dir, "results")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	run := exec.CommandContext(ctx, suite)
	run.Dir = dir
	run.Env = append(os.Environ(),
		"OCI_REGISTRY="+reg.addr, "OCI_TLS=disabled",
		"OCI_REPO1=conformance/one", "OCI_REPO2=conformance/two",
		"OCI_VERSION=1.0", "OCI_DATA_SHA512=false",
		"OCI_RESULTS_DIR="+results, "OCI_LOG=warn")
	out, runErr := run.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("conformance suite did not finish in 2 minutes:\n%s", tail(string(out), 4000))
	}

	b, err := os.ReadFile(filepath.Join(results, "junit.xml"))
	if err != nil {
		t.Fatalf("no junit.xml (%v); suite: %v\n%s", err, runErr, tail(string(out), 4000))
	}
	var suites struct {
		Suites []struct {
			Name     string `xml:"name,attr"`
			Tests    int    `xml:"tests,attr"`
			Failures int    `xml:"failures,attr"`
			Errors   int    `xml:"errors,attr"`
			Skipped  int    `xml:"skipped,attr"`
			Disabled int    `xml:"disabled,attr"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(b, &suites); err != nil || len(suites.Suites) == 0 {
		t.Fatalf("junit.xml: %v\n%s", err, tail(string(b), 2000))
	}
	var n, f, s, dis int
	for _, ts := range suites.Suites {
		n, f, s, dis = n+ts.Tests, f+ts.Failures+ts.Errors, s+ts.Skipped, dis+ts.Disabled
	}
	pass := n - f - s - dis
	t.Logf("OCI conformance (OCI_VERSION=1.0, OCI_DATA_SHA512=false) against wharf registry: %d passed, %d failed, %d skipped, %d disabled of %d",
		pass, f, s, dis, n)
	if f > 0 || runErr != nil || pass == 0 {
		t.Fatalf("conformance failures (exit: %v):\n%s\nregistry log: %s", runErr, tail(string(out), 8000), reg.log)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
