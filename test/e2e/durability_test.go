package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestDaemonKill9KeepsContainers: containers outlive a kill -9 of the daemon, their output is still logged
// while it is down, and the restarted daemon reattaches (ps, logs, stop work).
func TestDaemonKill9KeepsContainers(t *testing.T) {
	d, c := ownDaemon(t, "1")
	c.ok(t, "run", "-d", "--name", "ticker", "busybox", "sh", "-c", "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.1; done")
	c.ok(t, "run", "-d", "--name", "always", "--restart", "always", "busybox", "sh", "-c", "sleep 1; exit 1")
	waitFor(t, func() bool { return strings.Contains(c.ok(t, "logs", "ticker"), "tick 3") })
	// Once the container runs, its shim has exec'd into the small monitor program (same pid).
	id := strings.TrimSpace(c.ok(t, "inspect", "-f", "{{.Id}}", "ticker"))
	shimPid, err := os.ReadFile(filepath.Join(d.execRoot, "runtime", id, "shim.pid"))
	if err != nil {
		t.Fatal(err)
	}
	if exe, err := os.Readlink("/proc/" + strings.TrimSpace(string(shimPid)) + "/exe"); err != nil || filepath.Base(exe) != "wharf-monitor" {
		t.Errorf("the shim of a running container is %q (%v), want wharf-monitor", exe, err)
	}

	// a --rm container that ends while no daemon runs is removed by the next one (as dockerd does)
	c.ok(t, "run", "-d", "--rm", "--name", "rm-while-down", "busybox", "sleep", "0.3")

	d.kill9()
	time.Sleep(700 * time.Millisecond) // the container keeps writing while no daemon runs
	if err := d.start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return !strings.Contains(c.ok(t, "ps", "-a", "--format", "{{.Names}}"), "rm-while-down") })
	ps := c.ok(t, "ps", "--format", "{{.Names}} {{.State}}")
	if !strings.Contains(ps, "ticker running") {
		t.Fatalf("after restart, ps: %q", ps)
	}
	logs := c.ok(t, "logs", "ticker")
	if !strings.Contains(logs, "tick 8") {
		t.Errorf("lines written while the daemon was down are missing: %q", logs)
	}
	waitFor(t, func() bool { return strings.Contains(c.ok(t, "logs", "ticker"), "tick 15") })
	// The restart policy still applies after the daemon restarted.
	waitFor(t, func() bool {
		n := strings.TrimSpace(c.ok(t, "inspect", "-f", "{{.RestartCount}}", "always"))
		return n != "0" && n != ""
	})
	c.ok(t, "stop", "-t", "1", "ticker")
	if st := strings.TrimSpace(c.ok(t, "inspect", "-f", "{{.State.Status}}", "ticker")); st != "exited" {
		t.Errorf("stop after reattach: %q", st)
	}
	c.ok(t, "rm", "-f", "ticker", "always")
}

// TestRestoreSweepsOrphans pins the crash window of the background teardown (internal/engine/teardown.go):
// a --rm container's record is deleted before its runtime state, network endpoint, rootfs mount and
// folders are released. The window is made by hand: kill -9 the daemon while a container runs, delete
// its record, start the daemon again. Nothing of it may be left: no process, shim, state folder,
// cgroup, netns, veth, mount, writable layer or container folder.
func TestRestoreSweepsOrphans(t *testing.T) {
	d, c := ownDaemon(t, "sw")
	id := strings.TrimSpace(c.ok(t, "run", "-d", "--rm", "-p", "127.0.0.1::80", "busybox", "sleep", "600"))
	pid := strings.TrimSpace(c.ok(t, "inspect", "-f", "{{.State.Pid}}", id))
	shimPid, err := os.ReadFile(filepath.Join(d.execRoot, "runtime", id, "shim.pid"))
	if err != nil {
		t.Fatal(err)
	}
	d.kill9()
	db, err := bolt.Open(filepath.Join(d.dataRoot, "engine.db"), 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte("containers")).Delete([]byte(id)) }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if err := d.start(); err != nil {
		t.Fatal(err)
	}
	if out := c.ok(t, "ps", "-aq"); strings.TrimSpace(out) != "" {
		t.Errorf("ps -a after restart: %q", out)
	}
	waitFor(t, func() bool {
		_, e1 := os.Stat("/proc/" + pid)
		_, e2 := os.Stat("/proc/" + strings.TrimSpace(string(shimPid)))
		return os.IsNotExist(e1) && os.IsNotExist(e2)
	})
	for _, p := range []string{
		filepath.Join(d.execRoot, "runtime", id),
		filepath.Join(d.execRoot, "netns", id),
		filepath.Join(d.dataRoot, "snapshots", "containers", id),
		filepath.Join(d.dataRoot, "containers", id),
	} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s is left after restore (%v)", p, err)
		}
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mi), id) {
		t.Errorf("a mount of %s is left", id[:12])
	}
	cg, _ := filepath.Glob("/sys/fs/cgroup/*/wharf/" + id)
	cg2, _ := filepath.Glob("/sys/fs/cgroup/wharf/" + id)
	if len(cg)+len(cg2) > 0 {
		t.Errorf("cgroups left: %v %v", cg, cg2)
	}
	links, _ := exec.Command("ip", "-o", "link", "show", "master", d.bridge).Output()
	if strings.TrimSpace(string(links)) != "" {
		t.Errorf("veths still on %s: %s", d.bridge, links)
	}
	// The freed host port and name can be used again.
	c.ok(t, "run", "--rm", "busybox", "true")
}

// TestIdleShim: after a start, one shim waits idle for the next container (internal/runtime/warmshim_linux.go),
// at the lowest CPU priority; the containers it then runs get normal priority; one killed from outside is
// replaced by a normal start; kill -9 of the daemon makes it leave (its control pipe reaches EOF).
func TestIdleShim(t *testing.T) {
	d, c := ownDaemon(t, "iw")
	idle := func() []int {
		var pids []int
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
			if err == nil && string(b) == filepath.Join(d.execRoot, "bin", "wharf-shim")+"\x00__shim\x00"+filepath.Join(d.execRoot, "runtime")+"\x00-\x00" {
				var pid int
				fmt.Sscan(e.Name(), &pid)
				pids = append(pids, pid)
			}
		}
		return pids
	}
	c.ok(t, "run", "--rm", "busybox", "true")
	waitFor(t, func() bool { return len(idle()) == 1 })
	pid := idle()[0]
	if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err != nil || strings.Fields(string(st))[18] != "19" {
		t.Errorf("idle shim's nice: %v %q", err, st)
	}
	// the next container is started by it, with normal priority
	out := c.ok(t, "run", "--rm", "busybox", "sh", "-c", `cut -d" " -f19 /proc/self/stat`)
	if strings.TrimSpace(out) != "0" {
		t.Errorf("container's nice: %q, want 0", out)
	}
	waitFor(t, func() bool { p := idle(); return len(p) == 1 && p[0] != pid })
	syscall.Kill(idle()[0], syscall.SIGKILL)
	if out := c.ok(t, "run", "--rm", "busybox", "echo", "after-kill"); strings.TrimSpace(out) != "after-kill" {
		t.Errorf("run after the idle shim was killed: %q", out)
	}
	waitFor(t, func() bool { return len(idle()) == 1 })
	d.kill9()
	waitFor(t, func() bool { return len(idle()) == 0 })
	if err := d.start(); err != nil {
		t.Fatal(err)
	}
}
