package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wharfhq/wharf/internal/cluster/apiserver"
)

// The kube e2e tests start the API server in-process (no root, no engine
// needed) on 127.0.0.1 with a random port and a temp data root, and drive
// the real kubectl binaries against it.

// kubeServer is an API server started for one test.
type kubeServer struct {
	srv        *apiserver.Server
	dataRoot   string
	kubeconfig string
	home       string
}

func startKube(t *testing.T) *kubeServer {
	t.Helper()
	dir := t.TempDir()
	ks, _ := startKubeAt(t, filepath.Join(dir, "root"), "127.0.0.1:0")
	home := filepath.Join(dir, "home")
	os.MkdirAll(home, 0o700)
	ks.home = home
	return ks
}

// startKubeAt starts a server on dataRoot and addr; stop ends it (also
// run at cleanup).
func startKubeAt(t *testing.T, dataRoot, addr string) (*kubeServer, func()) {
	t.Helper()
	var l net.Listener
	var err error
	for i := 0; i < 50; i++ { // the port of a just-stopped server may linger
		if l, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	srv, err := apiserver.New(apiserver.Options{DataRoot: dataRoot, Listener: l, BindAddress: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("apiserver: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("apiserver did not stop")
		}
	}
	t.Cleanup(stop)
	select {
	case <-srv.Ready():
	case err := <-done:
		t.Fatalf("apiserver exited: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("apiserver not ready")
	}
	return &kubeServer{srv: srv, dataRoot: dataRoot, kubeconfig: srv.KubeconfigPath()}, stop
}

// kubectlVersions are the real kubectl binaries of the matrix.
func kubectlVersions() map[string]string {
	dir := os.Getenv("WHARF_KUBECTL_DIR")
	if dir == "" {
		dir = "/usr/lib/google-cloud-sdk/bin"
	}
	out := map[string]string{}
	for _, v := range []string{"1.27", "1.30", "1.33"} {
		p := filepath.Join(dir, "kubectl."+v)
		if _, err := os.Stat(p); err == nil {
			out[v] = p
		}
	}
	return out
}

// kubectl runs one kubectl binary against a server.
type kubectl struct {
	bin, cache, kubeconfig, home, dir string
}

type kubeResult struct {
	stdout, stderr string
	err            error
}

func (k kubectl) run(t *testing.T, stdin string, args ...string) kubeResult {
	t.Helper()
	return k.runWith(t, stdin, nil, args...)
}

func (k kubectl) runEnv(t *testing.T, env []string, args ...string) kubeResult {
	t.Helper()
	return k.runWith(t, "", env, args...)
}

func (k kubectl) runWith(t *testing.T, stdin string, env []string, args ...string) kubeResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	full := append([]string{"--kubeconfig", k.kubeconfig, "--cache-dir", k.cache}, args...)
	cmd := exec.CommandContext(ctx, k.bin, full...)
	cmd.Dir = k.dir
	cmd.Env = append(append(os.Environ(), "HOME="+k.home, "KUBECONFIG="+k.kubeconfig, "KUBECTL_EXTERNAL_DIFF="), env...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	err := cmd.Run()
	return kubeResult{so.String(), se.String(), err}
}

func (k kubectl) ok(t *testing.T, args ...string) string {
	t.Helper()
	r := k.run(t, "", args...)
	if r.err != nil {
		t.Fatalf("kubectl %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.err, r.stdout, r.stderr)
	}
	return r.stdout
}

// tutorialDir finds shared/tutorial (beside the repo, or $WHARF_TUTORIAL_DIR).
func tutorialDir(t *testing.T) string {
	if d := os.Getenv("WHARF_TUTORIAL_DIR"); d != "" {
		return d
	}
	wd, _ := os.Getwd()
	for _, c := range []string{
		filepath.Join(wd, "..", "..", "..", "shared", "tutorial"),
		filepath.Join(wd, "..", "..", "shared", "tutorial"),
	} {
		if _, err := os.Stat(filepath.Join(c, "deployment.yaml")); err == nil {
			return c
		}
	}
	t.Skip("shared/tutorial not found (set WHARF_TUTORIAL_DIR)")
	return ""
}

func copyFile(t *testing.T, src, dst string) {
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func insecureTLS() *tls.Config { return &tls.Config{InsecureSkipVerify: true} }
