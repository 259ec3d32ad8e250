package runtime

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	goruntime "runtime"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/cgroups/manager"
	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/configs"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/wharfhq/wharf/internal/logfile"
)

// Files in <root>/<id>/.
const (
	shimConfigFile = "shim.json"
	shimSocketFile = "shim.sock"
	shimLogFile    = "shim.log"
	shimPidFile    = "shim.pid"
	exitFile       = "exit.json"
	cgroupLockFile = "cgroups.lock" // in <root>
)

// How long the shim holds back reading output for the first attacher
// (Spec.AttachOnStart), how long it lets output drain after the main process
// exited, and how long an attacher may block a write.
const (
	attachWindow       = 5 * time.Second
	drainTimeout       = 5 * time.Second
	attachWriteTimeout = 10 * time.Second
)

// shimConfig is <root>/<id>/shim.json, written by Start for the shim (and for Exec's defaults).
type shimConfig struct {
	Spec         Spec            `json:"spec"`
	Config       *configs.Config `json:"config"`
	Process      process         `json:"process"`
	CgroupParent string          `json:"cgroupParent"`
}

type shim struct {
	root, id, dir string
	cfg           shimConfig
	ln            *net.UnixListener
	acceptDone    chan struct{}
	handlers      sync.WaitGroup
	initPid       int
	cgroupPaths   map[string]string
	cgroup        *cgroups.Cgroup // kept for the OOM count; the rest of the configuration is dropped after start

	mu        sync.Mutex // attachers, exited, exit
	attachers map[*net.UnixConn]struct{}
	exited    bool
	exit      exitRecord
	exitCh    chan struct{}

	stdinMu sync.Mutex
	stdin   *os.File // the container's stdin (pipe write end or pty master); nil if none or closed
	console *os.File // pty master when Tty

	outputs  []*os.File // what the pumps read
	pumpGo   chan struct{}
	pumpOnce sync.Once
	pumps    sync.WaitGroup
}

// ShimMain is the per-container supervisor (argv: <binary> __shim <root> <id>),
// started by Runtime.Start in a session of its own. It creates and starts the
// container (so it is the parent of the container's init and reaps it), tells
// its parent the outcome on fd 3, copies the container's output to the log
// and to attachers, serves <root>/<id>/shim.sock, and when the main process
// has exited and its output drained writes exit.json and exits.
func ShimMain(args []string) int {
	// Small and quiet: this process lives as long as the container.
	debug.SetGCPercent(25)
	goruntime.GOMAXPROCS(1)
	if len(args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: __shim <root> <id>")
		return 2
	}
	unix.CloseOnExec(3)
	report := os.NewFile(3, "start-report")
	_ = os.Chdir("/")
	signal.Ignore(unix.SIGHUP, unix.SIGINT, unix.SIGPIPE)
	// Orphans of the container (and the init itself, should its parent stage exit) come to us.
	_ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
	sigc := make(chan os.Signal, 16)
	signal.Notify(sigc, unix.SIGCHLD)

	s := &shim{
		root: args[0], id: args[1], dir: filepath.Join(args[0], args[1]),
		attachers:  map[*net.UnixConn]struct{}{},
		exitCh:     make(chan struct{}),
		acceptDone: make(chan struct{}),
		pumpGo:     make(chan struct{}),
	}
	if os.Getenv("WHARF_SHIM_DEBUG") != "" { // libcontainer's step-by-step account, in shim.log
		logrus.SetLevel(logrus.DebugLevel)
		logrus.SetFormatter(&logrus.TextFormatter{FullTimestamp: true, TimestampFormat: "15:04:05.000000"})
	}
	pid, err := s.start()
	if err != nil {
		se := startErrorFor(err, s.cfg.Process.Args)
		json.NewEncoder(report).Encode(startReport{Error: se.Msg, Code: se.Code})
		report.Close()
		fmt.Fprintln(os.Stderr, "start failed:", err)
		return 1
	}
	// The intermediate stages of the init are our zombies: reap them before
	// anyone counts the container's processes.
	initWS, initDone := s.reapSome()
	json.NewEncoder(report).Encode(startReport{Pid: pid})
	report.Close()

	go s.serve()
	if s.cfg.Spec.AttachOnStart {
		time.AfterFunc(attachWindow, s.releasePumps)
	} else {
		s.releasePumps()
	}
	// The start made garbage (configs, bootstrap data): give it back now.
	s.cfg.Config = nil
	debug.FreeOSMemory()
	if os.Getenv("WHARF_SHIM_DEBUG") != "" {
		var ms goruntime.MemStats
		goruntime.ReadMemStats(&ms)
		fmt.Fprintf(os.Stderr, "memstats after start: heapInuse %d stackInuse %d gcSys %d otherSys %d heapObjects %d\n",
			ms.HeapInuse, ms.StackInuse, ms.GCSys, ms.OtherSys, ms.HeapObjects)
	}

	ws := initWS
	if !initDone {
		ws = s.reap(sigc)
	}
	go s.reapForever(sigc)
	s.finish(ws)
	return 0
}

