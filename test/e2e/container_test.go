package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRunOutputAndExitCodes(t *testing.T) {
	forEachClient(t, func(t *testing.T, c cli) {
		r := c.run(t, "", "run", "--rm", "busybox", "echo", "hello from wharf")
		if r.Code != 0 || strings.TrimSpace(r.Stdout) != "hello from wharf" {
			t.Fatalf("echo: %s", r)
		}
		if r := c.run(t, "", "run", "--rm", "busybox", "sh", "-c", "exit 3"); r.Code != 3 {
			t.Errorf("exit 3: %s", r)
		}
		r = c.run(t, "", "run", "--rm", "busybox", "sh", "-c", "echo oops >&2")
		if r.Code != 0 || strings.TrimSpace(r.Stderr) != "oops" || r.Stdout != "" {
			t.Errorf("stderr: %s", r)
		}
		r = c.run(t, "", "run", "--rm", "busybox", "/no/such/binary")
		if r.Code != 127 || !strings.Contains(r.Stderr, "no such file or directory") && !strings.Contains(r.Stderr, "not found") {
			t.Errorf("missing binary: want 127: %s", r)
		}
		r = c.run(t, "", "run", "--rm", "busybox", "/etc/passwd")
		if r.Code != 126 || !strings.Contains(r.Stderr, "permission denied") {
			t.Errorf("not executable: want 126: %s", r)
		}
		r = c.run(t, "", "run", "--rm", "--no-such-flag", "busybox")
		if r.Code != 125 {
			t.Errorf("bad flag: want 125: %s", r)
		}
		// A registry on loopback that refuses connections: tests never reach outside this machine.
		r = c.run(t, "", "run", "--rm", "127.0.0.1:1/wharf-nosuchimage")
		if r.Code != 125 || !strings.Contains(r.Stderr, "Unable to find image '127.0.0.1:1/wharf-nosuchimage:latest' locally") {
			t.Errorf("missing image: %s", r)
		}
		r = c.run(t, "hello stdin\n", "run", "--rm", "-i", "busybox", "cat")
		if r.Code != 0 || r.Stdout != "hello stdin\n" {
			t.Errorf("stdin: %s", r)
		}
	})
}

func TestRunConfigMerge(t *testing.T) {
	forEachClient(t, func(t *testing.T, c cli) {
		out := c.ok(t, "run", "--rm", "-e", "FOO=bar", "-w", "/tmp", "-u", "65534", "--hostname", "wharfy", "busybox",
			"sh", "-c", `echo "$FOO $(pwd) $(id -u) $(hostname) $PATH"`)
		want := "bar /tmp 65534 wharfy /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
		if strings.TrimSpace(out) != want {
			t.Errorf("got %q want %q", strings.TrimSpace(out), want)
		}
		envFile := filepath.Join(t.TempDir(), "env")
		os.WriteFile(envFile, []byte("# comment\nA=1\nB=two words\n"), 0o644)
		out = c.ok(t, "run", "--rm", "--env-file", envFile, "busybox", "sh", "-c", `echo "$A|$B"`)
		if strings.TrimSpace(out) != "1|two words" {
			t.Errorf("env-file: %q", out)
		}
		out = c.ok(t, "run", "--rm", "--entrypoint", "echo", "busybox", "via", "entrypoint")
		if strings.TrimSpace(out) != "via entrypoint" {
			t.Errorf("entrypoint: %q", out)
		}
	})
}

func TestIsolationDefaults(t *testing.T) {
	forEachClient(t, func(t *testing.T, c cli) {
		out := c.ok(t, "run", "--rm", "busybox", "sh", "-c", "grep CapEff /proc/self/status; grep NoNewPrivs /proc/self/status; echo pid1=$$; touch /sys/x 2>&1 || true; cat /proc/kcore 2>&1 | head -c 50 | wc -c")
		if !strings.Contains(out, "00000000a80425fb") {
			t.Errorf("capabilities are not Docker's default set: %q", out)
		}
		if !strings.Contains(out, "pid1=1") {
			t.Errorf("not in a new pid namespace: %q", out)
		}
		if !strings.Contains(out, "Read-only file system") {
			t.Errorf("/sys is writable: %q", out)
		}
		if !shared.real && !strings.Contains(out, "NoNewPrivs:\t1") { // Wharf sets it by default; dockerd does not
			t.Errorf("no-new-privileges not set: %q", out)
		}
		out = c.ok(t, "run", "--rm", "--network", "none", "busybox", "ls", "/sys/class/net")
		if strings.Fields(out)[0] != "lo" || len(strings.Fields(out)) != 1 {
			t.Errorf("--network none: interfaces %q", out)
		}
		r := c.run(t, "", "run", "--rm", "--read-only", "busybox", "touch", "/x")
		if r.Code == 0 || !strings.Contains(r.Stderr, "Read-only file system") {
			t.Errorf("--read-only: %s", r)
		}
		out = c.ok(t, "run", "--rm", "busybox", "cat", "/etc/hostname", "/etc/hosts")
		if !strings.Contains(out, "127.0.0.1\tlocalhost") {
			t.Errorf("/etc/hosts: %q", out)
		}
	})
}

