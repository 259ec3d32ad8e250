package e2e

import (
	"archive/tar"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
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

// faultImage loads an image of busybox plus four layers of random data (8 MB each, which does
// not compress) tagged ref, made as a docker-archive (a build would keep its intermediate images,
// and their layers, in the store). It returns the sha256sum output for the data files.
func faultImage(t *testing.T, c cli, ref string) string {
	t.Helper()
	dir := t.TempDir()
	base := filepath.Join(dir, "busybox.tar")
	c.ok(t, "save", "-o", base, "busybox:latest")
	files := map[string][]byte{}
	f, err := os.Open(base)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			files[h.Name] = b
		}
	}
	f.Close()
	var manifest []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal(files["manifest.json"], &manifest); err != nil || len(manifest) != 1 {
		t.Fatalf("busybox manifest.json: %v %s", err, files["manifest.json"])
	}
	var cfg map[string]any
	if err := json.Unmarshal(files[manifest[0].Config], &cfg); err != nil {
		t.Fatal(err)
	}
	rootfs := cfg["rootfs"].(map[string]any)
	diffIDs := rootfs["diff_ids"].([]any)
	history, _ := cfg["history"].([]any)
	var sums strings.Builder
	layers := manifest[0].Layers
	for i := 1; i <= 4; i++ {
		data := make([]byte, 8000000)
		if _, err := rand.Read(data); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&sums, "%x  /r%d\n", sha256.Sum256(data), i)
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("r%d", i), Mode: 0o644, Size: int64(len(data)), ModTime: time.Unix(1700000000, 0), Typeflag: tar.TypeReg})
		tw.Write(data)
		tw.Close()
		d := fmt.Sprintf("%x", sha256.Sum256(buf.Bytes()))
		files["blobs/sha256/"+d] = buf.Bytes()
		layers = append(layers, "blobs/sha256/"+d)
		diffIDs = append(diffIDs, "sha256:"+d)
		history = append(history, map[string]any{"created_by": fmt.Sprintf("random data /r%d", i)})
	}
	rootfs["diff_ids"] = diffIDs
	cfg["history"] = history
	rawCfg, _ := json.Marshal(cfg)
	cfgName := fmt.Sprintf("blobs/sha256/%x", sha256.Sum256(rawCfg))
	files[cfgName] = rawCfg
	mj, _ := json.Marshal([]map[string]any{{"Config": cfgName, "RepoTags": []string{ref}, "Layers": layers}})

	archive := filepath.Join(dir, "image.tar")
	out, err := os.Create(archive)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(out)
	put := func(name string, b []byte) {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), ModTime: time.Unix(1700000000, 0), Typeflag: tar.TypeReg})
		tw.Write(b)
	}
	for _, l := range layers {
		put(l, files[l])
	}
	put(cfgName, rawCfg)
	put("manifest.json", mj)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	out.Close()
	c.ok(t, "load", "-i", archive)
	return sums.String()
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

	ref := proxy.addr() + "/fault/big:1"
	sums := faultImage(t, c, ref)
	defer c.run(t, "", "rmi", "-f", ref)

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

	// Pull: kill once 12 MB of layer data has come down. The image goes by ID: `rmi REF` of the
	// last tag leaves the image alive through its RepoDigest here (Docker drops that digest too).
	id := strings.TrimSpace(c.ok(t, "image", "inspect", "-f", "{{.Id}}", ref))
	c.ok(t, "rmi", "-f", id)
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
	if strings.Count(out, "Pull complete") == 0 || !strings.Contains(out, "Status: Downloaded newer image for "+ref) {
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
