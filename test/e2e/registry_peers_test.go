package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// startDistribution28 runs Debian's docker-registry (CNCF distribution 2.8) on 127.0.0.1:<free port> with
// filesystem storage in a temp dir until the test ends; the test skips when it is not installed.
func startDistribution28(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		t.Skip("Debian's docker-registry is not installed")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	root := t.TempDir()
	cfg := filepath.Join(root, "config.yml")
	conf := fmt.Sprintf("version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: %s\n",
		filepath.Join(root, "data"), addr)
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return runRegistryProcess(t, exec.Command(bin, "serve", cfg), root, addr, "docker-registry")
}

// peerImages are the local images pushed to the peer registries: busybox, and nginx unless
// WHARF_E2E_FAST (its base image is large).
func peerImages(t *testing.T, d *daemon) []string {
	imgs := []string{"busybox"}
	// (Not into the real dockerd: loading nginx there would leave an image this test did not remove.)
	if os.Getenv("WHARF_E2E_FAST") == "" && !d.real {
		if err := loadBaseImages(d, "nginx"); err != nil {
			t.Fatalf("nginx base image: %v", err)
		}
		imgs = append(imgs, "nginx")
	}
	return imgs
}

// checkRuns runs a pulled image: busybox echoes, nginx checks its configuration.
func checkRuns(t *testing.T, c cli, image, ref string) {
	t.Helper()
	switch image {
	case "busybox":
		if got := strings.TrimSpace(c.ok(t, "run", "--rm", ref, "echo", "pulled ok")); got != "pulled ok" {
			t.Errorf("%s run %s: %q", c.name, ref, got)
		}
	case "nginx":
		r := c.run(t, "", "run", "--rm", ref, "nginx", "-t")
		if r.Code != 0 || !strings.Contains(r.Stderr+r.Stdout, "syntax is ok") {
			t.Errorf("%s run %s nginx -t: %s", c.name, ref, r)
		}
	}
}

// TestRegistryDistribution28: busybox and nginx pushed to Debian's docker-registry (CNCF distribution
// 2.8), removed, pulled back and run; a second repository gets its layers by cross-repository mount.
func TestRegistryDistribution28(t *testing.T) {
	d := needDaemon(t)
	addr := startDistribution28(t)
	imgs := peerImages(t, d)
	forEachClient(t, func(t *testing.T, c cli) {
		for _, img := range imgs {
			ref := fmt.Sprintf("%s/peer/%s-%s:1", addr, img, c.name)
			c.ok(t, "tag", img+":latest", ref)
			out := c.ok(t, "push", ref)
			if !strings.Contains(out, "The push refers to repository ["+strings.TrimSuffix(ref, ":1")+"]") || !strings.Contains(out, "1: digest: sha256:") {
				t.Errorf("push %s:\n%s", ref, out)
			}
			if out = c.ok(t, "push", ref); !strings.Contains(out, "Layer already exists") {
				t.Errorf("second push %s:\n%s", ref, out)
			}
			c.ok(t, "rmi", ref)
			if out = c.ok(t, "pull", ref); !strings.Contains(out, "Status: Downloaded newer image for "+ref) {
				t.Errorf("pull %s:\n%s", ref, out)
			}
			checkRuns(t, c, img, ref)
			digests := c.ok(t, "image", "inspect", "-f", "{{json .RepoDigests}}", ref)
			if !strings.Contains(digests, strings.TrimSuffix(ref, ":1")+"@sha256:") {
				t.Errorf("RepoDigests of %s: %s", ref, digests)
			}
			// Another repository of the same registry: the layers are mounted, not uploaded.
			ref2 := fmt.Sprintf("%s/peer/%s-copy-%s:1", addr, img, c.name)
			c.ok(t, "tag", ref, ref2)
			if out = c.ok(t, "push", ref2); !strings.Contains(out, "Mounted from peer/"+img+"-"+c.name) {
				t.Errorf("cross-repository push %s:\n%s", ref2, out)
			}
			c.ok(t, "rmi", ref2)
			c.ok(t, "rmi", ref)
		}
		// distribution 2.8.2 answers MANIFEST_UNKNOWN for an unknown repository (dockerd's wording for it is
		// checked against the real dockerd in TestRegistryRealDockerd).
		r := c.run(t, "", "pull", addr+"/no/such:1")
		if r.Code != 1 || !strings.Contains(r.Stderr, "manifest for "+addr+"/no/such:1 not found: manifest unknown") {
			t.Errorf("unknown repository: %s", r)
		}
	})
}

