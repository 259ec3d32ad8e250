package runtime

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/runc/libcontainer"
)

func TestEchoAndLog(t *testing.T) {
	r := setup(t)
	spec := baseSpec(t, "sh", "-c", "echo hi; echo oops >&2")
	st, out, errOut := runOut(t, r, spec)
	if st.Code != 0 || st.OOMKilled || st.ExitedAt.IsZero() {
		t.Fatalf("status %+v", st)
	}
	if out != "hi\n" || errOut != "oops\n" {
		t.Fatalf("stdout %q stderr %q", out, errOut)
	}
	raw, _ := os.ReadFile(spec.LogPath)
	if !strings.Contains(string(raw), `{"log":"hi\n","stream":"stdout","time":"`) {
		t.Fatalf("log file:\n%s", raw)
	}
}

func TestExitCode(t *testing.T) {
	r := setup(t)
	st, _, _ := runOut(t, r, baseSpec(t, "sh", "-c", "exit 3"))
	if st.Code != 3 {
		t.Fatalf("code %d", st.Code)
	}
}

func TestStartErrors(t *testing.T) {
	r := setup(t)
	for _, tc := range []struct {
		args []string
		user string
		code int
		msg  string
	}{
		{[]string{"nope"}, "", 127, `exec: "nope": executable file not found in $PATH`},
		{[]string{"/nope"}, "", 127, `/nope`},
		{[]string{"/etc/notexec"}, "", 126, "permission denied"},
		{[]string{"/etc"}, "", 126, ""},
		{[]string{"true"}, "nobodyhere", 125, "unable to find user nobodyhere"},
	} {
		spec := baseSpec(t, tc.args...)
		spec.User = tc.user
		_, err := r.Start(context.Background(), spec)
		var se *StartError
		if !errors.As(err, &se) {
			t.Fatalf("%v: got %v, want a StartError", tc.args, err)
		}
		t.Logf("%v: %d %s", tc.args, se.Code, se.Msg)
		if se.Code != tc.code || !strings.Contains(se.Msg, tc.msg) {
			t.Errorf("%v: code %d msg %q; want %d and %q", tc.args, se.Code, se.Msg, tc.code, tc.msg)
		}
		if _, err := os.Stat(filepath.Join(r.Root(), spec.ID)); !os.IsNotExist(err) {
			t.Errorf("%v: state left behind", tc.args)
		}
		assertNoCgroups(t, r, spec.ID)
		os.Remove(spec.LogPath)
	}
}

// assertNoCgroups checks that no hierarchy has the container's cgroup.
func assertNoCgroups(t *testing.T, r *Runtime, id string) {
	t.Helper()
	matches, _ := filepath.Glob("/sys/fs/cgroup/*" + r.cgroupParent + "/" + id)
	m2, _ := filepath.Glob("/sys/fs/cgroup" + r.cgroupParent + "/" + id)
	if len(matches)+len(m2) > 0 {
		t.Errorf("cgroups left: %v %v", matches, m2)
	}
}

func TestMemoryLimitOOM(t *testing.T) {
	r := setup(t)
	spec := baseSpec(t, "sh", "-c", "head -c 200m /dev/zero | tail")
	spec.Memory = 64 << 20
	st, _, _ := runOut(t, r, spec)
	if st.Code != 137 || !st.OOMKilled {
		t.Fatalf("status %+v, want 137 and OOMKilled", st)
	}
	// under the limit: fine
	spec = baseSpec(t, "sh", "-c", "head -c 20m /dev/zero | tail | wc -c")
	spec.Memory = 64 << 20
	st, out, _ := runOut(t, r, spec)
	if st.Code != 0 || st.OOMKilled || strings.TrimSpace(out) != "20971520" {
		t.Fatalf("status %+v out %q", st, out)
	}
}

