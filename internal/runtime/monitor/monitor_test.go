package monitor

import (
	"bufio"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestOOMKilled(t *testing.T) {
	dir := t.TempDir()
	for name, tc := range map[string]struct {
		content string
		want    bool
	}{
		"v1-none":   {"oom_kill_disable 0\nunder_oom 0\noom_kill 0\n", false},
		"v1-killed": {"oom_kill_disable 0\nunder_oom 0\noom_kill 2\n", true},
		"v2-killed": {"low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\noom_group_kill 0\n", true},
		"garbage":   {"oom_kill x\n", false},
	} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(tc.content), 0o644)
		if got := oomKilled(p); got != tc.want {
			t.Errorf("%s: oomKilled = %v, want %v", name, got, tc.want)
		}
	}
	if oomKilled("") || oomKilled(filepath.Join(dir, "missing")) {
		t.Error("no file must mean no OOM kill")
	}
}

func TestExitCode(t *testing.T) {
	for _, tc := range []struct {
		ws   unix.WaitStatus
		want int
	}{
		{0, 0},
		{3 << 8, 3},
		{unix.WaitStatus(unix.SIGKILL), 137},
		{unix.WaitStatus(unix.SIGTERM), 143},
	} {
		if got := ExitCode(tc.ws); got != tc.want {
			t.Errorf("ExitCode(%#x) = %d, want %d", uint32(tc.ws), got, tc.want)
		}
	}
}

// TestRunLogsAttachesAndRecordsExit supervises a real child process: its
// output reaches an attacher and the json-file log, a waiter learns the exit
// code, exit.json is written and the socket is gone afterwards.
func TestRunLogsAttachesAndRecordsExit(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, SocketFile)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	or, ow, _ := os.Pipe()
	er, ew, _ := os.Pipe()
	ir, iw, _ := os.Pipe()
	// reads one line from stdin, then writes to both streams and exits 3
	cmd := exec.Command("sh", "-c", `read x; echo "out:$x"; echo err >&2; exit 3`)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = ir, ow, ew
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ir.Close()
	ow.Close()
	ew.Close()
	st := State{Dir: dir, InitPid: cmd.Process.Pid, LogPath: filepath.Join(dir, "ctr-json.log"), AttachOnStart: true, StdinFd: -1}
	done := make(chan struct{})
	go func() {
		Run(st, Files{Listener: ln, Outputs: []*os.File{or, er}, Stdin: iw})
		close(done)
	}()

	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	WriteJSONLine(c, Request{Op: "attach", Stdin: true})
	br := bufio.NewReader(c)
	if typ, _, err := ReadFrame(br, nil); err != nil || typ != FrameAck {
		t.Fatalf("attach: %c %v", typ, err)
	}
	WriteFrame(c, FrameStdin, []byte("hello\n"))
	WriteFrame(c, FrameStdinEOF, nil)
	var stdout, stderr strings.Builder
	var exit ExitRecord
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		typ, p, err := ReadFrame(br, nil)
		if err != nil {
			t.Fatalf("reading frames: %v (stdout %q)", err, stdout.String())
		}
		if typ == FrameExit {
			json.Unmarshal(p, &exit)
			break
		}
		switch typ {
		case FrameStdout:
			stdout.Write(p)
		case FrameStderr:
			stderr.Write(p)
		}
	}
	if stdout.String() != "out:hello\n" || stderr.String() != "err\n" || exit.Code != 3 {
		t.Fatalf("stdout %q stderr %q exit %+v", stdout.String(), stderr.String(), exit)
	}
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after the exit")
	}
	var rec ExitRecord
	b, err := os.ReadFile(filepath.Join(dir, ExitFile))
	if err != nil || json.Unmarshal(b, &rec) != nil || rec.Code != 3 || rec.ExitedAt.IsZero() {
		t.Fatalf("exit.json %q: %v", b, err)
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Fatalf("socket left behind: %v", err)
	}
	log, _ := os.ReadFile(st.LogPath)
	if !strings.Contains(string(log), `"log":"out:hello\n","stream":"stdout"`) || !strings.Contains(string(log), `"log":"err\n","stream":"stderr"`) {
		t.Fatalf("log: %s", log)
	}
}

// TestRunInitAlreadyReaped: a main process the shim reaped before handing
// over is recorded with its status, not awaited forever.
func TestRunInitAlreadyReaped(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(dir, SocketFile), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ws := uint32(7 << 8)
	done := make(chan struct{})
	go func() {
		Run(State{Dir: dir, InitPid: 1 << 22, InitStatus: &ws, StdinFd: -1}, Files{Listener: ln})
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return")
	}
	var rec ExitRecord
	b, _ := os.ReadFile(filepath.Join(dir, ExitFile))
	if json.Unmarshal(b, &rec) != nil || rec.Code != 7 {
		t.Fatalf("exit.json %q", b)
	}
}
