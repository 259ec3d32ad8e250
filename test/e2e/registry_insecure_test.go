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
)

// startDaemonWith starts another wharf daemon (its own roots and bridge) with extra daemon flags. It is
// stopped and cleaned up when the test ends.
func startDaemonWith(t *testing.T, bridgeSuffix string, extra ...string) *daemon {
	t.Helper()
	root, err := os.MkdirTemp("", "wharf-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	d := &daemon{bin: shared.bin, dataRoot: filepath.Join(root, "data"), execRoot: filepath.Join(root, "exec"),
		sock: filepath.Join(root, "wharf.sock"), bridge: bridgeName(bridgeSuffix), logPath: filepath.Join(root, "daemon.log")}
	t.Cleanup(func() { d.stop(true) })
	if err := d.startWith(extra...); err != nil {
		t.Fatal(err)
	}
	return d
}

// startWith is daemon.start with extra flags (a restart with other flags keeps the daemon's state).
func (d *daemon) startWith(extra ...string) error {
	logf, err := os.OpenFile(d.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	args := append([]string{"daemon", "--debug", "--data-root", d.dataRoot, "--exec-root", d.execRoot,
		"-H", "unix://" + d.sock, "--bridge-name", d.bridge, "--no-kube"}, extra...)
	d.cmd = exec.Command(d.bin, args...)
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	go func() { d.cmd.Wait(); logf.Close() }()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("unix", d.sock); err == nil {
			c.Close()
			return nil
		}
		if d.cmd.ProcessState != nil {
			break
		}
	}
	b, _ := os.ReadFile(d.logPath)
	return fmt.Errorf("daemon did not come up:\n%s", b)
}

// testAddress gives this machine an address of its own in 198.18.0.0/15 (the benchmarking range, routed
// nowhere) on a link the test creates and removes: a registry that is not on loopback, reached
// without any traffic leaving the machine.
func testAddress(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2's ip")
	}
	pid := os.Getpid()
	link := fmt.Sprintf("wreg%d", pid%100000)
	ip := fmt.Sprintf("198.18.%d.%d", pid/250%250, pid%250+1)
	// A dummy link where the kernel has the module, else a veth pair (deleting one end deletes both).
	if b, err := exec.Command("ip", "link", "add", link, "type", "dummy").CombinedOutput(); err != nil {
		if b2, err2 := exec.Command("ip", "link", "add", link, "type", "veth", "peer", "name", link+"p").CombinedOutput(); err2 != nil {
			t.Skipf("cannot create a dummy or veth link: %v %s; %v %s", err, b, err2, b2)
		}
	}
	t.Cleanup(func() {
		if b, err := exec.Command("ip", "link", "del", link).CombinedOutput(); err != nil {
			t.Errorf("ip link del %s: %v %s", link, err, b)
		}
	})
	for _, args := range [][]string{{"addr", "add", ip + "/32", "dev", link}, {"link", "set", link, "up"}} {
		if b, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v %s", args, err, b)
		}
	}
	return ip
}

// TestRegistryInsecure: plain HTTP is used for a registry off loopback only when the daemon lists it with
// --insecure-registry (by host:port, then by CIDR); without it the pull fails as dockerd's does.
func TestRegistryInsecure(t *testing.T) {
	d := needWharf(t)
	ip := testAddress(t)
	addr := startRegistryOn(t, d, ip)
	ref := addr + "/insecure/busybox:1"

	// The shared daemon has no --insecure-registry: HTTPS only, and this registry speaks HTTP.
	forEachClient(t, func(t *testing.T, c cli) {
		r := c.run(t, "", "pull", ref)
		want := fmt.Sprintf(`Get "https://%s/v2/": http: server gave HTTP response to HTTPS client`, addr)
		if r.Code != 1 || !strings.Contains(r.Stderr, want) {
			t.Errorf("pull without --insecure-registry: want %q\n%s", want, r)
		}
		c.ok(t, "tag", "busybox:latest", ref)
		r = c.run(t, "", "push", ref)
		c.ok(t, "rmi", ref)
		if r.Code != 1 || !strings.Contains(r.Stderr+r.Stdout, want) {
			t.Errorf("push without --insecure-registry: want %q\n%s", want, r)
		}
	})

	for _, flag := range []string{addr, "198.18.0.0/15"} {
		t.Run(strings.ReplaceAll(flag, "/", "_"), func(t *testing.T) {
			d2 := startDaemonWith(t, "i", "--insecure-registry", flag)
			if err := loadBaseImages(d2, "busybox"); err != nil {
				t.Fatal(err)
			}
			for _, c := range clients(t, d2) {
				c.host = d2.host()
				ref := fmt.Sprintf("%s/insecure/busybox-%s:1", addr, c.name)
				c.ok(t, "tag", "busybox:latest", ref)
				if out := c.ok(t, "push", ref); !strings.Contains(out, "1: digest: sha256:") {
					t.Errorf("%s push:\n%s", c.name, out)
				}
				c.ok(t, "rmi", ref)
				if out := c.ok(t, "pull", ref); !strings.Contains(out, "Status: Downloaded newer image for "+ref) {
					t.Errorf("%s pull:\n%s", c.name, out)
				}
				if got := strings.TrimSpace(c.ok(t, "run", "--rm", ref, "echo", "insecure ok")); got != "insecure ok" {
					t.Errorf("%s run: %q", c.name, got)
				}
				c.ok(t, "rmi", ref)
			}
			// docker info lists it as dockerd does: host:port entries, then the CIDRs.
			if dockerPath != "" {
				dc := cli{name: "docker", path: dockerPath, host: d2.host()}
				info := dc.ok(t, "info")
				want := " Insecure Registries:\n"
				if strings.Contains(flag, "/") {
					want += "  ::1/128\n  127.0.0.0/8\n  198.18.0.0/15\n"
				} else {
					want += "  " + addr + "\n  ::1/128\n  127.0.0.0/8\n"
				}
				if !strings.Contains(info, want) {
					t.Errorf("docker info: want %q in\n%s", want, info)
				}
				cidrs := dc.ok(t, "info", "-f", "{{json .RegistryConfig.InsecureRegistryCIDRs}}")
				if !strings.Contains(cidrs, "127.0.0.0/8") {
					t.Errorf("InsecureRegistryCIDRs: %s", cidrs)
				}
			}
		})
	}
}