// start prepares stdio and the socket, creates and starts the container.
func (s *shim) start() (int, error) {
	if err := readJSON(filepath.Join(s.dir, shimConfigFile), &s.cfg); err != nil {
		return 0, err
	}
	if s.cfg.Config == nil {
		return 0, errors.New("shim: no container configuration")
	}
	sock := filepath.Join(s.dir, shimSocketFile)
	os.Remove(sock)
	name, _, err := sockName(sock) // a long path's folder descriptor stays open as long as the shim
	if err != nil {
		return 0, err
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: name, Net: "unix"})
	if err != nil {
		return 0, err
	}
	s.ln = ln

	sp := s.cfg.Spec
	p := &libcontainer.Process{
		Args:             s.cfg.Process.Args,
		Env:              s.cfg.Process.Env,
		Cwd:              s.cfg.Process.Cwd,
		UID:              s.cfg.Process.UID,
		GID:              s.cfg.Process.GID,
		AdditionalGroups: s.cfg.Process.AdditionalGroups,
		Init:             true,
	}
	var childEnds []*os.File
	closeChildEnds := func() {
		for _, f := range childEnds {
			f.Close()
		}
		childEnds = nil
	}
	defer closeChildEnds()
	var consoleSock *os.File
	if sp.Tty {
		parent, child, err := socketpair()
		if err != nil {
			return 0, err
		}
		consoleSock = parent
		defer parent.Close()
		p.ConsoleSocket = child
		childEnds = append(childEnds, child)
	} else {
		or, ow, err := os.Pipe()
		if err != nil {
			return 0, err
		}
		er, ew, err := os.Pipe()
		if err != nil {
			return 0, err
		}
		p.Stdout, p.Stderr = ow, ew
		childEnds = append(childEnds, ow, ew)
		s.outputs = []*os.File{or, er}
		if sp.Stdin {
			ir, iw, err := os.Pipe()
			if err != nil {
				return 0, err
			}
			p.Stdin = ir
			childEnds = append(childEnds, ir)
			s.stdin = iw
		}
	}

	unlock, err := lockFile(filepath.Join(s.root, cgroupLockFile), unix.LOCK_SH)
	if err != nil {
		return 0, err
	}
	ctr, err := libcontainer.Create(s.dir, s.id, s.cfg.Config)
	if err != nil {
		unlock()
		return 0, err
	}
	err = ctr.Run(p)
	unlock()
	if err != nil {
		_ = ctr.Destroy()
		return 0, err
	}
	closeChildEnds()
	pid, err := p.Pid()
	if err != nil {
		return 0, err
	}
	s.initPid = pid
	if st, err := ctr.State(); err == nil {
		s.cgroupPaths = st.CgroupPaths
	}
	s.cgroup = &cgroups.Cgroup{Path: s.cfg.Config.Cgroups.Path, Resources: &cgroups.Resources{}}
	if consoleSock != nil {
		master, err := recvFd(consoleSock)
		if err != nil {
			_ = ctr.Signal(unix.SIGKILL)
			_, _ = p.Wait()
			_ = ctr.Destroy()
			return 0, fmt.Errorf("receiving the container's console: %w", err)
		}
		master = pollable(master)
		s.console = master
		s.outputs = []*os.File{master}
		if sp.Stdin {
			s.stdin = master
		}
	}
	return pid, nil
}

// pollable re-wraps f in non-blocking mode so that reads can be interrupted by deadlines and Close.
func pollable(f *os.File) *os.File {
	fd, err := unix.Dup(int(f.Fd()))
	if err != nil {
		return f
	}
	f.Close()
	unix.CloseOnExec(fd)
	_ = unix.SetNonblock(fd, true)
	return os.NewFile(uintptr(fd), "console")
}

