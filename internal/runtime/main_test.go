package runtime

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wharfhq/wharf/internal/logfile"
)

// TestMain lets the test binary play the wharf binary's re-exec roles: the
// container init, the shim, and a helper process that starts a container and
// dies (to show the container outlives whoever started it).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case InitArg:
			Init()
		case ShimArg:
			os.Exit(ShimMain(os.Args[2:]))
		}
	}
	if os.Getenv("WHARF_RT_TEST_HELPER") == "start" {
		os.Exit(helperStart())
	}
	code := m.Run()
	fixtureCleanup()
	os.Exit(code)
}

// helperStart starts the container described by $WHARF_RT_TEST_SPEC under
// the runtime at $WHARF_RT_TEST_ROOT, prints the init pid and waits to be killed.
func helperStart() int {
	r, err := New(os.Getenv("WHARF_RT_TEST_ROOT"), "")
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	var spec Spec
	if err := json.Unmarshal([]byte(os.Getenv("WHARF_RT_TEST_SPEC")), &spec); err != nil {
		fmt.Println("error:", err)
		return 1
	}
	t, err := r.Start(context.Background(), spec)
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	fmt.Printf("pid %d\n", t.Pid())
	time.Sleep(time.Hour)
	return 0
}

var (
	fixtureOnce sync.Once
	fixtureErr  error
	fixRootfs   string // busybox rootfs
	fixState    string // runtime state root
	fixRuntime  *Runtime
	idCounter   atomic.Int64
)

func fixtureCleanup() {
	if fixRootfs != "" {
		os.RemoveAll(fixRootfs)
	}
	if fixState != "" {
		os.RemoveAll(fixState)
	}
}

// makeRootfs builds a busybox rootfs with a few users and groups.
func makeRootfs() (string, error) {
	if _, err := os.Stat("/bin/busybox"); err != nil {
		out, err := exec.Command("apt-get", "install", "-y", "-qq", "busybox-static").CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("no /bin/busybox and apt-get install busybox-static failed: %v: %s", err, out)
		}
	}
	dir, err := os.MkdirTemp("", "wharf-rt-rootfs-")
	if err != nil {
		return "", err
	}
	if err := os.Chmod(dir, 0o755); err != nil { // non-root users must get through "/"
		return "", err
	}
	for _, d := range []string{"bin", "etc", "proc", "sys", "dev", "tmp", "root", "home/app", "usr/bin", "sbin"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return "", err
		}
	}
	os.Chmod(filepath.Join(dir, "tmp"), 0o1777)
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "bin/busybox"), bb, 0o755); err != nil {
		return "", err
	}
	list, err := exec.Command("/bin/busybox", "--list").Output()
	if err != nil {
		return "", err
	}
	for _, name := range strings.Fields(string(list)) {
		if name == "busybox" {
			continue
		}
		os.Symlink("busybox", filepath.Join(dir, "bin", name))
	}
	files := map[string]string{
		"etc/passwd":  "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
		"etc/group":   "root:x:0:\napp:x:1000:\nextra:x:2000:app\nnogroup:x:65534:\n",
		"etc/notexec": "just text\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return "", err
		}
	}
	return dir, nil
}

func setup(t testing.TB) *Runtime {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	fixtureOnce.Do(func() {
		fixRootfs, fixtureErr = makeRootfs()
		if fixtureErr != nil {
			return
		}
		base := "/run"
		if st, err := os.Stat(base); err != nil || !st.IsDir() {
			base = ""
		}
		fixState, fixtureErr = os.MkdirTemp(base, "wharf-rt-state-")
		if fixtureErr != nil {
			return
		}
		// $WHARF_RT_TEST_BINARY: run shims and inits from that binary (e.g. a built cmd/wharf) instead of this test binary.
		fixRuntime, fixtureErr = New(fixState, os.Getenv("WHARF_RT_TEST_BINARY"))
	})
	if fixtureErr != nil {
		t.Skip("no test fixture: ", fixtureErr)
	}
	return fixRuntime
}

func newID(t testing.TB) string {
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, t.Name())
	if len(name) > 40 {
		name = name[:40]
	}
	return fmt.Sprintf("wt-%s-%d-%d", name, os.Getpid(), idCounter.Add(1))
}

func baseSpec(t testing.TB, args ...string) Spec {
	id := newID(t)
	return Spec{
		ID:      id,
		Rootfs:  fixRootfs,
		Args:    args,
		LogPath: filepath.Join(fixState, id+"-json.log"),
	}
}

// start starts spec and registers the container's removal.
func start(t testing.TB, r *Runtime, spec Spec) Task {
	t.Helper()
	task, err := r.Start(context.Background(), spec)
	if err != nil {
		t.Fatalf("start %v: %v", spec.Args, err)
	}
	t.Cleanup(func() { destroy(t, r, spec.ID, spec.LogPath) })
	return task
}

func destroy(t testing.TB, r *Runtime, id, logPath string) {
	task, err := r.Load(id)
	if err == nil {
		task.Kill(syscall.SIGKILL)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		task.Wait(ctx)
		cancel()
		if err := task.Delete(); err != nil {
			t.Errorf("delete %s: %v", id, err)
		}
	}
	if logPath != "" {
		os.Remove(logPath)
	}
}

func wait(t testing.TB, task Task) ExitStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, err := task.Wait(ctx)
	if err != nil {
		t.Fatalf("wait: %v", err)
	}
	return st
}

type logLine struct {
	Stream string
	Line   string
}

func readLog(t testing.TB, path string) []logLine {
	t.Helper()
	var out []logLine
	err := logfile.Read(context.Background(), path, logfile.ReadOptions{Tail: -1}, func(s string, _ time.Time, l []byte) error {
		out = append(out, logLine{s, string(l)})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func logText(t testing.TB, path, stream string) string {
	var b strings.Builder
	for _, l := range readLog(t, path) {
		if stream == "" || l.Stream == stream {
			b.WriteString(l.Line)
		}
	}
	return b.String()
}

// runOut runs spec to its end and returns exit status and stdout+stderr as logged.
func runOut(t testing.TB, r *Runtime, spec Spec) (ExitStatus, string, string) {
	t.Helper()
	task := start(t, r, spec)
	st := wait(t, task)
	return st, logText(t, spec.LogPath, "stdout"), logText(t, spec.LogPath, "stderr")
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
