// Package monitor owns a container once it has started: it copies the
// container's output to the json-file log and to attachers, feeds its stdin,
// sizes its tty, reaps its init (and the orphans of the container: the process
// is a child subreaper), records exit.json and answers the shim socket
// (proto.go).
//
// It runs in the shim process. The shim (internal/runtime, with libcontainer)
// creates and starts the container, then exec's the small pure-Go
// wharf-monitor program (cmd/wharf-monitor), which calls ExecMain: the pid
// stays the same, so the container's init stays its child, and the shim's Go
// runtime, cgo threads and libcontainer's start-up heap are gone — that is
// most of what every running container costs beyond its own processes. Builds
// without the monitor program run Run in the shim itself.
package monitor

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wharfhq/wharf/internal/logfile"
)

// Files in the container's directory that the monitor writes.
const (
	SocketFile = "shim.sock"
	ExitFile   = "exit.json"
)

// How long the monitor holds back reading output for the first attacher
// (State.AttachOnStart), how long it lets output drain after the main process
// exited (also for exec'd processes), and how long an attacher may block a write.
const (
	attachWindow       = 5 * time.Second
	DrainTimeout       = 5 * time.Second
	attachWriteTimeout = 10 * time.Second
)

// State is what the monitor needs to know about a started container; across
// the exec it travels as JSON in argv, with the descriptors' numbers.
type State struct {
	Dir     string `json:"dir"` // <root>/<id>
	InitPid int    `json:"initPid"`
	// InitStatus is the init's wait status when the shim already reaped it (a very short main process).
	InitStatus    *uint32 `json:"initStatus,omitempty"`
	LogPath       string  `json:"logPath,omitempty"`
	LogMaxSize    int64   `json:"logMaxSize,omitempty"`
	LogMaxFiles   int     `json:"logMaxFiles,omitempty"`
	AttachOnStart bool    `json:"attachOnStart,omitempty"`
	Tty           bool    `json:"tty,omitempty"`
	// OOMFile holds the cgroup's "oom_kill N" count: memory.oom_control (v1) or memory.events (v2).
	OOMFile string `json:"oomFile,omitempty"`

	ListenerFd int   `json:"listenerFd"`
	OutputFds  []int `json:"outputFds"`
	StdinFd    int   `json:"stdinFd"` // -1: none
}

// Files are the open ends the monitor takes over.
type Files struct {
	Listener *net.UnixListener // serving <dir>/shim.sock
	Outputs  []*os.File        // stdout and stderr read ends, or the pty master alone
	Stdin    *os.File          // nil, a pipe's write end, or the pty master
	Console  *os.File          // the pty master when the container has a tty
}

type monitor struct {
	st         State
	f          Files
	acceptDone chan struct{}
	handlers   sync.WaitGroup

	mu        sync.Mutex // attachers, exited, exit
	attachers map[*net.UnixConn]struct{}
	exited    bool
	exit      ExitRecord
	exitCh    chan struct{}

	stdinMu sync.Mutex
	stdin   *os.File // the container's stdin; nil if none or closed

	pumpGo   chan struct{}
	pumpOnce sync.Once
	pumps    sync.WaitGroup
}

// ExecMain is wharf-monitor's main: argv is <binary> __shim <root> <id> <state JSON>
// (the shim's own argv plus the state, so the daemon still recognises the process).
func ExecMain(args []string) int {
	if len(args) != 5 {
		fmt.Fprintln(os.Stderr, "wharf-monitor is exec'd by the wharf shim, not started by hand")
		return 2
	}
	var st State
	if err := json.Unmarshal([]byte(args[4]), &st); err != nil {
		fmt.Fprintln(os.Stderr, "monitor: bad state:", err)
		return 2
	}
	files := map[int]*os.File{}
	file := func(fd int, name string) *os.File {
		if f, ok := files[fd]; ok {
			return f
		}
		unix.CloseOnExec(fd)
		_ = unix.SetNonblock(fd, true) // pollable: deadlines and Close interrupt reads
		f := os.NewFile(uintptr(fd), name)
		files[fd] = f
		return f
	}
	lf := os.NewFile(uintptr(st.ListenerFd), SocketFile)
	l, err := net.FileListener(lf)
	lf.Close()
	if err != nil {
		fmt.Fprintln(os.Stderr, "monitor: socket:", err)
		return 1
	}
	var f Files
	f.Listener = l.(*net.UnixListener)
	for i, fd := range st.OutputFds {
		f.Outputs = append(f.Outputs, file(fd, "output"+strconv.Itoa(i)))
	}
	if st.StdinFd >= 0 {
		f.Stdin = file(st.StdinFd, "stdin")
	}
	if st.Tty && len(f.Outputs) > 0 {
		f.Console = f.Outputs[0]
	}
	Run(st, f)
	return 0
}

