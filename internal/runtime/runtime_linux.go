package runtime

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/moby/sys/mountinfo"
	"github.com/opencontainers/runc/libcontainer"
	"golang.org/x/sys/unix"
)

// ErrNotRunning is returned (wrapped) by operations that need a running container.
var ErrNotRunning = errors.New("container is not running")

// ErrNotFound is returned (wrapped) by Load for an ID the runtime does not know.
var ErrNotFound = errors.New("no such container")

// Runtime runs containers with libcontainer, each under a shim. It keeps its
// state under root: <root>/<id>/ holds shim.json (what to run), shim.sock,
// shim.log, exit.json and libcontainer's state (<root>/<id>/<id>/).
type Runtime struct {
	root         string
	binary       string
	cgroupParent string
	warm         warmPool // an idle shim started ahead (warmshim_linux.go)
}

var _ API = (*Runtime)(nil)

// New returns a Runtime keeping state in root (e.g. /run/wharf/runtime) and
// re-executing binary (default: this executable) as the shim and the
// container init. The binary's folder must not contain root (nor the other
// way round): libcontainer protects the binary with an overlay of that folder,
// and would otherwise fall back to copying the whole binary for each start.
func New(root string, binary string) (*Runtime, error) {
	if root == "" {
		return nil, errors.New("runtime: no state root")
	}
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	if binary == "" {
		binary, err = os.Readlink("/proc/self/exe")
		if err != nil {
			return nil, fmt.Errorf("runtime: finding this executable: %w", err)
		}
	}
	if binary, err = filepath.Abs(binary); err != nil {
		return nil, err
	}
	if st, err := os.Stat(binary); err != nil {
		return nil, fmt.Errorf("runtime: %w", err)
	} else if st.Mode()&0o111 == 0 {
		return nil, fmt.Errorf("runtime: %s is not executable", binary)
	}
	binDir := filepath.Dir(binary)
	if within(root, binDir) || within(binDir, root) {
		return nil, fmt.Errorf("runtime: the state root %s and the folder of %s must not contain one another", root, binary)
	}
	if err := os.MkdirAll(root, 0o711); err != nil {
		return nil, err
	}
	r := &Runtime{root: root, binary: binary, cgroupParent: DefaultCgroupParent}
	if mon, err := os.Stat(filepath.Join(binDir, monitorBinary)); err == nil && mon.Mode().IsRegular() &&
		os.Getenv("WHARF_SHIM_NO_MONITOR") == "" && os.Getenv("WHARF_NO_WARM_SHIM") == "" {
		r.warm.enabled = true
	}
	return r, nil
}

// within reports whether path is dir or inside it.
func within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// Root is the state folder.
func (r *Runtime) Root() string { return r.root }

