package runtime

import (
	"os/exec"
	"testing"
	"time"
)

// waitExit sees a child that ends within the window, and gives up on one that does not, without reaping either.
func TestWaitExit(t *testing.T) {
	quick := exec.Command("true")
	if err := quick.Start(); err != nil {
		t.Skip(err)
	}
	if !waitExit(quick.Process.Pid, time.Second) {
		t.Error("a child that exited at once was not seen")
	}
	if err := quick.Wait(); err != nil { // still ours to reap
		t.Errorf("reaping after waitExit: %v", err)
	}
	slow := exec.Command("sleep", "5")
	if err := slow.Start(); err != nil {
		t.Skip(err)
	}
	defer func() { slow.Process.Kill(); slow.Wait() }()
	t0 := time.Now()
	if waitExit(slow.Process.Pid, 20*time.Millisecond) {
		t.Error("a sleeping child was reported as exited")
	}
	if d := time.Since(t0); d > time.Second {
		t.Errorf("waitExit overran its window: %v", d)
	}
}