func TestResourceLimits(t *testing.T) {
	forEachClient(t, func(t *testing.T, c cli) {
		// 64 MiB limit: allocating 200 MiB in memory (tmpfs-backed /dev/shm counts against the cgroup) is killed.
		r := c.run(t, "", "run", "--rm", "-m", "64m", "busybox", "sh", "-c", "head -c 200m /dev/zero | tail > /dev/null")
		if r.Code != 137 && r.Code != 1 {
			t.Errorf("memory limit not enforced: %s", r)
		}
		r = c.run(t, "", "run", "--rm", "--pids-limit", "5", "busybox", "sh", "-c", "for i in 1 2 3 4 5 6 7 8; do sleep 2 & done; wait")
		if !strings.Contains(r.Stderr, "can't fork") && !strings.Contains(r.Stderr, "Resource temporarily unavailable") {
			t.Errorf("pids limit not enforced: %s", r)
		}
	})
}

func TestDetachedLifecycle(t *testing.T) {
	forEachClient(t, func(t *testing.T, c cli) {
		name := uniqueName(t, c)
		id := strings.TrimSpace(c.ok(t, "run", "-d", "--name", name, "-l", "wharf.test=1", "busybox", "sh", "-c", "echo started; trap 'echo bye; exit 0' TERM; while true; do sleep 0.1; done"))
		defer c.run(t, "", "rm", "-f", name)
		if len(id) != 64 {
			t.Fatalf("run -d printed %q", id)
		}
		ps := c.ok(t, "ps", "--filter", "name="+name, "--format", "{{.Names}} {{.Status}}")
		if !strings.HasPrefix(ps, name+" Up") {
			t.Errorf("ps: %q", ps)
		}
		waitFor(t, func() bool { return strings.Contains(c.ok(t, "logs", name), "started") })
		if r := c.run(t, "", "run", "-d", "--name", name, "busybox", "true"); r.Code != 125 || !strings.Contains(r.Stderr, `Conflict. The container name "/`+name+`" is already in use`) {
			t.Errorf("name conflict: %s", r)
		}
		if r := c.run(t, "", "rm", name); r.Code == 0 || !strings.Contains(strings.ToLower(r.Stderr), "stop the container before") {
			t.Errorf("rm running: %s", r)
		}
		top := c.ok(t, "top", name)
		if !strings.Contains(top, "PID") || !strings.Contains(top, "sleep") && !strings.Contains(top, "sh -c") {
			t.Errorf("top: %q", top)
		}
		c.ok(t, "stop", "-t", "5", name)
		if st := strings.TrimSpace(c.ok(t, "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", name)); st != "exited 0" {
			t.Errorf("after stop: %q", st)
		}
		if !strings.Contains(c.ok(t, "logs", name), "bye") {
			t.Errorf("TERM handler did not run")
		}
		c.ok(t, "start", name)
		if st := strings.TrimSpace(c.ok(t, "inspect", "-f", "{{.State.Running}}", name)); st != "true" {
			t.Errorf("after start: %q", st)
		}
		c.ok(t, "restart", "-t", "1", name)
		c.ok(t, "pause", name)
		if st := strings.TrimSpace(c.ok(t, "inspect", "-f", "{{.State.Status}}", name)); st != "paused" {
			t.Errorf("after pause: %q", st)
		}
		c.ok(t, "unpause", name)
		c.ok(t, "kill", "-s", "KILL", name)
		if code := strings.TrimSpace(c.ok(t, "wait", name)); code != "137" {
			t.Errorf("wait after kill: %q", code)
		}
		c.ok(t, "rename", name, name+"-renamed")
		c.ok(t, "rm", name+"-renamed")
		if r := c.run(t, "", "inspect", name+"-renamed"); r.Code != 1 || !strings.Contains(r.Stderr, "No such object") && !strings.Contains(r.Stderr, "No such container") {
			t.Errorf("inspect removed: %s", r)
		}
	})
}

