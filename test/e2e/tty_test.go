package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestRunInteractiveTTY drives `run -it` through a real pseudo-terminal (util-linux script(1)): the container sees
// a tty, what is typed reaches it, and the exit code comes back.
func TestRunInteractiveTTY(t *testing.T) {
	script, err := exec.LookPath("script")
	if err != nil {
		t.Skip("script(1) not installed")
	}
	forEachClient(t, func(t *testing.T, c cli) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		inner := c.path + " run -it --rm busybox sh -c 'tty; read line; echo got:$line; exit 5'"
		cmd := exec.CommandContext(ctx, script, "-qefc", inner, "/dev/null")
		cmd.Env = append(os.Environ(), "DOCKER_HOST="+c.host, "TERM=xterm")
		cmd.Stdin = strings.NewReader("hello-tty\n")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		s := out.String()
		if !strings.Contains(s, "/dev/pts/") {
			t.Errorf("the container has no tty: %q", s)
		}
		if !strings.Contains(s, "got:hello-tty") {
			t.Errorf("typed input did not arrive: %q", s)
		}
		if code != 5 {
			t.Errorf("exit code %d, want 5: %q", code, s)
		}
	})
}
