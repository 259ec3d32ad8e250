package e2e

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// regProc is `wharf registry` as a subprocess that can be killed with SIGKILL and started again
// on the same address and storage root.
type regProc struct {
	bin, addr, root, log string
	cmd                  *exec.Cmd
	done                 chan struct{}
}

// startRegistryProc starts `wharf registry` on 127.0.0.1:<free port> with a temp root; it is
// stopped when the test ends.
func startRegistryProc(t *testing.T, bin string) *regProc {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	r := &regProc{bin: bin, addr: l.Addr().String(), root: filepath.Join(dir, "data"), log: filepath.Join(dir, "registry.log")}
	l.Close()
	r.start(t)
	t.Cleanup(r.stop)
	return r
}

func (r *regProc) start(t *testing.T) {
	t.Helper()
	logf, err := os.OpenFile(r.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	r.cmd = exec.Command(r.bin, "registry", "--addr", r.addr, "--root", r.root)
	r.cmd.Stdout, r.cmd.Stderr = logf, logf
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := r.cmd.Start(); err != nil {
		logf.Close()
		t.Fatal(err)
	}
	r.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); logf.Close(); close(done) }(r.cmd, r.done)
	for i := 0; i < 500; i++ {
		if c, err := net.Dial("tcp", r.addr); err == nil {
			c.Close()
			return
		}
		select {
		case <-r.done:
			b, _ := os.ReadFile(r.log)
			t.Fatalf("registry exited:\n%s", b)
		case <-time.After(20 * time.Millisecond):
		}
	}
	b, _ := os.ReadFile(r.log)
	t.Fatalf("registry did not come up on %s:\n%s", r.addr, b)
}

// kill9 kills the registry (SIGKILL, no shutdown) and waits for it to be gone.
func (r *regProc) kill9() {
	r.cmd.Process.Signal(syscall.SIGKILL)
	<-r.done
}

func (r *regProc) stop() {
	if r.cmd == nil {
		return
	}
	select {
	case <-r.done:
		return
	default:
	}
	r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		r.cmd.Process.Kill()
		<-r.done
	}
}

// gateProxy forwards loopback TCP to a registry. Armed, it passes `limit` bytes in one direction
// (client→registry for a push, registry→client for a pull), then stops forwarding (what arrives
// is dropped) and closes hit: the transfer is then mid-way, for as long as the test wants.
type gateProxy struct {
	l      net.Listener
	target string

	mu     sync.Mutex
	up     bool  // gate the client→registry direction
	limit  int64 // < 0: not armed
	passed int64
	hit    chan struct{}
	once   *sync.Once
	conns  map[net.Conn]bool
}

func startGateProxy(t *testing.T, target string) *gateProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &gateProxy{l: l, target: target, limit: -1, conns: map[net.Conn]bool{}}
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *gateProxy) addr() string { return p.l.Addr().String() }

func (p *gateProxy) arm(up bool, limit int64) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.up, p.limit, p.passed = up, limit, 0
	p.hit, p.once = make(chan struct{}), new(sync.Once)
	return p.hit
}

func (p *gateProxy) disarm() {
	p.mu.Lock()
	p.limit = -1
	p.mu.Unlock()
}

func (p *gateProxy) close() {
	p.l.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
}

func (p *gateProxy) track(c net.Conn, add bool) {
	p.mu.Lock()
	if add {
		p.conns[c] = true
	} else {
		delete(p.conns, c)
	}
	p.mu.Unlock()
}

func (p *gateProxy) serve() {
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		go p.handle(c)
	}
}

func (p *gateProxy) handle(c net.Conn) {
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.track(c, true)
	p.track(s, true)
	var once sync.Once
	closeBoth := func() {
		once.Do(func() {
			c.Close()
			s.Close()
			p.track(c, false)
			p.track(s, false)
		})
	}
	go func() { p.pipe(s, c, true); closeBoth() }()
	p.pipe(c, s, false)
	closeBoth()
}

// take says how many of n bytes going in direction up may pass.
func (p *gateProxy) take(up bool, n int) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.limit < 0 || up != p.up {
		return n
	}
	left := p.limit - p.passed
	if left > int64(n) {
		p.passed += int64(n)
		return n
	}
	if left < 0 {
		left = 0
	}
	p.passed += left
	p.once.Do(func() { close(p.hit) })
	return int(left)
}

func (p *gateProxy) pipe(dst, src net.Conn, up bool) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			k := p.take(up, n)
			if k > 0 {
				if _, werr := dst.Write(buf[:k]); werr != nil {
					return
				}
			}
		}
		if err != nil {
			return
		}
	}
}