func TestExecAndCp(t *testing.T) {
	forEachClient(t, func(t *testing.T, c cli) {
		name := uniqueName(t, c)
		c.ok(t, "run", "-d", "--name", name, "busybox", "sleep", "60")
		defer c.run(t, "", "rm", "-f", "-t", "0", name)
		out := c.ok(t, "exec", "-e", "X=y", "-w", "/tmp", name, "sh", "-c", `echo "$X $(pwd)"`)
		if strings.TrimSpace(out) != "y /tmp" {
			t.Errorf("exec: %q", out)
		}
		if r := c.run(t, "", "exec", name, "sh", "-c", "exit 7"); r.Code != 7 {
			t.Errorf("exec exit code: %s", r)
		}
		src := filepath.Join(t.TempDir(), "hello.txt")
		os.WriteFile(src, []byte("copied in\n"), 0o644)
		c.ok(t, "cp", src, name+":/tmp/")
		if out := c.ok(t, "exec", name, "cat", "/tmp/hello.txt"); out != "copied in\n" {
			t.Errorf("cp in: %q", out)
		}
		dst := t.TempDir()
		c.ok(t, "cp", name+":/etc/hostname", dst)
		if b, err := os.ReadFile(filepath.Join(dst, "hostname")); err != nil || len(b) == 0 {
			t.Errorf("cp out: %v %q", err, b)
		}
	})
}

func TestPublishedPort(t *testing.T) {
	forEachClient(t, func(t *testing.T, c cli) {
		name := uniqueName(t, c)
		port := "18" + map[string]string{"docker": "081", "wharf": "082"}[c.name]
		c.ok(t, "run", "-d", "--name", name, "-p", "127.0.0.1:"+port+":80", "busybox", "sh", "-c",
			"mkdir -p /www && echo served-by-busybox > /www/index.html && httpd -f -p 80 -h /www")
		defer c.run(t, "", "rm", "-f", name)
		body := httpGet(t, "http://127.0.0.1:"+port+"/")
		if !strings.Contains(body, "served-by-busybox") {
			t.Errorf("GET: %q", body)
		}
		if out := c.ok(t, "port", name); !strings.Contains(out, "80/tcp -> 127.0.0.1:"+port) {
			t.Errorf("port: %q", out)
		}
		r := c.run(t, "", "run", "-d", "-p", "127.0.0.1:"+port+":80", "busybox", "sleep", "5")
		if r.Code != 125 || !strings.Contains(r.Stderr, "already allocated") && !strings.Contains(r.Stderr, "address already in use") {
			t.Errorf("second bind of the same port: %s", r)
		}
		if id := strings.TrimSpace(r.Stdout); id != "" {
			c.run(t, "", "rm", "-f", id)
		}
	})
}

func TestVolumesAndRestartPolicy(t *testing.T) {
	forEachClient(t, func(t *testing.T, c cli) {
		vol := uniqueName(t, c) + "-vol"
		c.ok(t, "volume", "create", vol)
		defer c.run(t, "", "volume", "rm", "-f", vol)
		c.ok(t, "run", "--rm", "-v", vol+":/data", "busybox", "sh", "-c", "echo persisted > /data/f")
		if out := c.ok(t, "run", "--rm", "-v", vol+":/data:ro", "busybox", "cat", "/data/f"); out != "persisted\n" {
			t.Errorf("volume content: %q", out)
		}
		if !strings.Contains(c.ok(t, "volume", "ls", "-q"), vol) {
			t.Errorf("volume ls misses %s", vol)
		}
		dir := t.TempDir()
		c.ok(t, "run", "--rm", "-v", dir+":/host", "busybox", "sh", "-c", "echo from-container > /host/out")
		if b, _ := os.ReadFile(filepath.Join(dir, "out")); string(b) != "from-container\n" {
			t.Errorf("bind mount: %q", b)
		}
		name := uniqueName(t, c)
		c.ok(t, "run", "-d", "--name", name, "--restart", "on-failure:2", "busybox", "sh", "-c", "echo run; exit 1")
		defer c.run(t, "", "rm", "-f", name)
		waitFor(t, func() bool {
			return strings.TrimSpace(c.ok(t, "inspect", "-f", "{{.RestartCount}} {{.State.Status}}", name)) == "2 exited"
		})
		if n := strings.Count(c.ok(t, "logs", name), "run"); n != 3 {
			t.Errorf("on-failure:2 ran %d times, want 3", n)
		}
	})
}