// realDockerd is the docker CLI pointed at the machine's real dockerd, when there is one; the test
// skips otherwise. What the test creates there (tags with this test's registry port in their name)
// is removed when it ends; nothing else is touched.
func realDockerd(t *testing.T) cli {
	t.Helper()
	if dockerPath == "" {
		t.Skip("no docker CLI")
	}
	c := cli{name: "real-dockerd", path: dockerPath, host: "unix:///var/run/docker.sock", env: []string{"DOCKER_CONFIG=" + t.TempDir()}}
	if r := c.run(t, "", "version", "-f", "{{.Server.Version}}"); r.Code != 0 {
		t.Skipf("no reachable dockerd on /var/run/docker.sock: %s", strings.TrimSpace(r.Stderr))
	}
	return c
}

// TestRegistryRealDockerd: the same pushes and pulls through the real dockerd, against the Wharf
// registry and distribution 2.8, both ways: images Wharf pushed are pulled and run by dockerd, images
// dockerd pushed are pulled and run by Wharf. Against a token-auth registry, dockerd's and Wharf's
// errors for an anonymous push and pull are the same text.
func TestRegistryRealDockerd(t *testing.T) {
	d := needWharf(t)
	real := realDockerd(t)
	var created []string
	t.Cleanup(func() {
		for _, ref := range created {
			real.run(t, "", "rmi", ref) // by tag: only what this test made
		}
	})
	w := clients(t, d)[0] // the docker CLI on Wharf when installed
	regs := map[string]string{"wharf": startRegistry(t, d)}
	if _, err := exec.LookPath("docker-registry"); err == nil {
		regs["distribution28"] = startDistribution28(t)
	}
	for kind, addr := range regs {
		t.Run(kind, func(t *testing.T) {
			fromWharf := addr + "/e2e-real/from-wharf:1"
			fromReal := addr + "/e2e-real/from-dockerd:1"
			created = append(created, fromWharf, fromReal)
			w.ok(t, "tag", "busybox:latest", fromWharf)
			w.ok(t, "push", fromWharf)
			w.ok(t, "rmi", fromWharf)

			// dockerd pulls what Wharf pushed, runs it, pushes it under its own name, and pulls that back.
			real.ok(t, "pull", fromWharf)
			checkRuns(t, real, "busybox", fromWharf)
			real.ok(t, "tag", fromWharf, fromReal)
			if out := real.ok(t, "push", fromReal); !strings.Contains(out, "1: digest: sha256:") {
				t.Errorf("dockerd push:\n%s", out)
			}
			real.ok(t, "rmi", fromReal)
			real.ok(t, "pull", fromReal)
			checkRuns(t, real, "busybox", fromReal)

			// Wharf pulls what dockerd pushed.
			if out := w.ok(t, "pull", fromReal); !strings.Contains(out, "Status: Downloaded newer image for "+fromReal) {
				t.Errorf("wharf pull:\n%s", out)
			}
			checkRuns(t, w, "busybox", fromReal)
			w.ok(t, "rmi", fromReal)

			// Both say the same for an unknown repository and an unknown tag.
			for _, ref := range []string{addr + "/no/such:1", addr + "/e2e-real/from-dockerd:nope"} {
				rr, rw := real.run(t, "", "pull", ref), w.run(t, "", "pull", ref)
				if rr.Code != rw.Code || lastLine(rr.Stderr) != lastLine(rw.Stderr) {
					t.Errorf("pull %s: dockerd and Wharf differ:\ndockerd: %s\nwharf: %s", ref, rr, rw)
				}
			}
		})
	}

	t.Run("token-errors", func(t *testing.T) {
		addr, _ := startTokenRegistry(t)
		src := regs["wharf"] + "/e2e-real/from-wharf:1"
		ref := addr + "/priv/anon:1"
		created = append(created, ref)
		real.ok(t, "tag", src, ref)
		w.ok(t, "pull", src)
		w.ok(t, "tag", src, ref)
		defer w.run(t, "", "rmi", src, ref)
		for _, args := range [][]string{{"push", ref}, {"pull", addr + "/priv/nothere:1"}} {
			rr, rw := real.run(t, "", args...), w.run(t, "", args...)
			if rr.Code != rw.Code || lastLine(rr.Stderr) != lastLine(rw.Stderr) {
				t.Errorf("%v: dockerd and Wharf differ:\ndockerd: %s\nwharf: %s", args, rr, rw)
			} else {
				t.Logf("%v: both say %q", args, lastLine(rw.Stderr))
			}
		}
	})
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