func TestPidsLimit(t *testing.T) {
	r := setup(t)
	// the inner shell dies at its first failed fork; the outer one goes on
	spec := baseSpec(t, "sh", "-c", "sh -c 'for i in 1 2 3 4 5 6 7 8 9 10 11 12; do sleep 100 & done'; echo spawned; sleep 100")
	spec.PidsLimit = 6
	task := start(t, r, spec)
	waitFor(t, func() bool {
		if !strings.Contains(logText(t, spec.LogPath, ""), "spawned") {
			t.Logf("log: %q", logText(t, spec.LogPath, ""))
			return false
		}
		return true
	})
	pids, err := task.Pids()
	if err != nil {
		t.Fatal(err)
	}
	if len(pids) > 6 {
		t.Fatalf("%d processes under a pids limit of 6", len(pids))
	}
	if !strings.Contains(logText(t, spec.LogPath, "stderr"), "fork") {
		t.Fatalf("no fork failure: %q", logText(t, spec.LogPath, ""))
	}
	s, err := task.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if s.PidsLimit != 6 || s.PidsCurrent == 0 || s.PidsCurrent > 6 {
		t.Fatalf("stats %+v", s)
	}
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestCapabilities(t *testing.T) {
	r := setup(t)
	caps := func(mod func(*Spec)) (string, string) {
		spec := baseSpec(t, "sh", "-c", "grep -E '^Cap(Eff|Bnd)' /proc/self/status")
		mod(&spec)
		st, out, _ := runOut(t, r, spec)
		if st.Code != 0 {
			t.Fatalf("exit %d", st.Code)
		}
		var eff, bnd string
		for _, l := range strings.Split(out, "\n") {
			f := strings.Fields(l)
			if len(f) == 2 && f[0] == "CapEff:" {
				eff = f[1]
			}
			if len(f) == 2 && f[0] == "CapBnd:" {
				bnd = f[1]
			}
		}
		return eff, bnd
	}
	if eff, bnd := caps(func(*Spec) {}); eff != "00000000a80425fb" || bnd != eff {
		t.Errorf("default: CapEff %s CapBnd %s, want Docker's 00000000a80425fb", eff, bnd)
	}
	if eff, _ := caps(func(s *Spec) { s.CapAdd = []string{"NET_ADMIN"}; s.CapDrop = []string{"cap_chown"} }); eff != "00000000a80435fa" {
		t.Errorf("+NET_ADMIN -CHOWN: CapEff %s", eff)
	}
	if eff, _ := caps(func(s *Spec) { s.CapDrop = []string{"ALL"}; s.CapAdd = []string{"KILL"} }); eff != "0000000000000020" {
		t.Errorf("drop ALL add KILL: CapEff %s", eff)
	}
	own := readStatus(t, "/proc/self/status", "CapBnd")
	if eff, _ := caps(func(s *Spec) { s.Privileged = true }); eff != own {
		t.Errorf("privileged: CapEff %s, want our bounding set %s", eff, own)
	}
	if eff, _ := caps(func(s *Spec) { s.CapAdd = []string{"ALL"} }); eff != own {
		t.Errorf("add ALL: CapEff %s, want our bounding set %s", eff, own)
	}
	if eff, bnd := caps(func(s *Spec) { s.User = "app" }); eff != "0000000000000000" || bnd != "00000000a80425fb" {
		t.Errorf("non-root: CapEff %s CapBnd %s", eff, bnd)
	}
	spec := baseSpec(t, "true")
	spec.CapAdd = []string{"NOT_A_CAP"}
	if _, err := r.Start(context.Background(), spec); err == nil || !strings.Contains(err.Error(), "NOT_A_CAP") {
		t.Errorf("unknown capability: %v", err)
	}
}

func readStatus(t testing.TB, path, field string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func TestConfinement(t *testing.T) {
	r := setup(t)
	script := `
test -s /proc/kcore || echo kcore-masked
wc -c < /proc/timer_list
ls /sys/firmware | wc -l
touch /sys/kernel/x 2>/dev/null || echo sys-ro
echo 1 > /proc/sysrq-trigger 2>/dev/null || echo sysrq-ro
echo 1 > /proc/sys/kernel/domainname 2>/dev/null || echo procsys-ro
grep -q ' /sys/fs/cgroup/memory .*ro,' /proc/self/mountinfo && echo cgroup-ro
grep NoNewPrivs /proc/self/status
df -k /dev/shm | tail -1 | awk '{print "shm", $2}'
ls /dev | sort | tr '\n' ' '; echo
hostname
ulimit -n
mknod /dev/sda1 b 8 1 && (head -c 1 /dev/sda1 >/dev/null 2>&1 || echo blockdev-denied)
`
	spec := baseSpec(t, "sh", "-c", script)
	st, out, errOut := runOut(t, r, spec)
	if st.Code != 0 {
		t.Fatalf("exit %d: %s %s", st.Code, out, errOut)
	}
	for _, want := range []string{"kcore-masked\n0\n0\n", "sys-ro", "sysrq-ro", "procsys-ro", "cgroup-ro", "NoNewPrivs:\t1", "shm 65536",
		"fd full", "mqueue", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin", "stdout", "tty", "urandom", "zero",
		spec.ID[:12] + "\n", "blockdev-denied"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	lim := ownHardLimit(7 /* RLIMIT_NOFILE */)
	if !strings.Contains(out, "\n"+strconvU(min(lim, 1048576))+"\n") {
		t.Errorf("nofile limit not %d:\n%s", min(lim, 1048576), out)
	}

	// privileged: none of that
	spec = baseSpec(t, "sh", "-c", "test $(wc -c < /proc/timer_list) -gt 0 && echo timer_list-visible; touch /sys/kernel/x 2>&1 | grep -q Read-only || echo sys-rw; grep NoNewPrivs /proc/self/status")
	spec.Privileged = true
	_, out, _ = runOut(t, r, spec)
	for _, want := range []string{"timer_list-visible", "sys-rw", "NoNewPrivs:\t0"} {
		if !strings.Contains(out, want) {
			t.Errorf("privileged: missing %q in:\n%s", want, out)
		}
	}
}

func strconvU(n uint64) string { return strconv.FormatUint(n, 10) }

func TestMountsAndReadonlyRootfs(t *testing.T) {
	r := setup(t)
	host := t.TempDir()
	os.WriteFile(filepath.Join(host, "f"), []byte("from host\n"), 0o644)
	hostFile := filepath.Join(t.TempDir(), "single")
	os.WriteFile(hostFile, []byte("one file\n"), 0o644)
	spec := baseSpec(t, "sh", "-c", `
cat /data/f; echo rw > /data/new && echo data-rw
cat /ro/f; echo x > /ro/x 2>/dev/null || echo ro-ro
cat /etc/single
touch /rootfile 2>/dev/null || echo rootfs-ro
echo t > /scratch/t && echo tmpfs-rw
grep ' /scratch ' /proc/self/mountinfo | grep -q noexec && echo tmpfs-noexec
df -k /scratch | tail -1 | awk '{print "scratch", $2}'
`)
	spec.ReadonlyRootfs = true
	spec.Mounts = []Mount{
		{Source: host, Destination: "/data"},
		{Source: host, Destination: "/ro", ReadOnly: true},
		{Source: hostFile, Destination: "/etc/single", Type: "bind", Options: []string{"ro"}},
		{Destination: "/scratch", Type: "tmpfs", Options: []string{"size=1m"}},
	}
	st, out, errOut := runOut(t, r, spec)
	if st.Code != 0 {
		t.Fatalf("exit %d: %s %s", st.Code, out, errOut)
	}
	for _, want := range []string{"from host\ndata-rw", "from host\nro-ro", "one file", "rootfs-ro", "tmpfs-rw", "tmpfs-noexec", "scratch 1024"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(host, "new")); string(b) != "rw\n" {
		t.Errorf("write through the bind mount: %q", b)
	}
	if _, err := os.Stat(filepath.Join(fixRootfs, "data")); err != nil {
		t.Errorf("mountpoint not created in the rootfs: %v", err)
	}
	os.Remove(filepath.Join(fixRootfs, "data"))
	os.Remove(filepath.Join(fixRootfs, "ro"))
	os.Remove(filepath.Join(fixRootfs, "etc/single"))
	os.Remove(filepath.Join(fixRootfs, "scratch"))

	bad := baseSpec(t, "true")
	bad.Mounts = []Mount{{Source: "/does/not/exist", Destination: "/x"}}
	if _, err := r.Start(context.Background(), bad); err == nil || !strings.Contains(err.Error(), "bind source path does not exist") {
		t.Errorf("missing bind source: %v", err)
	}
}

func TestUserAndEnv(t *testing.T) {
	r := setup(t)
	for _, tc := range []struct {
		user, want string
	}{
		{"", "uid=0(root) gid=0(root)"},
		{"app", "uid=1000(app) gid=1000(app) groups=1000(app),2000(extra)"},
		{"1000", "uid=1000(app) gid=1000(app) groups=1000(app),2000(extra)"},
		{"1000:2000", "uid=1000(app) gid=2000(extra) groups=2000(extra)"},
		{"app:extra", "uid=1000(app) gid=2000(extra) groups=2000(extra)"},
		{"4242", "uid=4242 gid=0(root) groups=0(root)"},
	} {
		spec := baseSpec(t, "sh", "-c", "id; echo HOME=$HOME")
		spec.User = tc.user
		_, out, _ := runOut(t, r, spec)
		if !strings.HasPrefix(out, tc.want) {
			t.Errorf("user %q: %q, want %q", tc.user, out, tc.want)
		}
		home := map[string]string{"": "/root", "app": "/home/app", "1000": "/home/app", "4242": "/"}[tc.user]
		if home != "" && !strings.Contains(out, "HOME="+home+"\n") {
			t.Errorf("user %q: %q, want HOME=%s", tc.user, out, home)
		}
	}
	spec := baseSpec(t, "env")
	spec.Env = []string{"FOO=bar", "HOME=/custom", "PATH=/bin"}
	spec.Hostname = "myhost"
	spec.Cwd = "/made/here"
	_, out, _ := runOut(t, r, spec)
	for _, want := range []string{"FOO=bar\n", "HOME=/custom\n", "PATH=/bin\n", "HOSTNAME=myhost\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("env: missing %q in %q", want, out)
		}
	}
	if strings.Contains(out, "TERM=") {
		t.Errorf("TERM without a tty: %q", out)
	}
	os.RemoveAll(filepath.Join(fixRootfs, "made"))
	spec = baseSpec(t, "sh", "-c", "echo $PATH; pwd")
	spec.Cwd = "/tmp"
	_, out, _ = runOut(t, r, spec)
	if out != DefaultPath+"\n/tmp\n" {
		t.Errorf("default PATH / cwd: %q", out)
	}
}

func TestTTY(t *testing.T) {
	r := setup(t)
	spec := baseSpec(t, "sh", "-c", "tty; echo TERM=$TERM; echo err >&2; stty size")
	spec.Tty = true
	st, out, errOut := runOut(t, r, spec)
	if st.Code != 0 {
		t.Fatalf("exit %d", st.Code)
	}
	if errOut != "" {
		t.Errorf("a tty has no separate stderr, got %q", errOut)
	}
	if !strings.HasPrefix(out, "/dev/pts/0\r\nTERM=xterm\r\nerr\r\n") {
		t.Errorf("tty output %q", out)
	}
}

func TestAttachOnStartAndStdin(t *testing.T) {
	r := setup(t)
	// output written at once is not lost to an Attach made after Start
	spec := baseSpec(t, "sh", "-c", "echo first; echo second >&2")
	spec.AttachOnStart = true
	task := start(t, r, spec)
	var out, errOut syncBuffer
	if err := task.Attach(context.Background(), nil, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if out.String() != "first\n" || errOut.String() != "second\n" {
		t.Fatalf("attach got %q %q", out.String(), errOut.String())
	}
	if st := wait(t, task); st.Code != 0 {
		t.Fatal(st)
	}
	if got := logText(t, spec.LogPath, ""); got != "first\nsecond\n" && got != "second\nfirst\n" {
		t.Fatalf("log %q", got)
	}

	// docker run -i: stdin forwarded, EOF closes the container's stdin
	spec = baseSpec(t, "sh", "-c", "cat; echo done")
	spec.Stdin = true
	spec.AttachOnStart = true
	task = start(t, r, spec)
	out = syncBuffer{}
	if err := task.Attach(context.Background(), strings.NewReader("line one\nline two\n"), &out, nil); err != nil {
		t.Fatal(err)
	}
	if out.String() != "line one\nline two\ndone\n" {
		t.Fatalf("stdin round trip %q", out.String())
	}
	if st := wait(t, task); st.Code != 0 {
		t.Fatal(st)
	}
}

func TestAttachFanOutAndResize(t *testing.T) {
	r := setup(t)
	spec := baseSpec(t, "sh", "-c", "read x; stty size; echo got $x")
	spec.Tty, spec.Stdin = true, true
	task := start(t, r, spec)
	if err := task.Resize(100, 30); err != nil {
		t.Fatal(err)
	}
	var a, b syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 2)
	pr, pw := io.Pipe()
	go func() { done <- task.Attach(ctx, pr, &a, nil) }()
	go func() { done <- task.Attach(ctx, nil, &b, nil) }()
	time.Sleep(200 * time.Millisecond) // let both register
	pw.Write([]byte("hello\r"))
	for i := 0; i < 2; i++ {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("attach did not end with the container")
		}
	}
	for _, got := range []string{a.String(), b.String()} {
		if !strings.Contains(got, "30 100\r\ngot hello\r\n") {
			t.Errorf("attacher got %q", got)
		}
	}
	pw.Close()
}

func TestExec(t *testing.T) {
	r := setup(t)
	spec := baseSpec(t, "sleep", "1000")
	spec.Env = []string{"CONTAINER_VAR=1"}
	task := start(t, r, spec)
	ctx := context.Background()

	var out, errOut syncBuffer
	p, err := task.Exec(ctx, ProcessSpec{Args: []string{"sh", "-c", "echo $CONTAINER_VAR $EXEC_VAR; id -u; echo e >&2; exit 5"}, Env: []string{"EXEC_VAR=2"}}, nil, &out, &errOut)
	if err != nil {
		t.Fatal(err)
	}
	if p.Pid() <= 0 {
		t.Error("no pid")
	}
	code, err := p.Wait()
	if err != nil || code != 5 {
		t.Fatalf("exec exit %d %v", code, err)
	}
	if out.String() != "1 2\n0\n" || errOut.String() != "e\n" {
		t.Fatalf("exec output %q %q", out.String(), errOut.String())
	}

	// stdin, user, cwd
	out = syncBuffer{}
	p, err = task.Exec(ctx, ProcessSpec{Args: []string{"sh", "-c", "cat; id -un; pwd"}, User: "app", Cwd: "/tmp"}, strings.NewReader("in\n"), &out, nil)
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := p.Wait(); code != 0 || out.String() != "in\napp\n/tmp\n" {
		t.Fatalf("exec with stdin: %d %q", code, out.String())
	}

	// tty + resize
	out = syncBuffer{}
	pr, pw := io.Pipe()
	p, err = task.Exec(ctx, ProcessSpec{Args: []string{"sh", "-c", "read x; stty size; tty; echo TERM=$TERM"}, Tty: true}, pr, &out, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Resize(120, 40); err != nil {
		t.Fatal(err)
	}
	pw.Write([]byte("go\r"))
	if code, _ := p.Wait(); code != 0 || !strings.Contains(out.String(), "40 120\r\n/dev/pts/") || !strings.Contains(out.String(), "TERM=xterm") {
		t.Fatalf("exec tty: %d %q", code, out.String())
	}
	pw.Close()

	// killed by a signal
	p, err = task.Exec(ctx, ProcessSpec{Args: []string{"sleep", "100"}}, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.Kill(syscall.SIGTERM)
	if code, _ := p.Wait(); code != 128+int(syscall.SIGTERM) {
		t.Fatalf("killed exec: %d", code)
	}

	_, err = task.Exec(ctx, ProcessSpec{Args: []string{"nope"}}, nil, nil, nil)
	var se *StartError
	if !errors.As(err, &se) || se.Code != 127 {
		t.Fatalf("exec of a missing binary: %v", err)
	}

	// exec in an exited container
	task.Kill(syscall.SIGKILL)
	wait(t, task)
	if _, err := task.Exec(ctx, ProcessSpec{Args: []string{"true"}}, nil, nil, nil); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("exec after exit: %v", err)
	}
}

func TestPauseStatsPidsKill(t *testing.T) {
	r := setup(t)
	spec := baseSpec(t, "sleep", "1000")
	spec.Memory = 100 << 20
	spec.NanoCPUs = 500000000
	spec.CPUShares = 512
	task := start(t, r, spec)
	pids, err := task.Pids()
	if err != nil || len(pids) != 1 || pids[0] != task.Pid() {
		t.Fatalf("pids %v (init %d) %v", pids, task.Pid(), err)
	}
	// pids.current counts threads: the init's go away as it execs the command
	var s *Stats
	waitFor(t, func() bool {
		var err error
		if s, err = task.Stats(); err != nil {
			t.Fatal(err)
		}
		return s.PidsCurrent == 1
	})
	if s.MemoryLimit != 100<<20 || s.MemoryUsage == 0 || s.SystemNanos == 0 || s.OnlineCPUs == 0 || s.CPUTotalNanos == 0 {
		t.Fatalf("stats %+v", s)
	}
	if v1, err := os.ReadFile("/sys/fs/cgroup/cpu" + r.cgroupParent + "/" + spec.ID + "/cpu.cfs_quota_us"); err == nil {
		if strings.TrimSpace(string(v1)) != "50000" {
			t.Errorf("cfs quota %s", v1)
		}
		if b, _ := os.ReadFile("/sys/fs/cgroup/cpu" + r.cgroupParent + "/" + spec.ID + "/cpu.shares"); strings.TrimSpace(string(b)) != "512" {
			t.Errorf("cpu shares %s", b)
		}
	}
	if err := task.Pause(); err != nil {
		t.Fatal(err)
	}
	if state := readStatus(t, "/proc/"+strconv.Itoa(task.Pid())+"/status", "State"); !strings.HasPrefix(state, "S") && !strings.HasPrefix(state, "D") {
		t.Logf("paused state %s", state)
	}
	if err := task.Resume(); err != nil {
		t.Fatal(err)
	}
	if err := task.Resume(); err == nil {
		t.Error("resume of a running container")
	}
	if err := task.Delete(); err == nil {
		t.Fatal("deleted a running container")
	}
	if err := task.Kill(syscall.SIGTERM); err != nil { // pid 1 ignores TERM without a handler
		t.Fatal(err)
	}
	if err := task.Pause(); err != nil { // SIGKILL reaches a paused container too
		t.Fatal(err)
	}
	if err := task.Kill(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if st := wait(t, task); st.Code != 137 {
		t.Fatalf("killed: %+v", st)
	}
	if err := task.Kill(syscall.SIGKILL); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("kill after exit: %v", err)
	}
	if _, err := task.Stats(); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("stats after exit: %v", err)
	}
}

func TestDeleteCleansUp(t *testing.T) {
	r := setup(t)
	spec := baseSpec(t, "sh", "-c", "echo x")
	spec.PidsLimit = 10
	task := start(t, r, spec)
	wait(t, task)
	ids, _ := r.List()
	if !slices.Contains(ids, spec.ID) {
		t.Fatalf("List %v lacks %s", ids, spec.ID)
	}
	if err := task.Delete(); err != nil {
		t.Fatal(err)
	}
	assertNoCgroups(t, r, spec.ID)
	if _, err := os.Stat(filepath.Join(r.Root(), spec.ID)); !os.IsNotExist(err) {
		t.Fatalf("state dir left: %v", err)
	}
	ids, _ = r.List()
	if slices.Contains(ids, spec.ID) {
		t.Fatal("still listed")
	}
	if _, err := r.Load(spec.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("load after delete: %v", err)
	}
	// the parent cgroup goes with the last container
	// (other daemons on this machine may share the parent: then it stays)
	others := 0
	if ents, err := os.ReadDir("/sys/fs/cgroup/memory" + r.cgroupParent); err == nil {
		for _, e := range ents {
			if e.IsDir() {
				others++
			}
		}
	}
	if others == 0 {
		if _, err := os.Stat("/sys/fs/cgroup/memory" + r.cgroupParent); !os.IsNotExist(err) {
			t.Errorf("empty parent cgroup left: %v", err)
		}
	}
}

// TestSurvivesStarterDeath starts a container from a helper process, kills
// that process with SIGKILL and reattaches with Load, as a restarted daemon would.
func TestSurvivesStarterDeath(t *testing.T) {
	r := setup(t)
	spec := baseSpec(t, "sh", "-c", "i=0; while [ ! -e /tmp/stop ]; do echo tick $i; i=$((i+1)); sleep 0.1; done; echo bye; exit 7")
	t.Cleanup(func() { destroy(t, r, spec.ID, spec.LogPath) })
	b, _ := json.Marshal(spec)
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "WHARF_RT_TEST_HELPER=start", "WHARF_RT_TEST_ROOT="+r.Root(), "WHARF_RT_TEST_SPEC="+string(b))
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "pid ") {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("helper: %q %v", line, err)
	}
	cmd.Process.Kill()
	cmd.Wait()

	task, err := r.Load(spec.ID)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "pid ")))
	if task.Pid() != pid {
		t.Fatalf("pid %d, helper said %d", task.Pid(), pid)
	}
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("container died with its starter: %v", err)
	}
	// live output through Attach
	var out syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	attachDone := make(chan error, 1)
	go func() { attachDone <- task.Attach(ctx, nil, &out, nil) }()
	waitFor(t, func() bool { return strings.Count(out.String(), "tick") >= 2 })
	// stop it through the rootfs marker (the rootfs is shared: remove it after)
	os.WriteFile(filepath.Join(fixRootfs, "tmp/stop"), nil, 0o644)
	defer os.Remove(filepath.Join(fixRootfs, "tmp/stop"))
	st := wait(t, task)
	if st.Code != 7 {
		t.Fatalf("status %+v", st)
	}
	select {
	case err := <-attachDone:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("attach did not end")
	}
	cancel()
	if !strings.HasSuffix(out.String(), "bye\n") {
		t.Fatalf("attach output ends %q", out.String())
	}
	log := logText(t, spec.LogPath, "stdout")
	if !strings.HasPrefix(log, "tick 0\n") || !strings.HasSuffix(log, "bye\n") {
		t.Fatalf("log %q", log)
	}
	// the attacher got the live tail of the same stream: nothing lost, nothing twice
	if !strings.HasSuffix(log, out.String()) {
		t.Fatalf("attach output %q is not the end of the log %q", out.String(), log)
	}
	// the shim is gone now; a fresh Load still answers Wait and Attach
	waitFor(t, func() bool { return shimPid(filepath.Join(r.Root(), spec.ID), r.Root(), spec.ID) == 0 })
	task2, err := r.Load(spec.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st2 := wait(t, task2); st2 != st {
		t.Fatalf("after the shim exited: %+v, before %+v", st2, st)
	}
	if err := task2.Attach(context.Background(), nil, &out, nil); err != nil {
		t.Fatalf("attach to an exited container: %v", err)
	}
	if err := task2.Delete(); err != nil {
		t.Fatal(err)
	}
	assertNoCgroups(t, r, spec.ID)
}