// TestVolumeCopiesImageContent: an empty volume mounted over a directory of the image starts with that
// directory's content (owner and mode kept); a volume with content, a bind and nocopy are left alone.
func TestVolumeCopiesImageContent(t *testing.T) {
	forEachClient(t, func(t *testing.T, c cli) {
		vol := uniqueName(t, c) + "-vol"
		defer c.run(t, "", "volume", "rm", "-f", vol, vol+"-nocopy")
		want := c.ok(t, "run", "--rm", "busybox", "sh", "-c", "ls -ln /bin | head -5; stat -c '%a %u' /bin")
		if got := c.ok(t, "run", "--rm", "-v", vol+":/bin", "busybox", "sh", "-c", "ls -ln /bin | head -5; stat -c '%a %u' /bin"); got != want {
			t.Errorf("volume over /bin:\n%s\nwant the image's:\n%s", got, want)
		}
		// now it has content: a mount elsewhere sees the copied files, nothing is copied again
		if out := c.ok(t, "run", "--rm", "-v", vol+":/data", "busybox", "sh", "-c", "ls /data | grep -c . ; ls /data/group 2>&1 || true"); !strings.HasPrefix(out, strings.TrimSpace(c.ok(t, "run", "--rm", "busybox", "sh", "-c", "ls /bin | grep -c ."))) || !strings.Contains(out, "No such file") {
			t.Errorf("second mount: %q", out)
		}
		// (hosts, hostname and resolv.conf are mounted into /etc whatever is there: look for passwd)
		if out := c.ok(t, "run", "--rm", "--mount", "type=volume,source="+vol+"-nocopy,target=/etc,volume-nocopy", "busybox", "ls", "/etc"); strings.Contains(out, "passwd") {
			t.Errorf("nocopy volume has %q", out)
		}
		dir := t.TempDir()
		if out := c.ok(t, "run", "--rm", "-v", dir+":/etc", "busybox", "ls", "/etc"); strings.Contains(out, "passwd") {
			t.Errorf("a bind mount got the image's content: %q", out)
		}
	})
}

// TestLogRotationAndDrivers: --log-opt max-size/max-file rotate the json-file log (docker logs still shows the
// newest lines, in order), --log-driver none keeps no log, bad options fail as dockerd's do.
func TestLogRotationAndDrivers(t *testing.T) {
	forEachClient(t, func(t *testing.T, c cli) {
		name := uniqueName(t, c)
		defer c.run(t, "", "rm", "-f", name, name+"-none")
		c.ok(t, "run", "-d", "--name", name, "--log-opt", "max-size=1k", "--log-opt", "max-file=2", "busybox",
			"sh", "-c", "i=0; while [ $i -lt 200 ]; do i=$((i+1)); echo line $i; done")
		waitFor(t, func() bool { return strings.TrimSpace(c.ok(t, "inspect", "-f", "{{.State.Status}}", name)) == "exited" })
		logs := c.ok(t, "logs", name)
		if !strings.HasSuffix(logs, "line 199\nline 200\n") || strings.HasPrefix(logs, "line 1\n") {
			t.Errorf("logs after rotation: %q", logs)
		}
		lines := strings.Split(strings.TrimSuffix(logs, "\n"), "\n")
		for i := 1; i < len(lines); i++ { // complete and in order across the rotated files
			var a, b int
			fmt.Sscanf(lines[i-1], "line %d", &a)
			fmt.Sscanf(lines[i], "line %d", &b)
			if b != a+1 {
				t.Fatalf("logs out of order or with a gap at %q → %q", lines[i-1], lines[i])
			}
		}
		if tail := c.ok(t, "logs", "--tail", "3", name); tail != "line 198\nline 199\nline 200\n" {
			t.Errorf("logs --tail 3: %q", tail)
		}
		logPath := strings.TrimSpace(c.ok(t, "inspect", "-f", "{{.LogPath}}", name))
		for _, p := range []string{logPath, logPath + ".1"} {
			// (dockerd rotates once a write took the file past max-size: allow one entry more)
			if st, err := os.Stat(p); err != nil || st.Size() > 1024+200 {
				t.Errorf("%s: %v (want about 1k at most)", p, err)
			}
		}
		if _, err := os.Stat(logPath + ".2"); !os.IsNotExist(err) {
			t.Errorf("max-file=2 kept a third file: %v", err)
		}

		c.ok(t, "run", "--name", name+"-none", "--log-driver", "none", "busybox", "echo", "hi")
		if r := c.run(t, "", "logs", name+"-none"); r.Code == 0 || !strings.Contains(r.Stderr, "configured logging driver does not support reading") {
			t.Errorf("logs of a none-driver container: %s", r)
		}
		if r := c.run(t, "", "run", "--rm", "--log-opt", "foo=bar", "busybox", "true"); r.Code != 125 || !strings.Contains(r.Stderr, "unknown log opt 'foo' for json-file log driver") {
			t.Errorf("unknown log opt: %s", r)
		}
		if r := c.run(t, "", "run", "--rm", "--log-opt", "max-size=abc", "busybox", "true"); r.Code != 125 || !strings.Contains(r.Stderr, "invalid size: 'abc'") {
			t.Errorf("bad max-size: %s", r)
		}
	})
}

