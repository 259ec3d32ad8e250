package runtime

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	goruntime "runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/configs"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/wharfhq/wharf/internal/runtime/monitor"
)

// Files in <root>/<id>/.
const (
	shimConfigFile = "shim.json"
	shimSocketFile = monitor.SocketFile
	shimLogFile    = "shim.log"
	shimPidFile    = "shim.pid"
	exitFile       = monitor.ExitFile
	cgroupLockFile = "cgroups.lock" // in <root>
)

// monitorBinary is the program the shim exec's into once the container runs
// (internal/runtime/cmd/wharf-monitor), looked up beside the shim's own binary.
const monitorBinary = "wharf-monitor"

// shimConfig is <root>/<id>/shim.json, written by Start for the shim (and for Exec's defaults).
type shimConfig struct {
	Spec         Spec            `json:"spec"`
	Config       *configs.Config `json:"config"`
	Process      process         `json:"process"`
	CgroupParent string          `json:"cgroupParent"`
	// Gated: set the container up, then wait for "go" (or "abort") on the control pipe before its
	// process is exec'd (Spec.Gate).
	Gated bool `json:"gated,omitempty"`
}

// shim is the start half of the per-container process; package monitor is the rest.
type shim struct {
	root, id, dir string
	ctl           *bufio.Reader // the control pipe (fd 4), when there is one
	cfg           shimConfig
	ln            *net.UnixListener
	initPid       int
	oomFile       string
	stdin         *os.File   // the container's stdin (pipe write end or pty master); nil if none
	console       *os.File   // pty master when Tty
	outputs       []*os.File // what the monitor reads
}

// ShimMain is the per-container supervisor (argv: <binary> __shim <root> <id>),
// started by Runtime.Start in a session of its own. It creates and starts the
// container (so it is the parent of the container's init and reaps it), tells
// its parent the outcome on fd 3, copies the container's output to the log
// and to attachers, serves <root>/<id>/shim.sock, and when the main process
// has exited and its output drained writes exit.json and exits.
func ShimMain(args []string) int {
	// Until the container runs, no collection: the start allocates a few MB (configs, libcontainer's
	// state) and a collection every MB would delay it. The shim then becomes the monitor program
	// (GOGC=25 from its environment), or, without one, monitors with a small heap target itself.
	debug.SetGCPercent(-1)
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
	// The attribute survives the exec into the monitor.
	_ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)

	var ctl *bufio.Reader
	if args[1] == warmArg { // started ahead: wait for a container
		id, r, ok := warmShimID(args[0])
		if !ok {
			return 0
		}
		args, ctl = []string{args[0], id}, r
	}
	s := &shim{root: args[0], id: args[1], dir: filepath.Join(args[0], args[1]), ctl: ctl}
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
	initWS, initDone := monitor.ReapSome(pid)
	json.NewEncoder(report).Encode(startReport{Pid: pid})
	report.Close()

	st := monitor.State{
		Dir:           s.dir,
		InitPid:       pid,
		LogPath:       s.cfg.Spec.LogPath,
		LogMaxSize:    s.cfg.Spec.LogMaxSize,
		LogMaxFiles:   s.cfg.Spec.LogMaxFiles,
		AttachOnStart: s.cfg.Spec.AttachOnStart,
		Tty:           s.cfg.Spec.Tty,
		OOMFile:       s.oomFile,
	}
	if !initDone && waitExit(pid, shortRunWindow) {
		initWS, initDone = monitor.ReapSome(pid)
	}
	if initDone {
		ws := uint32(initWS)
		st.InitStatus = &ws
	} else if mon := s.monitorPath(); mon != "" {
		err := s.execMonitor(mon, st) // returns only on failure
		fmt.Fprintln(os.Stderr, "exec of the monitor failed, monitoring in the shim:", err)
	}
	if !initDone {
		// The start made garbage (configs, bootstrap data): give it back now, and stay small from here on.
		s.cfg.Config = nil
		debug.SetGCPercent(25)
		debug.FreeOSMemory()
	}
	monitor.Run(st, monitor.Files{Listener: s.ln, Outputs: s.outputs, Stdin: s.stdin, Console: s.console})
	return 0
}