func (s *shim) releasePumps() {
	s.pumpOnce.Do(func() {
		var lw *logfile.Writer
		if s.cfg.Spec.LogPath != "" {
			w, err := logfile.Open(s.cfg.Spec.LogPath)
			if err != nil {
				fmt.Fprintln(os.Stderr, "log:", err)
			} else {
				lw = w
			}
		}
		for i, f := range s.outputs {
			typ, name := byte(frameStdout), "stdout"
			if i == 1 {
				typ, name = frameStderr, "stderr"
			}
			var sw *logfile.StreamWriter
			if lw != nil {
				sw = lw.Stream(name)
			}
			s.pumps.Add(1)
			go s.pump(f, typ, sw)
		}
		if lw != nil {
			go func() { s.pumps.Wait(); lw.Close() }()
		}
		close(s.pumpGo)
	})
}

// pump copies one output stream to the log and the attachers until EOF (for a pty: EIO).
func (s *shim) pump(r *os.File, typ byte, lw *logfile.StreamWriter) {
	defer s.pumps.Done()
	buf := make([]byte, 32*1024)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if lw != nil {
				if _, werr := lw.Write(buf[:n]); werr != nil {
					fmt.Fprintln(os.Stderr, "log:", werr)
				}
			}
			s.broadcast(typ, buf[:n])
		}
		if err != nil {
			break
		}
	}
	if lw != nil {
		lw.Close()
	}
}

func (s *shim) broadcast(typ byte, p []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.attachers {
		c.SetWriteDeadline(time.Now().Add(attachWriteTimeout))
		if err := writeFrame(c, typ, p); err != nil {
			delete(s.attachers, c)
			c.Close()
		}
	}
}

// reapSome reaps every child that has exited, without blocking; it reports
// the init's wait status once that is among them.
func (s *shim) reapSome() (unix.WaitStatus, bool) {
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
		if pid == s.initPid {
			initWS, found = ws, true
		}
	}
}

// reap waits for the container's init to exit, reaping every other child on the way.
func (s *shim) reap(sigc chan os.Signal) unix.WaitStatus {
	for {
		if ws, ok := s.reapSome(); ok {
			return ws
		}
		<-sigc
	}
}

func (s *shim) reapForever(sigc chan os.Signal) {
	for range sigc {
		s.reapSome()
	}
}

func exitCode(ws unix.WaitStatus) int {
	switch {
	case ws.Exited():
		return ws.ExitStatus()
	case ws.Signaled():
		return 128 + int(ws.Signal())
	}
	return 255
}

// finish records the exit once the output has drained, tells everyone, and stops serving.
func (s *shim) finish(ws unix.WaitStatus) {
	exitedAt := time.Now().UTC()
	<-s.pumpGo // with AttachOnStart, the output waits for its first reader (or attachWindow)
	drained := make(chan struct{})
	go func() { s.pumps.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(drainTimeout):
		// something still holds the write end: stop reading
		for _, f := range s.outputs {
			f.SetReadDeadline(time.Now())
		}
		<-drained
	}
	rec := exitRecord{Code: exitCode(ws), ExitedAt: exitedAt, OOMKilled: s.oomKilled()}
	b, _ := json.Marshal(rec)
	if err := writeFileAtomic(filepath.Join(s.dir, exitFile), b, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "writing exit status:", err)
	}

	s.mu.Lock()
	s.exited = true
	s.exit = rec
	close(s.exitCh)
	for c := range s.attachers {
		c.SetWriteDeadline(time.Now().Add(time.Second))
		writeFrame(c, frameExit, b)
		c.Close()
	}
	s.attachers = map[*net.UnixConn]struct{}{}
	s.mu.Unlock()

	s.ln.Close() // also unlinks shim.sock: later clients read exit.json
	<-s.acceptDone
	done := make(chan struct{})
	go func() { s.handlers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
	}
	s.stdinMu.Lock()
	if s.stdin != nil && s.stdin != s.console {
		s.stdin.Close()
	}
	s.stdin = nil
	s.stdinMu.Unlock()
}

func (s *shim) oomKilled() bool {
	if s.cgroupPaths == nil {
		return false
	}
	m, err := manager.NewWithPaths(s.cgroup, s.cgroupPaths)
	if err != nil {
		return false
	}
	n, err := m.OOMKillCount()
	return err == nil && n > 0
}

