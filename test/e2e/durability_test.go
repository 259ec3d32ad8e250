package e2e

import (
	"strings"
	"testing"
	"time"
)

// TestDaemonKill9KeepsContainers: containers outlive a kill -9 of the daemon, their output is still logged
// while it is down, and the restarted daemon reattaches (ps, logs, stop work).
func TestDaemonKill9KeepsContainers(t *testing.T) {
	needWharf(t)
	d, err := startDaemon(shared.bin, bridgeName("1"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.stop(true)
	if err := loadBaseImages(d, "busybox"); err != nil {
		t.Fatal(err)
	}
	c := cli{name: "wharf", path: d.bin, host: d.host()}
	c.ok(t, "run", "-d", "--name", "ticker", "busybox", "sh", "-c", "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.1; done")
	c.ok(t, "run", "-d", "--name", "always", "--restart", "always", "busybox", "sh", "-c", "sleep 1; exit 1")
	waitFor(t, func() bool { return strings.Contains(c.ok(t, "logs", "ticker"), "tick 3") })

	d.kill9()
	time.Sleep(700 * time.Millisecond) // the container keeps writing while no daemon runs
	if err := d.start(); err != nil {
		t.Fatal(err)
	}
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
