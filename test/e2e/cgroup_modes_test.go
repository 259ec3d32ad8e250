package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCgroupV2Unified runs the daemon where /sys/fs/cgroup is the cgroup2 hierarchy alone, as on a pure
// v2 host: its own mount namespace with cgroup2 mounted there (this machine is hybrid, so the v2
// hierarchy has no controllers bound: limits cannot be checked, everything else of libcontainer's v2
// path can). Containers get their own cgroup2 directory and cgroup namespace, a read-only cgroup2 at
// /sys/fs/cgroup, the eBPF device filter (a block device made with mknod cannot be read), freezing
// for pause, stats, and their cgroup is removed with them.
func TestCgroupV2Unified(t *testing.T) {
	needWharf(t)
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("unshare not installed")
	}
	v2root := "/sys/fs/cgroup/unified" // where the host (hybrid) shows the same hierarchy
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		v2root = "/sys/fs/cgroup" // a pure v2 host already
	} else if _, err := os.Stat(filepath.Join(v2root, "cgroup.procs")); err != nil {
		t.Skip("no cgroup2 hierarchy mounted on this host")
	}
	_, c := daemonInOwnMountNS(t, "v2", "mount -t cgroup2 cgroup2 /sys/fs/cgroup")

	out := c.ok(t, "run", "--rm", "busybox", "sh", "-c", "grep ' /sys/fs/cgroup ' /proc/mounts; grep '^0::' /proc/self/cgroup")
	if !strings.Contains(out, " /sys/fs/cgroup cgroup2 ro,") {
		t.Errorf("/sys/fs/cgroup in the container is not a read-only cgroup2: %q", out)
	}
	if !strings.Contains(out, "0::/\n") {
		t.Errorf("the container does not have its own cgroup namespace: %q", out)
	}
	if r := c.run(t, "", "run", "--rm", "busybox", "sh", "-c", "exit 3"); r.Code != 3 {
		t.Errorf("exit code: %s", r)
	}
	if r := c.run(t, "", "run", "--rm", "busybox", "nonexistent"); r.Code != 127 {
		t.Errorf("missing command: %s", r)
	}

	c.ok(t, "run", "-d", "--name", "v2", "busybox", "sleep", "60")
	id := strings.TrimSpace(c.ok(t, "inspect", "-f", "{{.Id}}", "v2"))
	pid := strings.TrimSpace(c.ok(t, "inspect", "-f", "{{.State.Pid}}", "v2"))
	cg := filepath.Join(v2root, "wharf", id)
	if b, err := os.ReadFile(filepath.Join(cg, "cgroup.procs")); err != nil || !strings.Contains(string(b), pid) {
		t.Errorf("container's cgroup %s: %q %v, want pid %s", cg, b, err, pid)
	}
	// Docker's device rules, enforced by the eBPF program on v2: /dev/null is usable, a disk is not.
	r := c.run(t, "", "exec", "v2", "sh", "-c", "mknod /tmp/sda b 8 0 && head -c1 /tmp/sda; echo x > /dev/null && echo null-ok")
	if !strings.Contains(r.Stderr+r.Stdout, "Operation not permitted") || !strings.Contains(r.Stdout, "null-ok") {
		t.Errorf("device rules: %s", r)
	}
	c.ok(t, "pause", "v2")
	if b, _ := os.ReadFile(filepath.Join(cg, "cgroup.freeze")); strings.TrimSpace(string(b)) != "1" {
		t.Errorf("cgroup.freeze while paused: %q", b)
	}
	c.ok(t, "unpause", "v2")
	if st := c.ok(t, "stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}", "v2"); strings.TrimSpace(st) != "v2 1" {
		t.Errorf("stats: %q", st)
	}
	c.ok(t, "rm", "-f", "v2")
	waitFor(t, func() bool { _, err := os.Stat(cg); return os.IsNotExist(err) })
}

// TestCgroupV1Only runs the daemon where /sys/fs/cgroup has the v1 controller hierarchies alone, as on a
// v1-only host: its own mount namespace without this hybrid host's cgroup2 mount. The container's cgroups
// are made in the v1 hierarchies only (none in cgroup2), its limits are there, its /sys/fs/cgroup shows
// the v1 controllers, and the cgroups go with it.
func TestCgroupV1Only(t *testing.T) {
	needWharf(t)
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("unshare not installed")
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	if !strings.Contains(string(mi), " /sys/fs/cgroup/unified ") || !strings.Contains(string(mi), " /sys/fs/cgroup/memory ") {
		t.Skip("not a hybrid host: no v1-only view to make here")
	}
	_, c := daemonInOwnMountNS(t, "v1", "umount /sys/fs/cgroup/unified")

	out := c.ok(t, "run", "--rm", "-m", "64m", "--pids-limit", "5", "busybox", "sh", "-c",
		"cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max; grep -c cgroup2 /proc/mounts || true")
	if f := strings.Fields(out); len(f) != 3 || f[0] != "67108864" || f[1] != "5" || f[2] != "0" {
		t.Errorf("limits and mounts in the container (memory limit, pids.max, cgroup2 mounts): %q", out)
	}
	c.ok(t, "run", "-d", "--name", "v1", "busybox", "sleep", "60")
	id := strings.TrimSpace(c.ok(t, "inspect", "-f", "{{.Id}}", "v1"))
	pid := strings.TrimSpace(c.ok(t, "inspect", "-f", "{{.State.Pid}}", "v1"))
	mem := filepath.Join("/sys/fs/cgroup/memory/wharf", id)
	if b, err := os.ReadFile(filepath.Join(mem, "cgroup.procs")); err != nil || !strings.Contains(string(b), pid) {
		t.Errorf("container's memory cgroup %s: %q %v, want pid %s", mem, b, err, pid)
	}
	if _, err := os.Stat(filepath.Join("/sys/fs/cgroup/unified/wharf", id)); !os.IsNotExist(err) {
		t.Errorf("a cgroup2 directory was made on a v1-only view (%v)", err)
	}
	if st := c.ok(t, "stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}", "v1"); strings.TrimSpace(st) != "v1 1" {
		t.Errorf("stats: %q", st)
	}
	c.ok(t, "rm", "-f", "v1")
	waitFor(t, func() bool { _, err := os.Stat(mem); return os.IsNotExist(err) })
}

// daemonInOwnMountNS starts a daemon, with busybox loaded, in a mount namespace of its own where setup (a
// shell command) has run first. The namespace, and the netns files in it, go when the daemon and its shims
// are gone: at the end of the test, which removes everything else it made.
func daemonInOwnMountNS(t *testing.T, bridgeSuffix, setup string) (*daemon, cli) {
	t.Helper()
	root := t.TempDir()
	d := &daemon{bin: shared.bin, dataRoot: filepath.Join(root, "data"), execRoot: filepath.Join(root, "exec"),
		sock: filepath.Join(root, "wharf.sock"), bridge: bridgeName(bridgeSuffix), logPath: filepath.Join(root, "daemon.log"),
		wrap: []string{"unshare", "-m", "--propagation", "private", "sh", "-c", setup + ` && exec "$0" "$@"`}}
	if err := d.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.stop(true) })
	if err := loadBaseImages(d, "busybox"); err != nil {
		t.Fatal(err)
	}
	return d, cli{name: "wharf", path: d.bin, host: d.host()}
}