func TestWaitContext(t *testing.T) {
	r := setup(t)
	task := start(t, r, baseSpec(t, "sleep", "1000"))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := task.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait: %v", err)
	}
}

func TestNewRejectsOverlap(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "wharf")
	os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755)
	if _, err := New(filepath.Join(dir, "state"), bin); err == nil {
		t.Fatal("state root inside the binary's folder accepted")
	}
	if _, err := New(filepath.Join(t.TempDir(), "state"), bin); err != nil {
		t.Fatal(err)
	}
}

// TestShimFootprint reports the memory of the shims supervising idle
// containers: Anonymous is what each one costs on its own; the file-backed
// rest of its RSS (the binary's pages) is shared by all shims, which Pss shows.
func TestShimFootprint(t *testing.T) {
	r := setup(t)
	const n = 4
	var pids []int
	for i := 0; i < n; i++ {
		spec := baseSpec(t, "sleep", "1000")
		start(t, r, spec)
		pids = append(pids, shimPid(filepath.Join(r.Root(), spec.ID), r.Root(), spec.ID))
	}
	time.Sleep(300 * time.Millisecond)
	var rss, anon, pss int
	for _, pid := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/smaps_rollup")
		if err != nil {
			t.Skip(err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			f := strings.Fields(l)
			if len(f) < 2 {
				continue
			}
			v, _ := strconv.Atoi(f[1])
			switch f[0] {
			case "Rss:":
				rss += v
			case "Anonymous:":
				anon += v
			case "Pss:":
				pss += v
			}
		}
	}
	bin := os.Getenv("WHARF_RT_TEST_BINARY")
	if bin == "" {
		bin = "this test binary"
	}
	t.Logf("%d shims of %s, each on average: Rss %d kB, Anonymous %d kB, Pss %d kB; threads %s",
		n, bin, rss/n, anon/n, pss/n, readStatus(t, "/proc/"+strconv.Itoa(pids[0])+"/status", "Threads"))
}