var validID = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.+-]*$`)

func checkID(id string) error {
	if !validID.MatchString(id) || len(id) > 128 {
		return fmt.Errorf("invalid container ID %q", id)
	}
	return nil
}

// Start writes the container's configuration, launches its shim (a new
// session, not a child that dies with us) and returns once the shim reports
// the main process running, or its start error (*StartError). ctx is only
// looked at before the shim is launched: a start under way is not abandoned
// half-done.
func (r *Runtime) Start(ctx context.Context, spec Spec) (Task, error) {
	if err := checkID(spec.ID); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	dir := filepath.Join(r.root, spec.ID)
	if err := os.Mkdir(dir, 0o711); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("container %s already exists in the runtime: delete it first", spec.ID)
		}
		return nil, err
	}
	fail := func(err error) (Task, error) {
		r.cleanup(spec.ID)
		return nil, err
	}
	cfg, proc, err := buildConfig(&spec, r.cgroupParent)
	if err != nil {
		return fail(&StartError{Code: 125, Msg: err.Error()})
	}
	gated := spec.Gate != nil
	b, err := json.Marshal(shimConfig{Spec: spec, Config: cfg, Process: *proc, CgroupParent: r.cgroupParent, Gated: gated})
	if err != nil {
		return fail(err)
	}
	if err := writeStateFile(filepath.Join(dir, shimConfigFile), b, 0o600); err != nil {
		return fail(err)
	}

	// The idle shim started ahead, if there is one; else a new one. Either way, once this start
	// is over, another is made ready for the next.
	defer r.refillWarm()
	var (
		pr       *os.File
		shimProc *os.Process
		shimDone chan struct{}
		ctl      *os.File // the shim's control pipe, for the gate's word
	)
	if w := r.takeWarm(); w != nil && w.hand(spec.ID) == nil {
		pr, shimProc, shimDone, ctl = w.report, w.cmd.Process, w.done, w.ctl
	} else {
		if w != nil {
			w.cmd.Process.Kill()
			w.stop()
		}
		p, pw, err := os.Pipe()
		if err != nil {
			return fail(err)
		}
		logf, err := os.OpenFile(filepath.Join(dir, shimLogFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			p.Close()
			pw.Close()
			return fail(err)
		}
		files, env := []*os.File{pw}, shimEnv()
		var ctlR *os.File
		if gated {
			if ctlR, ctl, err = os.Pipe(); err != nil {
				p.Close()
				pw.Close()
				logf.Close()
				return fail(err)
			}
			files, env = append(files, ctlR), shimEnvWith(shimCloseFdsCtlEnv)
		}
		cmd := r.shimCommand(spec.ID, env, files...)
		cmd.Stdout, cmd.Stderr = logf, logf
		err = cmd.Start()
		pw.Close()
		logf.Close()
		if ctlR != nil {
			ctlR.Close()
		}
		if err != nil {
			p.Close()
			if ctl != nil {
				ctl.Close()
			}
			return fail(fmt.Errorf("starting the shim: %w", err))
		}
		pr, shimProc, shimDone = p, cmd.Process, make(chan struct{})
		go func() { cmd.Wait(); close(shimDone) }() // reap it whenever it ends
	}
	_ = os.WriteFile(filepath.Join(dir, shimPidFile), []byte(strconv.Itoa(shimProc.Pid)), 0o600)
	// While the shim sets the container up, the caller finishes what the process needs (its network);
	// its word lets the process run or aborts the start.
	var gateErr error
	if gated {
		gateErr = <-spec.Gate
		word := "go\n"
		if gateErr != nil {
			word = "abort\n"
		}
		ctl.WriteString(word)
	}
	if ctl != nil {
		ctl.Close()
	}

	var rep startReport
	derr := json.NewDecoder(pr).Decode(&rep)
	pr.Close()
	if derr != nil || rep.Error != "" {
		select {
		case <-shimDone:
		case <-time.After(10 * time.Second):
			shimProc.Kill()
			<-shimDone
		}
		if gateErr != nil {
			return fail(gateErr)
		}
		if derr != nil {
			out, _ := os.ReadFile(filepath.Join(dir, shimLogFile))
			return fail(&StartError{Code: 125, Msg: fmt.Sprintf("shim for %s failed: %s", spec.ID, strings.TrimSpace(string(out)))})
		}
		return fail(&StartError{Code: rep.Code, Msg: rep.Error})
	}
	return &task{r: r, id: spec.ID, dir: dir, pid: rep.Pid}, nil
}

// shimCommand is the shim for container idArg (or warmArg), in a session of its own, with files as its
// descriptors 3, 4, ….
func (r *Runtime) shimCommand(idArg string, env []string, files ...*os.File) *exec.Cmd {
	cmd := exec.Command(r.binary, ShimArg, r.root, idArg)
	cmd.Dir = "/"
	cmd.Env = env
	cmd.ExtraFiles = files
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	return cmd
}

// shimEnv is the shim's whole environment: it is small and single-threaded on purpose.
func shimEnv() []string {
	path := os.Getenv("PATH")
	if path == "" {
		path = DefaultPath
	}
	env := []string{"PATH=" + path, "GOMAXPROCS=1", "GOGC=25", shimCloseFdsEnv}
	if v := os.Getenv("WHARF_SHIM_DEBUG"); v != "" {
		env = append(env, "WHARF_SHIM_DEBUG="+v)
	}
	return env
}

// Load reattaches to a container started earlier, also by a previous daemon.
func (r *Runtime) Load(id string) (Task, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	dir := filepath.Join(r.root, id)
	if _, err := os.Stat(filepath.Join(dir, shimConfigFile)); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return &task{r: r, id: id, dir: dir}, nil
}

// List returns the IDs of the containers in the state root (running or exited, not deleted).
func (r *Runtime) List() ([]string, error) {
	ents, err := os.ReadDir(r.root)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, e := range ents {
		if !e.IsDir() || checkID(e.Name()) != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(r.root, e.Name(), shimConfigFile)); err == nil {
			ids = append(ids, e.Name())
		}
	}
	return ids, nil
}

// cleanup removes what a container left: its cgroups (and the parent folder
// when empty, which Destroy leaves behind) and its state folder.
func (r *Runtime) cleanup(id string) error {
	r.removeCgroups(id)
	return os.RemoveAll(filepath.Join(r.root, id))
}

func (r *Runtime) removeCgroups(id string) {
	unlock, err := lockFile(filepath.Join(r.root, cgroupLockFile), unix.LOCK_EX)
	if err == nil {
		defer unlock()
	}
	mounts, err := mountinfo.GetMounts(mountinfo.FSTypeFilter("cgroup", "cgroup2"))
	if err != nil {
		return
	}
	seen := map[string]bool{}
	for _, m := range mounts {
		if seen[m.Mountpoint] {
			continue
		}
		seen[m.Mountpoint] = true
		parent := filepath.Join(m.Mountpoint, r.cgroupParent)
		unix.Rmdir(filepath.Join(parent, id))
		unix.Rmdir(parent) // fails (EBUSY) while other containers use it
	}
}

// task is the daemon's handle on one container; it holds no connection and
// can be made anew at any time (Load).
type task struct {
	r   *Runtime
	id  string
	dir string
	pid int

	mu  sync.Mutex
	ctr *libcontainer.Container
	cfg *shimConfig
}

func (t *task) ID() string { return t.id }

func (t *task) Pid() int {
	if t.pid == 0 {
		if c, err := t.container(); err == nil {
			if st, err := c.State(); err == nil {
				t.pid = st.InitProcessPid
			}
		}
	}
	return t.pid
}

// container loads libcontainer's view of the container.
func (t *task) container() (*libcontainer.Container, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ctr != nil {
		return t.ctr, nil
	}
	c, err := libcontainer.Load(t.dir, t.id)
	if err != nil {
		if errors.Is(err, libcontainer.ErrNotExist) {
			return nil, fmt.Errorf("container %s: %w", t.id, ErrNotRunning)
		}
		return nil, err
	}
	t.ctr = c
	return c, nil
}

func (t *task) config() (*shimConfig, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cfg != nil {
		return t.cfg, nil
	}
	var c shimConfig
	if err := readJSON(filepath.Join(t.dir, shimConfigFile), &c); err != nil {
		return nil, err
	}
	t.cfg = &c
	return t.cfg, nil
}

func (t *task) running() (*libcontainer.Container, error) {
	c, err := t.container()
	if err != nil {
		return nil, err
	}
	st, err := c.Status()
	if err != nil {
		return nil, err
	}
	if st != libcontainer.Running && st != libcontainer.Paused {
		return nil, fmt.Errorf("container %s: %w", t.id, ErrNotRunning)
	}
	return c, nil
}

func mapErr(id string, err error) error {
	if errors.Is(err, libcontainer.ErrNotRunning) {
		return fmt.Errorf("container %s: %w", id, ErrNotRunning)
	}
	return err
}

func (t *task) Kill(sig syscall.Signal) error {
	c, err := t.container()
	if err != nil {
		return err
	}
	return mapErr(t.id, c.Signal(sig))
}

func (t *task) Pause() error {
	c, err := t.running()
	if err != nil {
		return err
	}
	return mapErr(t.id, c.Pause())
}

func (t *task) Resume() error {
	c, err := t.container()
	if err != nil {
		return err
	}
	if err := c.Resume(); err != nil {
		if errors.Is(err, libcontainer.ErrNotPaused) {
			return fmt.Errorf("container %s is not paused", t.id)
		}
		return mapErr(t.id, err)
	}
	return nil
}

func (t *task) Pids() ([]int, error) {
	c, err := t.container()
	if err != nil {
		return nil, err
	}
	return c.Processes()
}

func (t *task) Stats() (*Stats, error) {
	c, err := t.running()
	if err != nil {
		return nil, err
	}
	st, err := c.Stats()
	if err != nil {
		return nil, err
	}
	out := &Stats{Read: time.Now()}
	if cs := st.CgroupStats; cs != nil {
		out.CPUTotalNanos = cs.CpuStats.CpuUsage.TotalUsage
		out.MemoryUsage = cs.MemoryStats.Usage.Usage
		out.MemoryLimit = cs.MemoryStats.Usage.Limit
		out.PidsCurrent = cs.PidsStats.Current
		out.PidsLimit = cs.PidsStats.Limit
	}
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) == nil {
		if total := uint64(si.Totalram) * uint64(si.Unit); out.MemoryLimit == 0 || out.MemoryLimit > total {
			out.MemoryLimit = total // "unlimited" reads as the host's memory, as in docker stats
		}
	}
	out.SystemNanos, out.OnlineCPUs = systemCPU()
	return out, nil
}

// systemCPU returns the host's total CPU time (the "cpu" line of /proc/stat in
// nanoseconds, like Docker's system_cpu_usage) and the number of CPUs listed there.
func systemCPU() (uint64, uint32) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	var total uint64
	var cpus uint32
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "cpu") {
			break
		}
		fields := strings.Fields(line)
		if fields[0] == "cpu" {
			for _, v := range fields[1:min(len(fields), 8)] { // user nice system idle iowait irq softirq
				n, _ := strconv.ParseUint(v, 10, 64)
				total += n
			}
		} else {
			cpus++
		}
	}
	const clockTicks = 100 // USER_HZ
	return total * (1e9 / clockTicks), cpus
}

func (t *task) sockPath() string { return filepath.Join(t.dir, shimSocketFile) }

func (t *task) dial() (*net.UnixConn, error) {
	name, release, err := sockName(t.sockPath())
	if err != nil {
		return nil, err
	}
	c, err := net.DialTimeout("unix", name, 5*time.Second)
	release()
	if err != nil {
		return nil, err
	}
	return c.(*net.UnixConn), nil
}

func (t *task) readExit() (exitRecord, error) {
	var rec exitRecord
	err := readJSON(filepath.Join(t.dir, exitFile), &rec)
	return rec, err
}

// Wait asks the shim (which answers once the main process exited and its
// output is logged); without a shim it reads exit.json. Should the shim have
// died before recording the exit, the exit is awaited through a pidfd and
// recorded with code 255 (unknown).
func (t *task) Wait(ctx context.Context) (ExitStatus, error) {
	for {
		if rec, err := t.readExit(); err == nil {
			return exitStatusOf(rec), nil
		}
		c, err := t.dial()
		if err != nil {
			if rec, err := t.readExit(); err == nil {
				return exitStatusOf(rec), nil
			}
			return t.waitOrphan(ctx)
		}
		rec, err := waitOnConn(ctx, c)
		if err == nil {
			return exitStatusOf(rec), nil
		}
		if ctx.Err() != nil {
			return ExitStatus{}, ctx.Err()
		}
		// The shim went away without answering: it is finishing (exit.json follows) or died.
		select {
		case <-ctx.Done():
			return ExitStatus{}, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func waitOnConn(ctx context.Context, c *net.UnixConn) (exitRecord, error) {
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	if err := writeJSONLine(c, request{Op: "wait"}); err != nil {
		return exitRecord{}, err
	}
	line, err := bufio.NewReader(c).ReadBytes('\n')
	if err != nil {
		return exitRecord{}, err
	}
	var rec exitRecord
	if err := json.Unmarshal(line, &rec); err != nil {
		return exitRecord{}, err
	}
	if rec.Error != "" {
		return exitRecord{}, errors.New(rec.Error)
	}
	return rec, nil
}

// waitOrphan waits for a container whose shim is gone without an exit record.
func (t *task) waitOrphan(ctx context.Context) (ExitStatus, error) {
	if _, err := os.Stat(filepath.Join(t.dir, shimConfigFile)); err != nil {
		return ExitStatus{}, fmt.Errorf("%w: %s", ErrNotFound, t.id)
	}
	if c, err := t.container(); err == nil {
		if st, err := c.State(); err == nil {
			if status, _ := c.Status(); status == libcontainer.Running || status == libcontainer.Paused {
				if err := waitPid(ctx, st.InitProcessPid); err != nil {
					return ExitStatus{}, err
				}
			}
		}
	} else if shimAlive(t.dir, t.r.root, t.id) {
		return ExitStatus{}, fmt.Errorf("container %s: the shim does not answer", t.id)
	}
	rec := exitRecord{Code: 255, ExitedAt: time.Now().UTC()}
	b, _ := json.Marshal(rec)
	if err := writeStateFile(filepath.Join(t.dir, exitFile), b, 0o644); err != nil {
		return ExitStatus{}, err
	}
	return exitStatusOf(rec), nil
}

// waitPid waits for a process that is not our child to exit.
func waitPid(ctx context.Context, pid int) error {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		if err == unix.ESRCH {
			return nil
		}
		return os.NewSyscallError("pidfd_open", err)
	}
	defer unix.Close(fd)
	for {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, 50)
		if err != nil && err != unix.EINTR {
			return os.NewSyscallError("poll", err)
		}
		if n > 0 {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// shimAlive reports whether the shim recorded for the container still runs.
func shimAlive(dir, root, id string) bool {
	pid := shimPid(dir, root, id)
	return pid > 0
}

// shimPid returns the shim's pid if that process is still this container's shim.
func shimPid(dir, root, id string) int {
	b, err := os.ReadFile(filepath.Join(dir, shimPidFile))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return 0
	}
	if !bytes.Contains(cmdline, []byte("\x00"+ShimArg+"\x00"+root+"\x00"+id+"\x00")) {
		return 0
	}
	return pid
}

// Attach streams the container's live output to stdout/stderr (nil: discarded)
// and stdin, if not nil, to the container (when Spec.Stdin). When stdin ends,
// the container's stdin is closed (docker run -i semantics; not for a tty).
// It returns nil when the container exited and its output was delivered, or
// ctx.Err(). A goroutine reading stdin may outlive the call until stdin returns.
func (t *task) Attach(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer) error {
	c, err := t.dial()
	if err != nil {
		if _, err := t.readExit(); err == nil {
			return nil
		}
		return fmt.Errorf("attaching to %s: %w", t.id, err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	if err := writeJSONLine(c, request{Op: "attach", Stdin: stdin != nil}); err != nil {
		return err
	}
	br := bufio.NewReaderSize(c, 32*1024)
	typ, buf, err := readFrame(br, nil)
	if err != nil || typ != frameAck {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if _, rerr := t.readExit(); rerr == nil {
			return nil
		}
		return fmt.Errorf("attaching to %s: %v", t.id, err)
	}
	if stdin != nil {
		go func() {
			b := make([]byte, 32*1024)
			for {
				n, err := stdin.Read(b)
				if n > 0 {
					if werr := writeFrame(c, frameStdin, b[:n]); werr != nil {
						return
					}
				}
				if err == io.EOF {
					writeFrame(c, frameStdinEOF, nil)
					return
				}
				if err != nil {
					return
				}
			}
		}()
	}
	for {
		typ, buf, err = readFrame(br, buf)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if _, rerr := t.readExit(); rerr == nil {
				return nil
			}
			return fmt.Errorf("attach to %s: connection to the shim lost: %v", t.id, err)
		}
		var w io.Writer
		switch typ {
		case frameStdout:
			w = stdout
		case frameStderr:
			w = stderr
		case frameExit:
			return nil
		}
		if w != nil {
			if _, err := w.Write(buf); err != nil {
				return err
			}
		}
	}
}

func (t *task) Resize(width, height uint16) error {
	c, err := t.dial()
	if err != nil {
		return fmt.Errorf("container %s: %w", t.id, ErrNotRunning)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if err := writeJSONLine(c, request{Op: "resize", Width: width, Height: height}); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadBytes('\n')
	if err != nil {
		return err
	}
	var rec exitRecord
	if err := json.Unmarshal(line, &rec); err != nil {
		return err
	}
	if rec.Error != "" {
		return errors.New(rec.Error)
	}
	return nil
}

// Delete destroys an exited container: its cgroups (and the empty parent),
// libcontainer's state, the shim (which normally has exited by itself) and
// <root>/<id>. A container still running 2 s into the call is refused (so
// Kill(SIGKILL) then Delete works); one left "created" by a shim that died
// during start is killed first.
func (t *task) Delete() error {
	c, lerr := t.container()
	if lerr == nil {
		status, err := c.Status()
		if err != nil {
			return err
		}
		switch status {
		case libcontainer.Running, libcontainer.Paused:
			// A SIGKILL just sent (Kill then Delete) needs a moment to land.
			if st, err := c.State(); err == nil {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				waitPid(ctx, st.InitProcessPid)
				cancel()
			}
			if status, err := c.Status(); err != nil || status == libcontainer.Running || status == libcontainer.Paused {
				return fmt.Errorf("cannot delete container %s: it is running: stop the container before removing", t.id)
			}
		case libcontainer.Created:
			_ = c.Signal(unix.SIGKILL)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	_, _ = t.Wait(ctx) // the shim records the exit and leaves
	cancel()
	if pid := shimPid(t.dir, t.r.root, t.id); pid > 0 {
		// it leaves right after recording the exit; make sure, then make it so
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := waitPid(ctx, pid)
		cancel()
		if err != nil && shimPid(t.dir, t.r.root, t.id) == pid {
			unix.Kill(pid, unix.SIGKILL)
		}
	}
	if lerr == nil {
		if err := c.Destroy(); err != nil {
			return err
		}
	}
	t.mu.Lock()
	t.ctr = nil
	t.mu.Unlock()
	return t.r.cleanup(t.id)
}