// Run supervises the container until its main process has exited, its output
// is logged and exit.json is written; then it stops serving and returns.
func Run(st State, f Files) {
	sigc := make(chan os.Signal, 16)
	signal.Notify(sigc, unix.SIGCHLD)
	signal.Ignore(unix.SIGHUP, unix.SIGINT, unix.SIGPIPE)
	f.Listener.SetUnlinkOnClose(false) // finish unlinks it, also when it was inherited
	m := &monitor{
		st: st, f: f,
		acceptDone: make(chan struct{}),
		attachers:  map[*net.UnixConn]struct{}{},
		exitCh:     make(chan struct{}),
		stdin:      f.Stdin,
		pumpGo:     make(chan struct{}),
	}
	go m.serve()
	if st.AttachOnStart {
		time.AfterFunc(attachWindow, m.releasePumps)
	} else {
		m.releasePumps()
	}
	var ws unix.WaitStatus
	if st.InitStatus != nil {
		ws = unix.WaitStatus(*st.InitStatus)
	} else {
		ws = m.reap(sigc)
	}
	go func() {
		for range sigc {
			m.reapSome()
		}
	}()
	m.finish(ws)
}

func (m *monitor) releasePumps() {
	m.pumpOnce.Do(func() {
		var lw *logfile.Writer
		if m.st.LogPath != "" {
			w, err := logfile.OpenRotating(m.st.LogPath, logfile.Rotation{MaxSize: m.st.LogMaxSize, MaxFiles: m.st.LogMaxFiles})
			if err != nil {
				fmt.Fprintln(os.Stderr, "log:", err)
			} else {
				lw = w
			}
		}
		for i, f := range m.f.Outputs {
			typ, name := byte(FrameStdout), "stdout"
			if i == 1 {
				typ, name = FrameStderr, "stderr"
			}
			var sw *logfile.StreamWriter
			if lw != nil {
				sw = lw.Stream(name)
			}
			m.pumps.Add(1)
			go m.pump(f, typ, sw)
		}
		if lw != nil {
			go func() { m.pumps.Wait(); lw.Close() }()
		}
		close(m.pumpGo)
	})
}

// pump copies one output stream to the log and the attachers until EOF (for a pty: EIO).
func (m *monitor) pump(r *os.File, typ byte, lw *logfile.StreamWriter) {
	defer m.pumps.Done()
	buf := make([]byte, 32*1024)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if lw != nil {
				if _, werr := lw.Write(buf[:n]); werr != nil {
					fmt.Fprintln(os.Stderr, "log:", werr)
				}
			}
			m.broadcast(typ, buf[:n])
		}
		if err != nil {
			break
		}
	}
	if lw != nil {
		lw.Close()
	}
}

func (m *monitor) broadcast(typ byte, p []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for c := range m.attachers {
		c.SetWriteDeadline(time.Now().Add(attachWriteTimeout))
		if err := WriteFrame(c, typ, p); err != nil {
			delete(m.attachers, c)
			c.Close()
		}
	}
}

// ReapSome reaps every child that has exited, without blocking; it reports
// initPid's wait status once that is among them.
func ReapSome(initPid int) (unix.WaitStatus, bool) {
	var initWS unix.WaitStatus
	found := false
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil || pid <= 0 {
			return initWS, found
		}
		if pid == initPid {
			initWS, found = ws, true
		}
	}
}

func (m *monitor) reapSome() (unix.WaitStatus, bool) { return ReapSome(m.st.InitPid) }

// reap waits for the container's init to exit, reaping every other child on
// the way. The init may have exited before Run: its zombie is reaped first.
// One that is no longer our child at all (which should not happen) ends the
// wait with an unknown status, rather than a monitor that never finishes.
func (m *monitor) reap(sigc chan os.Signal) unix.WaitStatus {
	for {
		if ws, ok := m.reapSome(); ok {
			return ws
		}
		if !alive(m.st.InitPid) {
			return unix.WaitStatus(0xff << 8) // exit code 255: unknown
		}
		select {
		case <-sigc:
		case <-time.After(time.Second):
		}
	}
}

// alive reports whether pid is still our child (running or a zombie not yet reaped).
func alive(pid int) bool {
	var info unix.Siginfo
	err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
	return err == nil
}

// ExitCode is the exit code Docker reports for a wait status (128+signal when killed).
func ExitCode(ws unix.WaitStatus) int {
	switch {
	case ws.Exited():
		return ws.ExitStatus()
	case ws.Signaled():
		return 128 + int(ws.Signal())
	}
	return 255
}