func BenchmarkStartWaitDelete(b *testing.B) {
	r := setup(b)
	b.ReportAllocs()
	var total time.Duration
	n := 0
	cpu0 := cpuTime()
	for b.Loop() {
		spec := baseSpec(b, "true")
		spec.LogPath = ""
		t0 := time.Now()
		task, err := r.Start(context.Background(), spec)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		st, err := task.Wait(ctx)
		cancel()
		if err != nil || st.Code != 0 {
			b.Fatal(st, err)
		}
		if err := task.Delete(); err != nil {
			b.Fatal(err)
		}
		total += time.Since(t0)
		n++
	}
	time.Sleep(50 * time.Millisecond) // the last shim is reaped by Start's goroutine
	b.ReportMetric(float64(total.Microseconds())/1000/float64(n), "ms/op")
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/1000/float64(n), "cpu-ms/op")
}

// cpuTime is the CPU time used by this process and its reaped children (the
// shims, whose own reaped children are the containers' processes).
func cpuTime() time.Duration {
	var self, kids syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	syscall.Getrusage(syscall.RUSAGE_CHILDREN, &kids)
	tv := func(t syscall.Timeval) time.Duration { return time.Duration(t.Nano()) }
	return tv(self.Utime) + tv(self.Stime) + tv(kids.Utime) + tv(kids.Stime)
}

