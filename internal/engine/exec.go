package engine

import (
	"context"
	"io"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/wharfhq/wharf/internal/runtime"
)

// ExecConfig is a process to run in a running container.
type ExecConfig struct {
	Cmd          []string
	Env          []string
	User         string
	WorkingDir   string
	Tty          bool
	AttachStdin  bool
	AttachStdout bool
	AttachStderr bool
	Privileged   bool
}

// Exec is one exec session.
type Exec struct {
	ID          string
	ContainerID string
	Config      ExecConfig

	mu       sync.Mutex
	running  bool
	exitCode *int
	pid      int
	proc     runtime.Process
	done     chan struct{}
}

// ExecState is a snapshot of an exec session.
type ExecState struct {
	ID, ContainerID string
	Config          ExecConfig
	Running         bool
	ExitCode        *int
	Pid             int
}

// ExecCreate registers an exec session in a running container.
func (e *Engine) ExecCreate(ref string, cfg ExecConfig) (string, error) {
	c, err := e.Container(ref)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.State.Status == StatePaused {
		return "", Conflict("Container %s is paused, unpause the container before exec", c.ID)
	}
	if !c.Running() {
		return "", Conflict("container %s is not running", c.ID)
	}
	if len(cfg.Cmd) == 0 {
		return "", Invalid("No exec command specified")
	}
	x := &Exec{ID: newID(), ContainerID: c.ID, Config: cfg, done: make(chan struct{})}
	c.execs[x.ID] = x
	e.mu.Lock()
	e.execs[x.ID] = x
	e.mu.Unlock()
	return x.ID, nil
}

func (e *Engine) exec(id string) (*Exec, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	x, ok := e.execs[id]
	if !ok {
		return nil, NotFound("No such exec instance: %s", id)
	}
	return x, nil
}

// ExecStart runs the exec'd process, streaming its stdio, and returns when it exits.
func (e *Engine) ExecStart(ctx context.Context, id string, stdin io.Reader, stdout, stderr io.Writer) error {
	x, err := e.exec(id)
	if err != nil {
		return err
	}
	c, err := e.Container(x.ContainerID)
	if err != nil {
		return err
	}
	x.mu.Lock()
	if x.running || x.exitCode != nil {
		x.mu.Unlock()
		return Conflict("Error: Exec command %s is already running", id)
	}
	x.running = true
	x.mu.Unlock()
	c.mu.Lock()
	task := c.task
	env := mergeEnv(c.Config.Env, x.Config.Env)
	user := x.Config.User
	if user == "" {
		user = c.Config.User
	}
	cwd := x.Config.WorkingDir
	if cwd == "" {
		cwd = c.Config.WorkingDir
	}
	c.mu.Unlock()
	if cwd == "" {
		cwd = "/"
	}
	finish := func(code int) {
		x.mu.Lock()
		x.running = false
		x.exitCode = &code
		x.mu.Unlock()
		close(x.done)
		e.containerEvent(c, "exec_die", map[string]string{"execID": id, "exitCode": strconv.Itoa(code)})
	}
	if task == nil {
		finish(126)
		return Conflict("container %s is not running", c.ID)
	}
	if !x.Config.AttachStdin {
		stdin = nil
	}
	e.containerEvent(c, "exec_start: "+strings.Join(x.Config.Cmd, " "), map[string]string{"execID": id})
	proc, err := task.Exec(ctx, runtime.ProcessSpec{Args: x.Config.Cmd, Env: env, Cwd: cwd, User: user, Tty: x.Config.Tty}, stdin, stdout, stderr)
	if err != nil {
		code := 126
		if se, ok := err.(*runtime.StartError); ok {
			code = se.Code
		}
		finish(code)
		return err
	}
	x.mu.Lock()
	x.proc = proc
	x.pid = proc.Pid()
	x.mu.Unlock()
	code, _ := proc.Wait()
	finish(code)
	return nil
}

// ExecResize resizes an exec session's tty.
func (e *Engine) ExecResize(id string, w, h uint16) error {
	x, err := e.exec(id)
	if err != nil {
		return err
	}
	x.mu.Lock()
	p := x.proc
	x.mu.Unlock()
	if p == nil {
		return nil
	}
	return p.Resize(w, h)
}

// ExecInspect returns an exec session's state.
func (e *Engine) ExecInspect(id string) (*ExecState, error) {
	x, err := e.exec(id)
	if err != nil {
		return nil, err
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	return &ExecState{ID: x.ID, ContainerID: x.ContainerID, Config: x.Config, Running: x.running, ExitCode: x.exitCode, Pid: x.pid}, nil
}

// Top lists the container's processes like `ps` (args: ps options, default "-ef").
func (e *Engine) Top(ref string, psArgs string) ([]string, [][]string, error) {
	c, err := e.Container(ref)
	if err != nil {
		return nil, nil, err
	}
	c.mu.Lock()
	task := c.task
	running := c.State.Status == StateRunning || c.State.Status == StatePaused
	c.mu.Unlock()
	if !running || task == nil {
		return nil, nil, Conflict("container %s is not running", c.ID)
	}
	pids, err := task.Pids()
	if err != nil {
		return nil, nil, err
	}
	if psArgs == "" {
		psArgs = "-ef"
	}
	out, err := exec.Command("ps", strings.Fields(psArgs)...).Output()
	if err != nil {
		return nil, nil, Invalid("Error running ps: %v", err)
	}
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	titles := strings.Fields(lines[0])
	pidCol := -1
	for i, t := range titles {
		if t == "PID" {
			pidCol = i
		}
	}
	if pidCol < 0 {
		return nil, nil, Invalid("Couldn't find PID field in ps output")
	}
	want := map[string]bool{}
	for _, p := range pids {
		want[strconv.Itoa(p)] = true
	}
	var procs [][]string
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) <= pidCol || !want[f[pidCol]] {
			continue
		}
		if len(f) > len(titles) { // the last column (CMD) holds spaces
			f = append(f[:len(titles)-1], strings.Join(f[len(titles)-1:], " "))
		}
		procs = append(procs, f)
	}
	sort.SliceStable(procs, func(i, j int) bool {
		a, _ := strconv.Atoi(procs[i][pidCol])
		b, _ := strconv.Atoi(procs[j][pidCol])
		return a < b
	})
	return titles, procs, nil
}

// Stats samples a running container's resource use.
func (e *Engine) Stats(ref string) (*runtime.Stats, error) {
	c, err := e.Container(ref)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	task := c.task
	c.mu.Unlock()
	if task == nil {
		return nil, nil
	}
	return task.Stats()
}
