package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBuildGoProgramFromScratch: the multi-stage build users write most — a Go program compiled in one stage
// (an image made here from this machine's Go toolchain: no registry), copied into FROM scratch — runs.
func TestBuildGoProgramFromScratch(t *testing.T) {
	d := needWharf(t)
	if testing.Short() || os.Getenv("WHARF_E2E_FAST") != "" {
		t.Skip("compiles the Go runtime in a container (~1 min)")
	}
	goroot, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		t.Skip("no Go toolchain here")
	}
	c := cli{name: "wharf", path: d.bin, host: d.host()}
	toolImg, tag := uniqueName(t, c)+"-go", uniqueName(t, c)
	defer c.run(t, "", "rmi", "-f", tag, toolImg)
	// the toolchain as an image: GOROOT at /usr/local/go
	pr, pw, _ := os.Pipe()
	tar := exec.Command("tar", "-C", strings.TrimSpace(string(goroot)), "--exclude=./test", "--exclude=./doc", "--exclude=./api",
		"--transform", "s,^\\.,usr/local/go,", "-c", ".")
	tar.Stdout = pw
	if err := tar.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	imp := exec.Command(d.bin, "-H", d.host(), "import", "-", toolImg)
	imp.Stdin = pr
	if out, err := imp.CombinedOutput(); err != nil {
		t.Fatalf("import of the Go toolchain: %v\n%s", err, out)
	}
	tar.Wait()
	dir := t.TempDir()
	files := map[string]string{
		"go.mod":   "module hello\n\ngo 1.21\n",
		"hello.go": "package main\n\nfunc main() { println(\"hello from a scratch image\") }\n",
		"Dockerfile": "FROM " + toolImg + " AS build\n" +
			"ENV PATH=/usr/local/go/bin GOROOT=/usr/local/go HOME=/work TMPDIR=/tmp GOCACHE=/work/.cache CGO_ENABLED=0 GOTOOLCHAIN=local GOPROXY=off GOFLAGS=-trimpath\n" +
			"WORKDIR /tmp\n" + "WORKDIR /work\n" +
			"COPY go.mod hello.go ./\n" +
			"RUN [\"go\", \"build\", \"-o\", \"/out/hello\", \".\"]\n" +
			"FROM scratch\n" +
			"COPY --from=build /out/hello /hello\n" +
			"ENTRYPOINT [\"/hello\"]\n",
	}
	for name, content := range files {
		os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644)
	}
	c.ok(t, "build", "-t", tag, dir)
	r := c.run(t, "", "run", "--rm", tag)
	if r.Code != 0 || strings.TrimSpace(r.Stderr) != "hello from a scratch image" {
		t.Fatalf("running the Go program: %s", r)
	}
	if layers := strings.TrimSpace(c.ok(t, "image", "inspect", "-f", "{{len .RootFS.Layers}}", tag)); layers != "1" {
		t.Errorf("FROM scratch + one COPY: %s layers", layers)
	}
}