// faultImage builds an image of busybox plus four layers of random data (about 32 MB that does
// not compress) and returns the checksums of the data files as the image sees them.
func faultImage(t *testing.T, c cli, ref string) string {
	t.Helper()
	dir := t.TempDir()
	var df strings.Builder
	df.WriteString("FROM busybox\n")
	for i := 1; i <= 4; i++ {
		fmt.Fprintf(&df, "RUN head -c 8000000 /dev/urandom > /r%d\n", i)
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	c.ok(t, "build", "-q", "-t", ref, dir)
	return c.ok(t, "run", "--rm", ref, "sha256sum", "/r1", "/r2", "/r3", "/r4")
}

// startCLI runs a client command in the background; wait returns its result.
func startCLI(t *testing.T, c cli, args ...string) func() result {
	t.Helper()
	cmd := exec.Command(c.path, args...)
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+c.host, "DOCKER_CLI_HINTS=false")
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	return func() result {
		var err error
		select {
		case err = <-done:
		case <-time.After(3 * time.Minute):
			cmd.Process.Kill()
			err = <-done
		}
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			code = -1
		}
		return result{Stdout: so.String(), Stderr: se.String(), Code: code}
	}
}

// waitHit waits until the proxy has let the given part of the transfer through.
func waitHit(t *testing.T, hit <-chan struct{}, what string, wait func() result) {
	t.Helper()
	select {
	case <-hit:
	case <-time.After(2 * time.Minute):
		t.Fatalf("%s never reached the kill point: %s", what, wait())
	}
}

// TestRegistryKilledMidTransfer kills `wharf registry` (SIGKILL) in the middle of a push and of a
// pull of a multi-layer image, restarts it on the same root and port, and retries: both complete,
// and the local store has nothing half-written (images, inspect and run work; the files match).
func TestRegistryKilledMidTransfer(t *testing.T) {
	d := needWharf(t)
	c := cli{name: "wharf", path: d.bin, host: d.host()}
	reg := startRegistryProc(t, d.bin)
	proxy := startGateProxy(t, reg.addr)

	local := "fault-src-" + fmt.Sprint(time.Now().UnixNano()%100000)
	sums := faultImage(t, c, local)
	ref := proxy.addr() + "/fault/big:1"
	c.ok(t, "tag", local, ref)
	defer c.run(t, "", "rmi", "-f", local, ref)

	// Push: kill once 12 MB of layer data has gone up.
	hit := proxy.arm(true, 12<<20)
	wait := startCLI(t, c, "push", ref)
	waitHit(t, hit, "push", wait)
	reg.kill9()
	if r := wait(); r.Code == 0 {
		t.Fatalf("push with the registry killed mid-way succeeded: %s", r)
	} else {
		t.Logf("push interrupted: exit %d: %s", r.Code, strings.TrimSpace(r.Stderr))
	}
	proxy.disarm()
	reg.start(t)
	out := c.ok(t, "push", ref)
	if !strings.Contains(out, "1: digest: sha256:") {
		t.Fatalf("retried push:\n%s", out)
	}

	// Pull: kill once 12 MB of layer data has come down.
	c.ok(t, "rmi", ref)
	c.ok(t, "rmi", local)
	hit = proxy.arm(false, 12<<20)
	wait = startCLI(t, c, "pull", ref)
	waitHit(t, hit, "pull", wait)
	reg.kill9()
	if r := wait(); r.Code == 0 {
		t.Fatalf("pull with the registry killed mid-way succeeded: %s", r)
	} else {
		t.Logf("pull interrupted: exit %d: %s", r.Code, strings.TrimSpace(r.Stderr))
	}
	proxy.disarm()
	if out := c.ok(t, "images", "--format", "{{.Repository}}:{{.Tag}}"); strings.Contains(out, "/fault/big") {
		t.Errorf("interrupted pull left an image:\n%s", out)
	}
	if r := c.run(t, "", "image", "inspect", ref); r.Code == 0 {
		t.Errorf("interrupted pull: inspect found the image")
	}
	if ents, _ := os.ReadDir(filepath.Join(d.dataRoot, "image", "tmp")); len(ents) != 0 {
		t.Errorf("interrupted pull left temp files: %v", ents)
	}

	reg.start(t)
	out = c.ok(t, "pull", ref)
	if !strings.Contains(out, "Status: Downloaded newer image for "+ref) {
		t.Errorf("retried pull:\n%s", out)
	}
	if out := c.ok(t, "images", "--format", "{{.Repository}}:{{.Tag}}"); !strings.Contains(out, ref) {
		t.Errorf("images after the retried pull:\n%s", out)
	}
	if out := c.ok(t, "image", "inspect", "-f", "{{len .RootFS.Layers}}", ref); strings.TrimSpace(out) == "" {
		t.Errorf("inspect: %q", out)
	}
	if got := c.ok(t, "run", "--rm", ref, "sha256sum", "/r1", "/r2", "/r3", "/r4"); got != sums {
		t.Errorf("pulled files differ:\n%s\nwant\n%s", got, sums)
	}
}
