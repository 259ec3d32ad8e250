package e2e

import (
	"strings"
	"testing"
)

func TestAttachAndCPULimit(t *testing.T) {
	forEachClient(t, func(t *testing.T, c cli) {
		name := uniqueName(t, c)
		c.ok(t, "run", "-d", "--name", name, "busybox", "sh", "-c", "sleep 1; echo attached-output; sleep 1; exit 4")
		defer c.run(t, "", "rm", "-f", name)
		r := c.run(t, "", "attach", "--no-stdin", name)
		if !strings.Contains(r.Stdout, "attached-output") || r.Code != 4 {
			t.Errorf("attach: %s", r)
		}
		out := c.ok(t, "run", "--rm", "--cpus", "0.5", "busybox", "sh", "-c",
			"cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu.max 2>/dev/null; true")
		if !strings.Contains(out, "50000") {
			t.Errorf("--cpus 0.5: cgroup quota %q", out)
		}
	})
}
