// Package e2e drives bin/wharf, the real docker CLI and kubectl as a user would, against a daemon the
// tests start in a temporary data root. Tests here need root; they skip otherwise.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// daemon is a wharf daemon started for the tests.
type daemon struct {
	bin      string
	dataRoot string
	execRoot string
	sock     string
	bridge   string
	cmd      *exec.Cmd
	logPath  string
	real     bool // the machine's real dockerd, not Wharf
	// wrap, when set, runs the daemon through this command (it must end by exec'ing its arguments).
	wrap []string
}

var (
	shared     *daemon
	repoRoot   string
	dockerPath string
	skipReason string
)

func TestMain(m *testing.M) {
	flagShort := false
	for _, a := range os.Args {
		if a == "-test.short" || a == "-test.short=true" {
			flagShort = true
		}
	}
	_, file, _, _ := runtime.Caller(0)
	repoRoot = filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
	dockerPath, _ = exec.LookPath("docker")
	switch {
	case os.Geteuid() != 0:
		skipReason = "e2e tests need root"
	case flagShort:
		skipReason = "e2e tests are skipped with -short"
	}
	if skipReason != "" {
		os.Exit(m.Run())
	}
	if os.Getenv("WHARF_E2E_TARGET") == "docker" {
		// The same scenarios against the real dockerd (nerdctl's -test.target=docker idea): only the docker
		// CLI runs, and tests that need Wharf itself skip.
		if dockerPath == "" {
			fmt.Fprintln(os.Stderr, "e2e: WHARF_E2E_TARGET=docker needs the docker CLI")
			os.Exit(1)
		}
		shared = &daemon{sock: "/var/run/docker.sock", real: true}
		if err := loadBaseImages(shared, "busybox"); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: base images:", err)
			os.Exit(1)
		}
		os.Exit(m.Run())
	}
	bin, err := wharfBinary()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: build wharf:", err)
		os.Exit(1)
	}
	builtDir := ""
	if os.Getenv("WHARF_BIN") == "" {
		builtDir = filepath.Dir(bin) // the binary built for this run only
	}
	shared, err = startDaemon(bin, bridgeName("0"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: start daemon:", err)
		os.Exit(1)
	}
	if err := loadBaseImages(shared, "busybox"); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: base images:", err)
		shared.stop(true)
		os.Exit(1)
	}
	code := m.Run()
	shared.stop(true)
	if builtDir != "" {
		os.RemoveAll(builtDir)
	}
	os.Exit(code)
}

// wharfBinary returns $WHARF_BIN or builds one into a temp dir (apart from any state dir).
func wharfBinary() (string, error) {
	if b := os.Getenv("WHARF_BIN"); b != "" {
		if _, err := os.Stat(b); err == nil {
			return b, nil
		}
	}
	dir, err := os.MkdirTemp("", "wharf-bin-")
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "wharf")
	cmd := exec.Command("go", "build", "-tags", "netgo osusergo", "-o", out, "./cmd/wharf")
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%v: %s", err, b)
	}
	return out, nil
}

func startDaemon(bin, bridge string) (*daemon, error) {
	root, err := os.MkdirTemp("", "wharf-e2e-")
	if err != nil {
		return nil, err
	}
	d := &daemon{bin: bin, dataRoot: filepath.Join(root, "data"), execRoot: filepath.Join(root, "exec"),
		sock: filepath.Join(root, "wharf.sock"), bridge: bridge, logPath: filepath.Join(root, "daemon.log")}
	return d, d.start()
}

func (d *daemon) start() error {
	logf, err := os.OpenFile(d.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	args := []string{"daemon", "--debug", "--data-root", d.dataRoot, "--exec-root", d.execRoot,
		"-H", "unix://" + d.sock, "--bridge-name", d.bridge, "--no-kube"}
	if os.Getenv("WHARF_E2E_DEBUG") == "0" { // benchmarks: a daemon as users run it, without debug logging
		args = append(args[:1], args[2:]...)
	}
	if len(d.wrap) > 0 {
		args = append(append(append([]string{}, d.wrap[1:]...), d.bin), args...)
		d.cmd = exec.Command(d.wrap[0], args...)
	} else {
		d.cmd = exec.Command(d.bin, args...)
	}
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		return err
	}
	go func() { d.cmd.Wait(); logf.Close() }()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("unix", d.sock); err == nil {
			c.Close()
			return nil
		}
		if d.cmd.ProcessState != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	b, _ := os.ReadFile(d.logPath)
	return fmt.Errorf("daemon did not come up:\n%s", b)
}

// kill9 kills the daemon process only (its containers and their shims run on).
func (d *daemon) kill9() {
	d.cmd.Process.Signal(syscall.SIGKILL)
	for i := 0; i < 200 && d.cmd.ProcessState == nil; i++ {
		time.Sleep(10 * time.Millisecond)
	}
}