// shortRunWindow: a container whose main process ends this soon after the start (`docker run --rm
// image cmd` with a quick command) is finished by the shim itself: exec'ing the monitor program and
// booting its runtime would take longer than such a run. Others are handed to the monitor after this
// delay, which nobody waits for (the start has been reported; attachers queue on the socket).
const shortRunWindow = 5 * time.Millisecond

// waitExit reports whether process pid (our child) exits within d, without reaping it.
func waitExit(pid int, d time.Duration) bool {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return err == unix.ESRCH
	}
	defer unix.Close(fd)
	deadline := time.Now().Add(d)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return false
		}
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, int(left.Milliseconds())+1)
		if err == unix.EINTR {
			continue
		}
		return err == nil && n > 0
	}
}

// monitorPath is the monitor program beside the shim's binary, or "" (then the shim monitors itself).
func (s *shim) monitorPath() string {
	if os.Getenv("WHARF_SHIM_NO_MONITOR") != "" {
		return ""
	}
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	p := filepath.Join(filepath.Dir(exe), monitorBinary)
	if fi, err := os.Stat(p); err != nil || !fi.Mode().IsRegular() || fi.Mode()&0o111 == 0 {
		return ""
	}
	return p
}

// execMonitor replaces this process with the monitor program, handing over
// the socket and the container's stdio by descriptor number. The pid, and
// with it the parenthood of the container's init, stays.
func (s *shim) execMonitor(path string, st monitor.State) error {
	lf, err := s.ln.File() // a duplicate, in blocking mode
	if err != nil {
		return err
	}
	inherit := func(f *os.File) int {
		fd := int(f.Fd())
		_, _ = unix.FcntlInt(uintptr(fd), unix.F_SETFD, 0)
		return fd
	}
	st.ListenerFd = inherit(lf)
	st.StdinFd = -1
	for _, f := range s.outputs {
		st.OutputFds = append(st.OutputFds, inherit(f))
	}
	if s.stdin != nil {
		st.StdinFd = inherit(s.stdin)
	}
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	err = unix.Exec(path, []string{path, ShimArg, s.root, s.id, string(b)}, os.Environ())
	// still here: put things back as they were
	for _, f := range append([]*os.File{s.stdin}, s.outputs...) {
		if f != nil {
			unix.CloseOnExec(int(f.Fd()))
			_ = unix.SetNonblock(int(f.Fd()), true)
		}
	}
	lf.Close()
	return err
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
	if s.cfg.Gated {
		err = ctr.Start(p) // everything but the exec of the process: it waits on libcontainer's exec fifo
		unlock()
		if err == nil {
			err = s.awaitGate()
		}
		if err == nil {
			err = ctr.Exec()
		}
	} else {
		err = ctr.Run(p)
		unlock()
	}
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
		s.oomFile = oomCountFile(st.CgroupPaths)
	}
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

// awaitGate waits for the daemon's word on the control pipe: "go" lets the container's process run;
// anything else (or the daemon gone) aborts the start.
func (s *shim) awaitGate() error {
	if s.ctl == nil {
		s.ctl = bufio.NewReader(os.NewFile(4, "shim-control"))
	}
	line, err := s.ctl.ReadString('\n')
	if err == nil && line == "go\n" {
		return nil
	}
	return errors.New("start aborted: the container's network could not be set up")
}

// oomCountFile is the cgroup file that counts the container's OOM kills:
// memory.oom_control in the v1 memory hierarchy, memory.events on v2.
func oomCountFile(paths map[string]string) string {
	if p, ok := paths["memory"]; ok && p != "" {
		return filepath.Join(p, "memory.oom_control")
	}
	if p, ok := paths[""]; ok && p != "" {
		return filepath.Join(p, "memory.events")
	}
	return ""
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