// TestResourceOptions: --ulimit, --sysctl, --shm-size and --device reach the container; bad values fail as
// with dockerd.
func TestResourceOptions(t *testing.T) {
	forEachClient(t, func(t *testing.T, c cli) {
		if out := c.ok(t, "run", "--rm", "--ulimit", "nofile=1024:2048", "--ulimit", "nproc=500:600", "busybox", "sh", "-c", "ulimit -n; ulimit -Hn; ulimit -u"); out != "1024\n2048\n500\n" {
			t.Errorf("ulimits: %q", out)
		}
		if out := c.ok(t, "run", "--rm", "--sysctl", "net.ipv4.ip_unprivileged_port_start=1000", "--sysctl", "kernel.shmmni=1234", "busybox", "cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start", "/proc/sys/kernel/shmmni"); out != "1000\n1234\n" {
			t.Errorf("sysctls: %q", out)
		}
		if out := c.ok(t, "run", "--rm", "--shm-size", "16m", "busybox", "sh", "-c", "df -k /dev/shm | tail -1"); !strings.Contains(out, " 16384 ") {
			t.Errorf("--shm-size 16m: %q", out)
		}
		if out := c.ok(t, "run", "--rm", "busybox", "sh", "-c", "df -k /dev/shm | tail -1"); !strings.Contains(out, " 65536 ") {
			t.Errorf("default /dev/shm: %q", out)
		}
		if out := c.ok(t, "run", "--rm", "--device", "/dev/null:/dev/xnull:rw", "busybox", "sh", "-c", "ls -l /dev/xnull && echo x > /dev/xnull && echo written"); !strings.HasPrefix(out, "c") || !strings.Contains(out, "written") {
			t.Errorf("--device: %q", out)
		}
		if r := c.run(t, "", "run", "--rm", "--device", "/dev/nonexistent-wharf", "busybox", "true"); r.Code != 127 || !strings.Contains(r.Stderr, `error gathering device information while adding custom device "/dev/nonexistent-wharf": no such file or directory`) {
			t.Errorf("missing device: %s", r)
		}
		if r := c.run(t, "", "run", "--rm", "--sysctl", "kernel.hostname=x", "busybox", "true"); r.Code != 125 || !strings.Contains(r.Stderr, "is not allowed") {
			t.Errorf("host sysctl: %s", r)
		}
		if r := c.run(t, "", "run", "--rm", "--network", "host", "--sysctl", "net.ipv4.ip_forward=1", "busybox", "true"); r.Code != 125 || !strings.Contains(r.Stderr, "not allowed in host network namespace") {
			t.Errorf("net sysctl with host network: %s", r)
		}
	})
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("condition not met within 30s")
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	var lastErr error
	for i := 0; i < 100; i++ {
		resp, err := http.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return string(b)
		}
		lastErr = err
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("GET %s: %v", url, lastErr)
	return ""
}
