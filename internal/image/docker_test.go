package image

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const dockerSock = "/var/run/docker.sock"

// dockerCLI runs the real docker CLI against the machine's Docker engine, or skips the test.
func dockerCLI(t *testing.T) func(stdin []byte, args ...string) (string, error) {
	t.Helper()
	if testing.Short() {
		t.Skip("talks to the real Docker engine")
	}
	if _, err := exec.LookPath("docker"); err != nil {
		t.Skip("no docker CLI")
	}
	if _, err := os.Stat(dockerSock); err != nil {
		t.Skip("no docker socket")
	}
	return func(stdin []byte, args ...string) (string, error) {
		cmd := exec.Command("docker", args...)
		cmd.Env = append(os.Environ(), "DOCKER_HOST=unix://"+dockerSock)
		if stdin != nil {
			cmd.Stdin = bytes.NewReader(stdin)
		}
		out, err := cmd.CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
}

func TestLoadRealDockerSave(t *testing.T) {
	docker := dockerCLI(t)
	id, err := docker(nil, "image", "inspect", "-f", "{{.Id}}", "busybox:latest")
	if err != nil {
		t.Skip("busybox:latest not in the Docker engine")
	}
	f := filepath.Join(t.TempDir(), "bb.tar")
	if out, err := docker(nil, "save", "-o", f, "busybox:latest"); err != nil {
		t.Fatalf("docker save: %v: %s", err, out)
	}
	s, _ := openStore(t)
	r, err := os.Open(f)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	res, err := s.Load(r)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(res.Refs, ",") != "busybox:latest" {
		t.Fatalf("refs %v", res.Refs)
	}
	if img := mustResolve(t, s, "busybox"); img.ID.String() != id {
		t.Fatalf("ID %s, docker says %s", img.ID, id)
	}
}

// TestSaveDockerLoad checks the real `docker load` (Docker 20.10 here) reads our Save output,
// including a gzip-compressed layer, and gets the same image ID and diff IDs.
func TestSaveDockerLoad(t *testing.T) {
	docker := dockerCLI(t)
	s, _ := openStore(t)
	l1 := layerTar(t, map[string]string{"hello.txt": "hello from wharf\n"})
	l2 := layerTar(t, map[string]string{"etc/wharf": fmt.Sprint(time.Now().UnixNano())}) // unique image
	cfg := configFor(t, "2024-01-02T03:04:05Z", l1, l2)
	tag := fmt.Sprintf("wharf-savetest:%d", time.Now().UnixNano())
	if _, err := s.Load(bytes.NewReader(legacyArchive(t, cfg, [][]byte{l1, gz(t, l2)}, []string{tag}))); err != nil {
		t.Fatal(err)
	}
	img := mustResolve(t, s, tag)
	var buf bytes.Buffer
	if err := s.Save(&buf, []string{tag}); err != nil {
		t.Fatal(err)
	}
	out, err := docker(buf.Bytes(), "load")
	t.Cleanup(func() { docker(nil, "rmi", tag) })
	if err != nil {
		t.Fatalf("docker load: %v: %s", err, out)
	}
	if !strings.Contains(out, "Loaded image: "+tag) {
		t.Fatalf("docker load said %q", out)
	}
	got, err := docker(nil, "image", "inspect", "-f", "{{.Id}} {{json .RootFS.Layers}}", tag)
	if err != nil {
		t.Fatalf("inspect: %v %s", err, got)
	}
	want := fmt.Sprintf("%s [%q,%q]", img.ID, img.Layers[0].DiffID, img.Layers[1].DiffID)
	if got != want {
		t.Fatalf("docker has %q, want %q", got, want)
	}
}