// TestShimInheritsNothing: a descriptor the daemon has without close-on-exec
// (inherited from whoever started it) is not kept open by the shims.
func TestShimInheritsNothing(t *testing.T) {
	r := setup(t)
	var p [2]int
	if err := syscall.Pipe(p[:]); err != nil { // no O_CLOEXEC
		t.Fatal(err)
	}
	defer syscall.Close(p[0])
	defer syscall.Close(p[1])
	var st syscall.Stat_t
	syscall.Fstat(p[1], &st)
	pipeName := "pipe:[" + strconv.FormatUint(st.Ino, 10) + "]"
	spec := baseSpec(t, "sleep", "100")
	start(t, r, spec)
	pid := shimPid(filepath.Join(r.Root(), spec.ID), r.Root(), spec.ID)
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if l, _ := os.Readlink("/proc/" + strconv.Itoa(pid) + "/fd/" + e.Name()); l == pipeName {
			t.Fatalf("the shim holds the daemon's inherited pipe as fd %s", e.Name())
		}
	}
}

// TestShimDeath: should the shim be killed, Wait still learns of the end
// (code 255: unknown) and Delete cleans up.
func TestShimDeath(t *testing.T) {
	r := setup(t)
	spec := baseSpec(t, "sleep", "1000")
	task := start(t, r, spec)
	pid := shimPid(filepath.Join(r.Root(), spec.ID), r.Root(), spec.ID)
	syscall.Kill(pid, syscall.SIGKILL)
	waitFor(t, func() bool { return shimPid(filepath.Join(r.Root(), spec.ID), r.Root(), spec.ID) == 0 })
	if err := syscall.Kill(task.Pid(), 0); err != nil {
		t.Fatalf("container died with its shim: %v", err)
	}
	task2, err := r.Load(spec.ID)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	if _, err := task2.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait on a running container without shim: %v", err)
	}
	cancel()
	if err := task2.Kill(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if st := wait(t, task2); st.Code != 255 {
		t.Fatalf("status %+v", st)
	}
	if err := task2.Delete(); err != nil {
		t.Fatal(err)
	}
	assertNoCgroups(t, r, spec.ID)
}

