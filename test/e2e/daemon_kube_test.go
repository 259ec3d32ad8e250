package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDaemonServesKubernetesAPI: `wharf daemon` starts the Kubernetes API beside the Docker API, writes a
// kubeconfig under its data root and merges it into ~/.kube/config as context "wharf"; kubectl uses it.
func TestDaemonServesKubernetesAPI(t *testing.T) {
	d := needWharf(t)
	kubectlPath := "/usr/lib/google-cloud-sdk/bin/kubectl.1.33"
	if _, err := os.Stat(kubectlPath); err != nil {
		if kubectlPath, err = exec.LookPath("kubectl"); err != nil {
			t.Skip("no kubectl")
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	root := t.TempDir()
	home := filepath.Join(root, "home")
	os.MkdirAll(home, 0o700)
	sock := filepath.Join(root, "k.sock")
	bridge := bridgeName("3")
	cmd := exec.Command(d.bin, "daemon", "--data-root", filepath.Join(root, "data"), "--exec-root", filepath.Join(root, "exec"),
		"-H", "unix://"+sock, "--bridge-name", bridge, "--kube-port", fmt.Sprint(port))
	cmd.Env = append(os.Environ(), "HOME="+home)
	logf, _ := os.Create(filepath.Join(root, "daemon.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		exec.Command(d.bin, "__cleanup", "--data-root", filepath.Join(root, "data"), "--exec-root", filepath.Join(root, "exec"), "--bridge-name", bridge).Run()
	}()
	kubeconfig := filepath.Join(home, ".kube", "config")
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(kubeconfig); err == nil {
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(root, "daemon.log"))
			t.Fatalf("no kubeconfig merged into %s:\n%s", kubeconfig, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	run := func(args ...string) (string, error) {
		c := exec.Command(kubectlPath, args...)
		c.Env = append(os.Environ(), "HOME="+home, "KUBECONFIG="+kubeconfig)
		out, err := c.CombinedOutput()
		return string(out), err
	}
	if out, err := run("config", "current-context"); err != nil || strings.TrimSpace(out) != "wharf" {
		t.Fatalf("current context: %v %q", err, out)
	}
	out, err := run("get", "namespaces")
	if err != nil || !strings.Contains(out, "kube-system") || !strings.Contains(out, "default") {
		t.Fatalf("kubectl get namespaces: %v %q", err, out)
	}
	// The Docker API of the same daemon answers too.
	w := cli{name: "wharf", path: d.bin, host: "unix://" + sock}
	if out := w.ok(t, "version", "--format", "{{.Server.APIVersion}}"); strings.TrimSpace(out) == "" {
		t.Errorf("docker API: %q", out)
	}
}
