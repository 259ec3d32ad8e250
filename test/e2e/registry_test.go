package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wharfhq/wharf/internal/registry"
)

// startRegistry runs `wharf registry` on 127.0.0.1:<free port> with a temp root until the test ends.
func startRegistry(t *testing.T, d *daemon, args ...string) string {
	t.Helper()
	return startRegistryOn(t, d, "127.0.0.1", args...)
}

// startRegistryOn is startRegistry on a free port of ip (an address of this machine).
func startRegistryOn(t *testing.T, d *daemon, ip string, args ...string) string {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	if d.bin == "" && len(args) == 0 {
		// Against the real dockerd there is no wharf binary: the same registry, served by this process.
		return serveRegistry(t, l, &registry.ServerConfig{})
	}
	addr := l.Addr().String()
	l.Close()
	root := t.TempDir()
	cmd := exec.Command(d.bin, append([]string{"registry", "--addr", addr, "--root", filepath.Join(root, "data")}, args...)...)
	return runRegistryProcess(t, cmd, root, addr, "registry")
}

// runRegistryProcess starts cmd, a registry listening on addr, with its output in root/registry.log; it
// waits until addr answers and stops the registry when the test ends.
func runRegistryProcess(t *testing.T, cmd *exec.Cmd, root, addr, name string) string {
	t.Helper()
	logf, _ := os.Create(filepath.Join(root, "registry.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		logf.Close()
	})
	for i := 0; i < 500; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr
		}
		select {
		case <-done:
			i = 500 // it exited: no use waiting
		default:
			time.Sleep(20 * time.Millisecond)
		}
	}
	b, _ := os.ReadFile(filepath.Join(root, "registry.log"))
	t.Fatalf("%s did not come up:\n%s", name, b)
	return ""
}

func TestRegistryPushPullRun(t *testing.T) {
	d := needDaemon(t)
	addr := startRegistry(t, d)
	forEachClient(t, func(t *testing.T, c cli) {
		ref := fmt.Sprintf("%s/test/busybox-%s:1", addr, c.name)
		c.ok(t, "tag", "busybox:latest", ref)
		t0 := time.Now()
		out := c.ok(t, "push", ref)
		t.Logf("%s push: %v", c.name, time.Since(t0))
		if !strings.Contains(out, "The push refers to repository ["+addr+"/test/busybox-"+c.name+"]") || !strings.Contains(out, "1: digest: sha256:") {
			t.Fatalf("push output:\n%s", out)
		}
		out = c.ok(t, "push", ref)
		if !strings.Contains(out, "Layer already exists") {
			t.Errorf("second push:\n%s", out)
		}
		c.ok(t, "rmi", ref)
		t0 = time.Now()
		out = c.ok(t, "pull", ref)
		t.Logf("%s pull: %v", c.name, time.Since(t0))
		if !strings.Contains(out, "Digest: sha256:") || !strings.Contains(out, "Status: ") {
			t.Errorf("pull output:\n%s", out)
		}
		if got := strings.TrimSpace(c.ok(t, "run", "--rm", ref, "echo", "pulled ok")); got != "pulled ok" {
			t.Errorf("run: %q", got)
		}
		digests := c.ok(t, "image", "inspect", "-f", "{{json .RepoDigests}}", ref)
		if !strings.Contains(digests, addr+"/test/busybox-"+c.name+"@sha256:") {
			t.Errorf("RepoDigests: %s", digests)
		}
		c.ok(t, "rmi", ref)

		r := c.run(t, "", "pull", addr+"/no/such:1")
		if r.Code != 1 || !strings.Contains(r.Stderr, "repository "+addr+"/no/such not found: name unknown: repository name not known to registry") {
			t.Errorf("unknown repo: %s", r)
		}
		r = c.run(t, "", "pull", fmt.Sprintf("%s/test/busybox-%s:nope", addr, c.name))
		if r.Code != 1 || !strings.Contains(r.Stderr, "manifest for "+addr+"/test/busybox-"+c.name+":nope not found: manifest unknown") {
			t.Errorf("unknown tag: %s", r)
		}
	})
}

func TestRegistryAuth(t *testing.T) {
	d := needDaemon(t)
	htp := filepath.Join(t.TempDir(), "htpasswd")
	if b, err := exec.Command(d.bin, "registry", "htpasswd", "-u", "alice", "-p", "s3cret", htp).CombinedOutput(); err != nil {
		t.Fatalf("htpasswd: %v %s", err, b)
	}
	addr := startRegistry(t, d, "--htpasswd", htp)
	forEachClient(t, func(t *testing.T, cc cli) {
		c := cc
		c.env = append(c.env, "DOCKER_CONFIG="+t.TempDir()) // logins stay in the test
		ref := fmt.Sprintf("%s/priv/busybox-%s:1", addr, c.name)
		c.ok(t, "tag", "busybox:latest", ref)
		defer c.run(t, "", "rmi", ref)
		r := c.run(t, "", "push", ref)
		if r.Code != 1 || !strings.Contains(r.Stderr+r.Stdout, "no basic auth credentials") && !strings.Contains(r.Stderr+r.Stdout, "unauthorized") {
			t.Fatalf("push without login: %s", r)
		}
		r = c.run(t, "wrong\n", "login", "-u", "alice", "--password-stdin", addr)
		if r.Code != 1 || !strings.Contains(r.Stderr, "401 Unauthorized") {
			t.Errorf("login with a bad password: %s", r)
		}
		r = c.run(t, "s3cret\n", "login", "-u", "alice", "--password-stdin", addr)
		if r.Code != 0 || !strings.Contains(r.Stdout, "Login Succeeded") {
			t.Fatalf("login: %s", r)
		}
		c.ok(t, "push", ref)
		c.ok(t, "rmi", ref)
		c.ok(t, "pull", ref)
		c.ok(t, "logout", addr)
		c.ok(t, "rmi", ref)
		if r := c.run(t, "", "pull", ref); r.Code != 1 {
			t.Errorf("pull after logout: %s", r)
		}
	})
}