// TestTTYPromptAttach: with AttachOnStart, a prompt written without a newline
// before Attach reaches the attacher (it cannot be in the log yet).
func TestTTYPromptAttach(t *testing.T) {
	r := setup(t)
	spec := baseSpec(t, "sh", "-c", "printf 'name? '; read x; echo hello $x")
	spec.Tty, spec.Stdin, spec.AttachOnStart = true, true, true
	task := start(t, r, spec)
	time.Sleep(100 * time.Millisecond) // the prompt is written before anyone attaches
	var out syncBuffer
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- task.Attach(context.Background(), pr, &out, nil) }()
	waitFor(t, func() bool { return strings.Contains(out.String(), "name? ") })
	pw.Write([]byte("bob\r"))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	pw.Close()
	if !strings.HasSuffix(out.String(), "hello bob\r\n") {
		t.Fatalf("tty session %q", out.String())
	}
}

// TestKillThenDelete: Delete right after Kill(SIGKILL), as docker rm -f does.
func TestKillThenDelete(t *testing.T) {
	r := setup(t)
	spec := baseSpec(t, "sleep", "1000")
	task := start(t, r, spec)
	if err := task.Kill(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := task.Delete(); err != nil {
		t.Fatal(err)
	}
	assertNoCgroups(t, r, spec.ID)
	if _, err := os.Stat(filepath.Join(r.Root(), spec.ID)); !os.IsNotExist(err) {
		t.Fatal("state left")
	}
}

// TestConcurrent starts and deletes containers in parallel: the shared parent
// cgroup is removed by the last Delete without failing anyone's start.
func TestConcurrent(t *testing.T) {
	r := setup(t)
	const n = 8
	errc := make(chan error, n)
	for i := 0; i < n; i++ {
		spec := baseSpec(t, "sh", "-c", "echo $HOSTNAME")
		spec.LogPath = ""
		go func() {
			for round := 0; round < 3; round++ {
				task, err := r.Start(context.Background(), spec)
				if err != nil {
					errc <- err
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				st, err := task.Wait(ctx)
				cancel()
				if err == nil && st.Code != 0 {
					err = fmt.Errorf("exit %d", st.Code)
				}
				if derr := task.Delete(); err == nil {
					err = derr
				}
				if err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
	}
	for i := 0; i < n; i++ {
		if err := <-errc; err != nil {
			t.Error(err)
		}
	}
	if ids, _ := r.List(); len(ids) != 0 {
		t.Errorf("left: %v", ids)
	}
}

// BenchmarkInProcessBaseline runs the same container configuration with
// libcontainer in this process (no shim, no log): what the shim costs on top
// is the difference to BenchmarkStartWaitDelete under the same load.
func BenchmarkInProcessBaseline(b *testing.B) {
	r := setup(b)
	root := filepath.Join(fixState, "inprocess")
	defer os.RemoveAll(root)
	var total time.Duration
	n := 0
	cpu0 := cpuTime()
	for b.Loop() {
		spec := baseSpec(b, "true")
		cfg, p, err := buildConfig(&spec, DefaultCgroupParent)
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		c, err := libcontainer.Create(root, spec.ID, cfg)
		if err != nil {
			b.Fatal(err)
		}
		proc := &libcontainer.Process{Args: p.Args, Env: p.Env, Cwd: p.Cwd, Init: true}
		if err := c.Run(proc); err != nil {
			b.Fatal(err)
		}
		if _, err := proc.Wait(); err != nil {
			b.Fatal(err)
		}
		if err := c.Destroy(); err != nil {
			b.Fatal(err)
		}
		total += time.Since(t0)
		n++
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(n), "ms/op")
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/1000/float64(n), "cpu-ms/op")
	r.removeCgroups("none") // the parent cgroup, which Destroy leaves
}

// TestLongStatePath: a state root too long for a unix socket path still works.
func TestLongStatePath(t *testing.T) {
	setup(t)
	root := filepath.Join(fixState, strings.Repeat("long-folder-name-", 6))
	r, err := New(root, os.Getenv("WHARF_RT_TEST_BINARY"))
	if err != nil {
		t.Fatal(err)
	}
	spec := baseSpec(t, "sh", "-c", "read x; echo got $x")
	spec.ID = spec.ID + strings.Repeat("x", 30)
	spec.Stdin = true
	if n := len(filepath.Join(root, spec.ID, shimSocketFile)); n <= maxSunPath {
		t.Fatalf("path of %d bytes is not too long", n)
	}
	task := start(t, r, spec)
	var out syncBuffer
	if err := task.Attach(context.Background(), strings.NewReader("it\n"), &out, nil); err != nil {
		t.Fatal(err)
	}
	if st := wait(t, task); st.Code != 0 || out.String() != "got it\n" {
		t.Fatalf("%+v %q", st, out.String())
	}
}