// stop removes every container, stops the daemon and removes what it made on the host.
func (d *daemon) stop(cleanup bool) {
	if cleanup {
		out, _ := exec.Command(d.bin, "-H", "unix://"+d.sock, "ps", "-aq").Output()
		ids := strings.Fields(string(out))
		if len(ids) > 0 {
			exec.Command(d.bin, append([]string{"-H", "unix://" + d.sock, "rm", "-f"}, ids...)...).Run()
		}
	}
	if d.cmd != nil && d.cmd.ProcessState == nil {
		d.cmd.Process.Signal(syscall.SIGTERM)
		for i := 0; i < 500 && d.cmd.ProcessState == nil; i++ {
			time.Sleep(10 * time.Millisecond)
		}
		if d.cmd.ProcessState == nil {
			d.cmd.Process.Kill()
		}
	}
	if cleanup {
		exec.Command(d.bin, "__cleanup", "--data-root", d.dataRoot, "--exec-root", d.execRoot, "--bridge-name", d.bridge).Run()
		if os.Getenv("WHARF_E2E_KEEP") == "" {
			os.RemoveAll(filepath.Dir(d.dataRoot))
		}
	}
}

func (d *daemon) host() string { return "unix://" + d.sock }

// loadBaseImages runs the project's base image script against d.
func loadBaseImages(d *daemon, which string) error {
	cmd := exec.Command("bash", filepath.Join(repoRoot, "scripts", "base-images.sh"), "--only", which)
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+d.host())
	if d.bin != "" {
		cmd.Env = append(cmd.Env, "WHARF_BIN="+d.bin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v\n%s", err, out)
	}
	return nil
}

func needDaemon(t *testing.T) *daemon {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
	return shared
}

// needWharf is needDaemon for tests about Wharf itself (crash recovery, its own files).
func needWharf(t *testing.T) *daemon {
	t.Helper()
	d := needDaemon(t)
	if d.real {
		t.Skip("not applicable to the real dockerd")
	}
	return d
}

// result is a finished CLI command.
type result struct {
	Stdout, Stderr string
	Code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout: %s\nstderr: %s", r.Code, r.Stdout, r.Stderr)
}

// cli is one client binary (the real docker CLI or wharf) pointed at a daemon.
type cli struct {
	name string
	path string
	host string
	env  []string // extra environment, e.g. DOCKER_CONFIG for a test's own credentials
}

func (c cli) run(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.path, args...)
	cmd.Env = append(append(os.Environ(), "DOCKER_HOST="+c.host, "DOCKER_BUILDKIT=0", "DOCKER_CLI_HINTS=false"), c.env...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s %v: %v", c.name, args, err)
	}
	return result{Stdout: so.String(), Stderr: se.String(), Code: code}
}

// ok runs and requires exit 0.
func (c cli) ok(t *testing.T, args ...string) string {
	t.Helper()
	r := c.run(t, "", args...)
	if r.Code != 0 {
		t.Fatalf("%s %s: %s", c.name, strings.Join(args, " "), r)
	}
	return r.Stdout
}

// clients returns the real docker CLI (when installed) and wharf, both pointed at d.
func clients(t *testing.T, d *daemon) []cli {
	if d.real {
		return []cli{{name: "docker", path: dockerPath, host: d.host()}}
	}
	cs := []cli{{name: "wharf", path: d.bin, host: d.host()}}
	if dockerPath != "" {
		cs = append([]cli{{name: "docker", path: dockerPath, host: d.host()}}, cs...)
	}
	return cs
}

func forEachClient(t *testing.T, fn func(t *testing.T, c cli)) {
	d := needDaemon(t)
	for _, c := range clients(t, d) {
		c := c
		t.Run(c.name, func(t *testing.T) { fn(t, c) })
	}
}

func uniqueName(t *testing.T, c cli) string {
	n := strings.NewReplacer("/", "-", " ", "-").Replace(strings.ToLower(t.Name()))
	if len(n) > 40 {
		n = n[len(n)-40:]
	}
	return strings.Trim(n, "-_.") + fmt.Sprintf("-%d", time.Now().UnixNano()%100000)
}

// bridgeName is a bridge name of this test process's own, so that concurrent runs (and their cleanups) never
// share one: "whe" + pid + suffix, within the kernel's 15 characters.
func bridgeName(suffix string) string {
	return fmt.Sprintf("whe%05d%s", os.Getpid()%100000, suffix)
}

// ownDaemon starts a daemon of the test's own, with busybox loaded, for tests that kill or restart it;
// it is stopped and everything it made removed when the test ends.
func ownDaemon(t *testing.T, bridgeSuffix string) (*daemon, cli) {
	t.Helper()
	needWharf(t)
	d, err := startDaemon(shared.bin, bridgeName(bridgeSuffix))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.stop(true) })
	if err := loadBaseImages(d, "busybox"); err != nil {
		t.Fatal(err)
	}
	return d, cli{name: "wharf", path: d.bin, host: d.host()}
}