// finish records the exit once the output has drained, tells everyone, and stops serving.
func (m *monitor) finish(ws unix.WaitStatus) {
	exitedAt := time.Now().UTC()
	<-m.pumpGo // with AttachOnStart, the output waits for its first reader (or attachWindow)
	drained := make(chan struct{})
	go func() { m.pumps.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(DrainTimeout):
		// something still holds the write end: stop reading
		for _, f := range m.f.Outputs {
			f.SetReadDeadline(time.Now())
		}
		<-drained
	}
	rec := ExitRecord{Code: ExitCode(ws), ExitedAt: exitedAt, OOMKilled: oomKilled(m.st.OOMFile)}
	b, _ := json.Marshal(rec)
	if err := WriteStateFile(filepath.Join(m.st.Dir, ExitFile), b, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "writing exit status:", err)
	}

	m.mu.Lock()
	m.exited = true
	m.exit = rec
	close(m.exitCh)
	for c := range m.attachers {
		c.SetWriteDeadline(time.Now().Add(time.Second))
		WriteFrame(c, FrameExit, b)
		c.Close()
	}
	m.attachers = map[*net.UnixConn]struct{}{}
	m.mu.Unlock()

	os.Remove(filepath.Join(m.st.Dir, SocketFile)) // later clients read exit.json
	m.f.Listener.Close()
	<-m.acceptDone
	done := make(chan struct{})
	go func() { m.handlers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
	}
	m.stdinMu.Lock()
	if m.stdin != nil && m.stdin != m.f.Console {
		m.stdin.Close()
	}
	m.stdin = nil
	m.stdinMu.Unlock()
}

// oomKilled reads the cgroup's OOM kill count ("oom_kill N" in both v1's
// memory.oom_control and v2's memory.events).
func oomKilled(path string) bool {
	if path == "" {
		return false
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("oom_kill ")); ok {
			n, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 10, 64)
			return err == nil && n > 0
		}
	}
	return false
}

func (m *monitor) serve() {
	defer close(m.acceptDone)
	for {
		c, err := m.f.Listener.AcceptUnix()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
		m.handlers.Add(1)
		go m.handle(c)
	}
}

func (m *monitor) handle(c *net.UnixConn) {
	defer m.handlers.Done()
	defer c.Close()
	br := bufio.NewReaderSize(c, 4096)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := br.ReadSlice('\n')
	if err != nil {
		return
	}
	c.SetReadDeadline(time.Time{})
	var req Request
	if err := json.Unmarshal(line, &req); err != nil {
		WriteJSONLine(c, ExitRecord{Error: "bad request"})
		return
	}
	switch req.Op {
	case "wait":
		gone := make(chan struct{})
		go func() { io.Copy(io.Discard, br); close(gone) }()
		select {
		case <-m.exitCh:
			m.mu.Lock()
			rec := m.exit
			m.mu.Unlock()
			WriteJSONLine(c, rec)
		case <-gone:
		}
	case "resize":
		msg := ""
		if err := m.resize(req.Width, req.Height); err != nil {
			msg = err.Error()
		}
		WriteJSONLine(c, ExitRecord{Error: msg})
	case "attach":
		m.attach(c, br, req.Stdin)
	default:
		WriteJSONLine(c, ExitRecord{Error: "unknown request " + req.Op})
	}
}

func (m *monitor) resize(w, h uint16) error {
	if m.f.Console == nil {
		return nil // not a tty: nothing to size
	}
	return SetWinsize(m.f.Console, w, h)
}

// SetWinsize sizes a pty.
func SetWinsize(f *os.File, width, height uint16) error {
	return unix.IoctlSetWinsize(int(f.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Col: width, Row: height})
}

func (m *monitor) attach(c *net.UnixConn, br *bufio.Reader, stdin bool) {
	m.mu.Lock()
	c.SetWriteDeadline(time.Now().Add(attachWriteTimeout))
	if err := WriteFrame(c, FrameAck, nil); err != nil {
		m.mu.Unlock()
		return
	}
	if m.exited {
		b, _ := json.Marshal(m.exit)
		WriteFrame(c, FrameExit, b)
		m.mu.Unlock()
		return
	}
	m.attachers[c] = struct{}{}
	m.mu.Unlock()
	m.releasePumps()

	var buf []byte
	for {
		typ, p, err := ReadFrame(br, buf)
		buf = p
		if err != nil {
			break
		}
		if !stdin {
			continue
		}
		switch typ {
		case FrameStdin:
			m.writeStdin(p)
		case FrameStdinEOF:
			m.closeStdin()
		}
	}
	m.mu.Lock()
	delete(m.attachers, c)
	m.mu.Unlock()
}

func (m *monitor) writeStdin(p []byte) {
	m.stdinMu.Lock()
	defer m.stdinMu.Unlock()
	if m.stdin != nil {
		m.stdin.Write(p)
	}
}

// closeStdin gives the container EOF on stdin (docker run -i: the client's stdin ended).
// A tty cannot be half-closed: there it does nothing.
func (m *monitor) closeStdin() {
	m.stdinMu.Lock()
	defer m.stdinMu.Unlock()
	if m.stdin != nil && m.stdin != m.f.Console {
		m.stdin.Close()
		m.stdin = nil
	}
}