func (s *shim) serve() {
	defer close(s.acceptDone)
	for {
		c, err := s.ln.AcceptUnix()
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue
			}
			return
		}
		s.handlers.Add(1)
		go s.handle(c)
	}
}

func (s *shim) handle(c *net.UnixConn) {
	defer s.handlers.Done()
	defer c.Close()
	br := bufio.NewReaderSize(c, 4096)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := br.ReadSlice('\n')
	if err != nil {
		return
	}
	c.SetReadDeadline(time.Time{})
	var req request
	if err := json.Unmarshal(line, &req); err != nil {
		writeJSONLine(c, exitRecord{Error: "bad request"})
		return
	}
	switch req.Op {
	case "wait":
		gone := make(chan struct{})
		go func() { io.Copy(io.Discard, br); close(gone) }()
		select {
		case <-s.exitCh:
			s.mu.Lock()
			rec := s.exit
			s.mu.Unlock()
			writeJSONLine(c, rec)
		case <-gone:
		}
	case "resize":
		msg := ""
		if err := s.resize(req.Width, req.Height); err != nil {
			msg = err.Error()
		}
		writeJSONLine(c, exitRecord{Error: msg})
	case "attach":
		s.attach(c, br, req.Stdin)
	default:
		writeJSONLine(c, exitRecord{Error: "unknown request " + req.Op})
	}
}

func writeJSONLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

func (s *shim) resize(w, h uint16) error {
	if s.console == nil {
		return nil // not a tty: nothing to size
	}
	return setWinsize(s.console, w, h)
}

func (s *shim) attach(c *net.UnixConn, br *bufio.Reader, stdin bool) {
	s.mu.Lock()
	c.SetWriteDeadline(time.Now().Add(attachWriteTimeout))
	if err := writeFrame(c, frameAck, nil); err != nil {
		s.mu.Unlock()
		return
	}
	if s.exited {
		b, _ := json.Marshal(s.exit)
		writeFrame(c, frameExit, b)
		s.mu.Unlock()
		return
	}
	s.attachers[c] = struct{}{}
	s.mu.Unlock()
	s.releasePumps()

	var buf []byte
	for {
		typ, p, err := readFrame(br, buf)
		buf = p
		if err != nil {
			break
		}
		if !stdin {
			continue
		}
		switch typ {
		case frameStdin:
			s.writeStdin(p)
		case frameStdinEOF:
			s.closeStdin()
		}
	}
	s.mu.Lock()
	delete(s.attachers, c)
	s.mu.Unlock()
}

func (s *shim) writeStdin(p []byte) {
	s.stdinMu.Lock()
	defer s.stdinMu.Unlock()
	if s.stdin != nil {
		s.stdin.Write(p)
	}
}

// closeStdin gives the container EOF on stdin (docker run -i: the client's stdin ended).
// A tty cannot be half-closed: there it does nothing.
func (s *shim) closeStdin() {
	s.stdinMu.Lock()
	defer s.stdinMu.Unlock()
	if s.stdin != nil && s.stdin != s.console {
		s.stdin.Close()
		s.stdin = nil
	}
}

// lockFile takes a flock on path (created if needed) and returns its release.
func lockFile(path string, how int) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err = unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}

// startErrorFor maps a failure to start the container to what docker run
// exits with, the way Docker does: 127 when the command is not found, 126
// when it cannot be executed, 125 otherwise.
func startErrorFor(err error, args []string) *StartError {
	var se *StartError
	if errors.As(err, &se) {
		return se
	}
	// libcontainer says "unable to start container process: error during container init: exec: …";
	// the engine adds Docker's own prefix, so keep only the cause.
	msg := err.Error()
	for _, p := range []string{"unable to start container process: ", "error during container init: "} {
		msg = strings.TrimPrefix(msg, p)
	}
	cmd := ""
	if len(args) > 0 {
		cmd = args[0]
	}
	code := 125
	switch {
	case cmd != "" && strings.Contains(msg, cmd) && (strings.Contains(msg, "executable file not found") || strings.Contains(msg, "no such file or directory")):
		code = 127
	case strings.Contains(msg, "permission denied") || strings.Contains(msg, "exec format error") || strings.Contains(msg, "is a directory"):
		code = 126
	case strings.Contains(msg, "not a directory"):
		code = 127
		msg += ": Are you trying to mount a directory onto a file (or vice-versa)? Check if the specified host path exists and is the expected type"
	}
	return &StartError{Code: code, Msg: msg}
}
