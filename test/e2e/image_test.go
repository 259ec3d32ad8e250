package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestImageCommands(t *testing.T) {
	forEachClient(t, func(t *testing.T, c cli) {
		tag := "wharf-e2e-" + c.name + ":v1"
		c.ok(t, "tag", "busybox", tag)
		defer c.run(t, "", "rmi", "-f", tag)
		if out := c.ok(t, "images", "--format", "{{.Repository}}:{{.Tag}}"); !strings.Contains(out, tag) {
			t.Errorf("images misses %s: %q", tag, out)
		}
		if out := c.ok(t, "images", "-q", "busybox"); len(strings.TrimSpace(out)) != 12 {
			t.Errorf("images -q: %q", out)
		}
		if out := c.ok(t, "image", "inspect", "-f", "{{.Os}} {{index .Config.Cmd 0}}", tag); strings.TrimSpace(out) != "linux sh" {
			t.Errorf("image inspect: %q", out)
		}
		if out := c.ok(t, "history", tag); !strings.Contains(out, "CREATED BY") {
			t.Errorf("history: %q", out)
		}
		// An image in use cannot be removed without -f, with Docker's conflict message.
		name := uniqueName(t, c)
		c.ok(t, "create", "--name", name, tag, "true")
		r := c.run(t, "", "rmi", tag)
		// Two tags point at the image: removing one just untags it.
		if r.Code != 0 || !strings.Contains(r.Stdout, "Untagged: "+tag) {
			t.Errorf("rmi of one of two tags: %s", r)
		}
		c.ok(t, "tag", "busybox", tag)
		id := strings.TrimSpace(c.ok(t, "images", "-q", "busybox"))
		if r := c.run(t, "", "rmi", id); r.Code == 0 || !strings.Contains(r.Stderr, "conflict: unable to delete") {
			t.Errorf("rmi by id of an image with two tags and a container: %s", r)
		}
		c.ok(t, "rm", name)
		// save → load round trip
		tarPath := filepath.Join(t.TempDir(), "img.tar")
		c.ok(t, "save", "-o", tarPath, tag)
		c.ok(t, "rmi", tag)
		out := c.ok(t, "load", "-i", tarPath)
		if !strings.Contains(out, "Loaded image: "+tag) {
			t.Errorf("load: %q", out)
		}
		// import with changes
		imp := "wharf-e2e-import-" + c.name
		cmd := exec.Command(c.path, "import", "-c", "CMD [\"echo\",\"imported\"]", "-", imp)
		cmd.Env = append(os.Environ(), "DOCKER_HOST="+c.host)
		f, err := os.Open(filepath.Join(cacheDir(), "busybox.tar"))
		if err != nil {
			t.Skip("no cached busybox rootfs:", err)
		}
		defer f.Close()
		cmd.Stdin = f
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("import: %v %s", err, b)
		}
		defer c.run(t, "", "rmi", "-f", imp)
		if out := c.ok(t, "run", "--rm", imp); out != "imported\n" {
			t.Errorf("run imported: %q", out)
		}
	})
}

// TestSaveLoadedByRealDocker: what Wharf saves, the real dockerd loads (when one runs here).
func TestSaveLoadedByRealDocker(t *testing.T) {
	d := needWharf(t)
	if dockerPath == "" {
		t.Skip("no docker CLI")
	}
	real := cli{name: "docker", path: dockerPath, host: "unix:///var/run/docker.sock"}
	if r := real.run(t, "", "version"); r.Code != 0 {
		t.Skip("no real dockerd reachable")
	}
	w := cli{name: "wharf", path: d.bin, host: d.host()}
	tag := "wharf-e2e-roundtrip:saved"
	w.ok(t, "tag", "busybox", tag)
	defer w.run(t, "", "rmi", tag)
	tarPath := filepath.Join(t.TempDir(), "img.tar")
	w.ok(t, "save", "-o", tarPath, tag)
	out := real.ok(t, "load", "-i", tarPath)
	defer real.run(t, "", "rmi", tag)
	if !strings.Contains(out, tag) {
		t.Fatalf("docker load: %q", out)
	}
	if out := real.ok(t, "run", "--rm", tag, "echo", "ran on dockerd"); out != "ran on dockerd\n" {
		t.Errorf("run on dockerd: %q", out)
	}
}

func TestMiscContainerCommands(t *testing.T) {
	forEachClient(t, func(t *testing.T, c cli) {
		name := uniqueName(t, c)
		c.ok(t, "run", "-d", "--name", name, "busybox", "sh", "-c", "for i in 1 2 3 4 5; do echo line$i; done; sleep 60")
		defer c.run(t, "", "rm", "-f", "-t", "0", name)
		waitFor(t, func() bool { return strings.Contains(c.ok(t, "logs", name), "line5") })
		if out := c.ok(t, "logs", "--tail", "2", name); out != "line4\nline5\n" {
			t.Errorf("logs --tail 2: %q", out)
		}
		if out := c.ok(t, "logs", "-t", "--tail", "1", name); !strings.Contains(out, "T") || !strings.HasSuffix(out, " line5\n") {
			t.Errorf("logs -t: %q", out)
		}
		if out := c.ok(t, "stats", "--no-stream", "--format", "{{.Name}}", name); strings.TrimSpace(out) != name {
			t.Errorf("stats --no-stream: %q", out)
		}
		if out := c.ok(t, "events", "--since", "5m", "--until", "0s", "--filter", "container="+name, "--format", "{{.Action}}"); !strings.Contains(out, "start") {
			t.Errorf("events: %q", out)
		}
		if out := c.ok(t, "ps", "-a", "-q", "--no-trunc", "--filter", "name="+name); len(strings.TrimSpace(out)) != 64 {
			t.Errorf("ps -q --no-trunc: %q", out)
		}
		stopped := name + "-stopped"
		c.ok(t, "run", "--name", stopped, "busybox", "true")
		out := c.ok(t, "container", "prune", "-f")
		if !strings.Contains(out, "Total reclaimed space") {
			t.Errorf("container prune: %q", out)
		}
		if r := c.run(t, "", "inspect", stopped); r.Code == 0 {
			t.Errorf("prune left %s", stopped)
		}
		if r := c.run(t, "", "inspect", name); r.Code != 0 {
			t.Errorf("prune removed a running container")
		}
		vol := name + "-v"
		c.ok(t, "volume", "create", "--label", "k=v", vol)
		if out := c.ok(t, "volume", "inspect", "-f", "{{.Driver}} {{.Labels.k}}", vol); strings.TrimSpace(out) != "local v" {
			t.Errorf("volume inspect: %q", out)
		}
		c.ok(t, "volume", "rm", vol)
		if r := c.run(t, "", "volume", "inspect", vol); r.Code == 0 {
			t.Errorf("volume rm left %s", vol)
		}
	})
}

func cacheDir() string {
	if d := os.Getenv("WHARF_IMAGE_CACHE"); d != "" {
		return d
	}
	return "/var/cache/wharf/base-images"
}
