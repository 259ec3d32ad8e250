package engine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"

	wnet "github.com/wharfhq/wharf/internal/network"
	"github.com/wharfhq/wharf/internal/runtime"
)

// Start starts a created or stopped container. Starting a running container is NotModified.
func (e *Engine) Start(ctx context.Context, ref string) error {
	c, err := e.Container(ref)
	if err != nil {
		return err
	}
	c.mu.Lock()
	if c.State.Status == StateRemoving {
		c.mu.Unlock()
		return Conflict("container is marked for removal and cannot be started")
	}
	if c.Running() {
		c.mu.Unlock()
		return NotModified("container already started")
	}
	err = e.startLocked(ctx, c)
	autoRemove := c.HostConfig.AutoRemove
	c.mu.Unlock()
	if err != nil && autoRemove {
		// As dockerd: a --rm container that cannot start is removed (the CLI waits for that).
		if rerr := e.Remove(c.ID, RemoveOptions{Force: true, Volumes: true}); rerr != nil {
			e.log.Warn("auto-remove after failed start", "id", c.ShortID(), "err", rerr)
		}
	}
	return err
}

// startLocked starts c; c.mu is held. Attachers waiting for this start are released either way.
func (e *Engine) startLocked(ctx context.Context, c *Container) (err error) {
	defer func() {
		close(c.startDone)
		c.startDone = make(chan struct{})
		c.pendingAttach = 0
	}()
	t0 := time.Now()
	// The previous run's teardown (restart policies, docker start right after an exit) must be over.
	e.awaitTeardown(c.ID)
	img, ierr := e.Images.Resolve(c.ImageID)
	if ierr != nil {
		return NotFound("No such image: %s", c.ImageRef)
	}
	if err := e.unpackImage(img); err != nil {
		return err
	}
	rootfs, err := e.snaps.Prepare(c.ID, img.ChainIDs())
	if err != nil {
		return fmt.Errorf("mount rootfs: %w", err)
	}
	for _, m := range c.Mounts {
		if err := populateVolume(rootfs, m); err != nil {
			e.snaps.Unmount(c.ID)
			return fmt.Errorf("copying image content into volume %s: %w", m.Name, err)
		}
	}
	var att *wnet.Attachment
	defer func() {
		if err != nil {
			if att != nil {
				e.net.Detach(c.ID)
			}
			e.snaps.Unmount(c.ID)
		}
	}()
	req := wnet.AttachRequest{ContainerID: c.ID, Network: string(c.HostConfig.NetworkMode), Name: strings.TrimPrefix(c.Name, "/"), DNS: dnsServers(c.HostConfig)}
	if es := c.Endpoints[string(c.HostConfig.NetworkMode)]; es != nil {
		req.Aliases = es.Aliases
		if es.IPAMConfig != nil && es.IPAMConfig.IPv4Address.IsValid() {
			req.IP = es.IPAMConfig.IPv4Address.AsSlice()
		}
	}
	req.Ports, err = portBindings(c.HostConfig.PortBindings)
	if err != nil {
		return err
	}
	if len(req.Ports) > 0 || req.IP != nil {
		// host ports and fixed addresses of runs that just ended are freed by their teardowns
		e.awaitAllTeardowns()
	}
	spec := runtime.Spec{
		ID: c.ID, Rootfs: rootfs, Args: append([]string{c.Path}, c.Args...), Env: c.Config.Env,
		Cwd: c.Config.WorkingDir, User: c.Config.User, Hostname: c.Config.Hostname,
		Tty: c.Config.Tty, Stdin: c.Config.OpenStdin, ReadonlyRootfs: c.HostConfig.ReadonlyRootfs,
		Memory: c.HostConfig.Memory, NanoCPUs: c.HostConfig.NanoCPUs, CPUShares: c.HostConfig.CPUShares,
		CapAdd: c.HostConfig.CapAdd, CapDrop: c.HostConfig.CapDrop,
		Privileged: c.HostConfig.Privileged, LogPath: c.LogPath, AttachOnStart: c.pendingAttach > 0,
	}
	if logs, rot, err := logSettings(c.HostConfig.LogConfig); err != nil {
		return err
	} else if !logs {
		spec.LogPath = ""
	} else {
		spec.LogMaxSize, spec.LogMaxFiles = rot.MaxSize, rot.MaxFiles
	}
	if c.HostConfig.PidsLimit != nil {
		spec.PidsLimit = *c.HostConfig.PidsLimit
	}
	spec.Ulimits, spec.Devices = runtimeUlimits(c.HostConfig), runtimeDevices(c.HostConfig)
	spec.Sysctls, spec.ShmSize = c.HostConfig.Sysctls, c.HostConfig.ShmSize
	if spec.Cwd == "" {
		spec.Cwd = "/"
	}
	for _, m := range c.Mounts {
		rm := runtime.Mount{Source: m.Source, Destination: m.Destination, Type: "bind", ReadOnly: !m.RW}
		if m.Type == mount.TypeTmpfs {
			rm.Type, rm.Source = "tmpfs", "tmpfs"
		}
		spec.Mounts = append(spec.Mounts, rm)
	}
	for dst, opts := range c.HostConfig.Tmpfs {
		var o []string
		if opts != "" {
			o = strings.Split(opts, ",")
		}
		spec.Mounts = append(spec.Mounts, runtime.Mount{Source: "tmpfs", Destination: dst, Type: "tmpfs", Options: o})
	}
	spec.Mounts = append(spec.Mounts,
		runtime.Mount{Source: c.ResolvPath, Destination: "/etc/resolv.conf", Type: "bind"},
		runtime.Mount{Source: c.HostnamePath, Destination: "/etc/hostname", Type: "bind"},
		runtime.Mount{Source: c.HostsPath, Destination: "/etc/hosts", Type: "bind"},
	)
	tMount := time.Since(t0)
	// The network is set up while the runtime sets the container up: the shim joins the new network
	// namespace as soon as it exists, builds the container (mounts, cgroups), and its process runs
	// once the network and the files that depend on it are ready (spec.Gate). /etc/hosts, hostname
	// and resolv.conf are bind-mounted by then, so they must exist and are written in place.
	for _, p := range []string{c.HostsPath, c.HostnamePath, c.ResolvPath} {
		if err := ensureFile(p); err != nil {
			return err
		}
	}
	nsReady := make(chan string, 1)
	req.NetNSReady = func(p string) { nsReady <- p }
	var netRes struct {
		att *wnet.Attachment
		err error
	}
	netDone := make(chan struct{})
	gate := make(chan error, 1)
	go func() {
		defer close(netDone)
		defer func() { gate <- netRes.err }()
		a, err := e.net.Attach(req)
		if err != nil {
			netRes.err = networkError(err)
			return
		}
		netRes.att = a
		// Further networks (docker run --network a --network b, or connected while stopped).
		for _, name := range e.extraNetworks(c) {
			if _, err := e.net.Connect(connectRequest(c.ID, name, c.Endpoints[name])); err != nil {
				netRes.err = networkError(err)
				return
			}
		}
		netRes.err = e.writeEtcFiles(c, a)
	}()
	select {
	case spec.NetNS = <-nsReady:
		spec.Gate = gate
	case <-netDone: // nothing slow to overlap (host, none, container: modes), or it failed early
		if netRes.err != nil {
			att = netRes.att
			return netRes.err
		}
		spec.NetNS = netRes.att.NetNSPath
	}
	tNet := time.Since(t0)
	task, err := e.rt.Start(ctx, spec)
	<-netDone // the network's outcome, whatever the runtime's
	att = netRes.att
	if err == nil || netRes.err != nil {
		err = netRes.err
	}
	if err != nil && task != nil {
		task.Kill(9)
		task.Delete()
	}
	if err != nil {
		var se *runtime.StartError
		if errors.As(err, &se) {
			c.State.ExitCode = se.Code
			c.State.Error = se.Msg
			e.saveContainerLocked(c)
			return &Error{Kind: KindInternal, Msg: fmt.Sprintf("failed to create task for container: failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: %s: unknown", se.Msg), ExitCode: se.Code}
		}
		return err
	}
	e.log.Debug("started", "id", c.ShortID(), "mount", tMount, "network", tNet-tMount, "runtime", time.Since(t0)-tNet)
	c.task = task
	c.Net = &NetworkState{Network: string(c.HostConfig.NetworkMode), NetNSPath: att.NetNSPath, PrefixLen: att.PrefixLen, MAC: att.MAC, Ports: network.PortMap{}}
	c.Net.Networks = e.endpointStates(c.ID)
	if att.IP != nil {
		c.Net.IP = att.IP.String()
	}
	if att.Gateway != nil {
		c.Net.Gateway = att.Gateway.String()
	}
	for _, p := range att.Ports {
		port, _ := network.PortFrom(p.ContainerPort, network.IPProtocol(p.Proto))
		hip := p.HostIP
		if hip == "" {
			hip = "0.0.0.0"
		}
		addr, _ := netip.ParseAddr(hip)
		c.Net.Ports[port] = append(c.Net.Ports[port], network.PortBinding{HostIP: addr, HostPort: strconv.Itoa(int(p.HostPort))})
	}
	c.State.Status = StateRunning
	c.State.Pid = task.Pid()
	c.State.ExitCode = 0
	c.State.Error = ""
	c.State.OOMKilled = false
	c.State.StartedAt = time.Now().UTC()
	c.State.StoppedByUser = false
	c.State.HasBeenStarted = true
	c.exited = make(chan struct{})
	c.stopping = false
	e.saveContainerLocked(c)
	e.containerEvent(c, "start", nil)
	e.wg.Add(1)
	go e.monitor(c, task)
	return nil
}

func (e *Engine) saveContainerLocked(c *Container) {
	c.mu.Unlock()
	if err := e.saveContainer(c); err != nil {
		e.log.Error("save container", "id", c.ShortID(), "err", err)
	}
	c.mu.Lock()
}

func portBindings(pm network.PortMap) ([]wnet.PortBinding, error) {
	var out []wnet.PortBinding
	for port, binds := range pm {
		for _, b := range binds {
			pb := wnet.PortBinding{ContainerPort: port.Num(), Proto: string(port.Proto())}
			if b.HostIP.IsValid() && !b.HostIP.IsUnspecified() {
				pb.HostIP = b.HostIP.String()
			}
			if b.HostPort != "" {
				hp := b.HostPort
				if i := strings.IndexByte(hp, '-'); i > 0 { // a range: take its start; the CLI expands ranges
					hp = hp[:i]
				}
				n, err := strconv.ParseUint(hp, 10, 16)
				if err != nil {
					return nil, Invalid("invalid port specification: %q", b.HostPort)
				}
				pb.HostPort = uint16(n)
			}
			out = append(out, pb)
		}
	}
	return out, nil
}

// monitor waits for the main process of one run and applies what follows its exit.
func (e *Engine) monitor(c *Container, task runtime.Task) {
	defer e.wg.Done()
	st, err := task.Wait(e.ctx)
	if e.ctx.Err() != nil {
		return // daemon shutting down: the container keeps running, the next daemon reattaches
	}
	if err != nil {
		e.log.Warn("wait for container", "id", c.ShortID(), "err", err)
		st.Code = 255
		st.ExitedAt = time.Now()
	}
	tExit := time.Now()
	c.mu.Lock()
	if c.task != task {
		c.mu.Unlock()
		return
	}
	c.task = nil
	c.Net = nil
	c.State.Status = StateExited
	c.State.Pid = 0
	c.State.ExitCode = st.Code
	c.State.OOMKilled = st.OOMKilled
	c.State.FinishedAt = st.ExitedAt.UTC()
	if c.State.FinishedAt.IsZero() {
		c.State.FinishedAt = time.Now().UTC()
	}
	restart := !c.stopping && e.shouldRestart(c, st.Code)
	if restart {
		c.State.Status = StateRestarting
	}
	waiters := c.waitNext
	c.waitNext = nil
	// --rm goes straight from running to removed: the record is deleted once
	// instead of saved as exited, then as removing, then deleted (a crash in
	// between leaves a running --rm container, which restore removes).
	autoRemove := c.HostConfig.AutoRemove && !restart
	// What the run held (runtime state, cgroups, network, mount) is released in the background:
	// nothing a client sees waits for it (teardown.go). It starts before anyone can see the exit,
	// so that a start or rm that follows (and holds c.mu) waits for it; it never takes c.mu.
	var then func()
	if autoRemove {
		then = func() { e.removeStorage(c) }
	}
	e.startTeardown(c.ID, task, then)
	close(c.exited)
	if autoRemove {
		c.State.Status = StateRemoving
	} else {
		e.saveContainerLocked(c)
	}
	delay := restartDelay(c)
	c.mu.Unlock()
	e.log.Debug("exited", "id", c.ShortID(), "code", st.Code, "took", time.Since(tExit))
	e.containerEvent(c, "die", map[string]string{"exitCode": strconv.Itoa(st.Code)})
	if autoRemove {
		t := time.Now()
		e.forget(c)
		e.afterRemove(c, true)
		e.log.Debug("auto-removed", "id", c.ShortID(), "took", time.Since(t))
	}
	for _, w := range waiters {
		w <- st.Code
	}
	if restart {
		go func() {
			select {
			case <-time.After(delay):
			case <-e.ctx.Done():
				return
			}
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.State.Status != StateRestarting {
				return
			}
			c.State.RestartCount++
			if err := e.startLocked(context.Background(), c); err != nil {
				e.log.Warn("restart", "id", c.ShortID(), "err", err)
				c.State.Status = StateExited
				e.saveContainerLocked(c)
			}
		}()
	}
}

func restartDelay(c *Container) time.Duration {
	n := c.State.RestartCount
	if n > 9 {
		n = 9
	}
	if c.State.FinishedAt.Sub(c.State.StartedAt) > 10*time.Second {
		n = 0
	}
	return 100 * time.Millisecond << n
}

// shouldRestart applies the restart policy to an exit.
func (e *Engine) shouldRestart(c *Container, code int) bool {
	if c.State.StoppedByUser {
		return false
	}
	rp := c.HostConfig.RestartPolicy
	switch rp.Name {
	case container.RestartPolicyAlways, container.RestartPolicyUnlessStopped:
		return true
	case container.RestartPolicyOnFailure:
		return code != 0 && (rp.MaximumRetryCount == 0 || c.State.RestartCount < rp.MaximumRetryCount)
	}
	return false
}

// Stop sends the stop signal, then SIGKILL after timeout seconds (nil: the container's or 10).
func (e *Engine) Stop(ctx context.Context, ref string, timeout *int, signal string) error {
	c, err := e.Container(ref)
	if err != nil {
		return err
	}
	c.mu.Lock()
	if c.State.Status == StateRestarting {
		c.State.Status = StateExited
		c.State.StoppedByUser = true
		c.mu.Unlock()
		return e.saveContainer(c)
	}
	if !c.Running() {
		c.mu.Unlock()
		return NotModified("container already stopped")
	}
	c.State.StoppedByUser = true
	c.stopping = true
	task, exited := c.task, c.exited
	if signal == "" {
		signal = c.Config.StopSignal
	}
	t := 10
	if c.Config.StopTimeout != nil {
		t = *c.Config.StopTimeout
	}
	if timeout != nil {
		t = *timeout
	}
	paused := c.State.Status == StatePaused
	c.mu.Unlock()
	sig, err := ParseSignal(signal)
	if err != nil {
		return err
	}
	if sig == 0 {
		sig = syscall.SIGTERM
	}
	if paused {
		task.Resume()
	}
	if t != 0 {
		task.Kill(sig)
	}
	var deadline <-chan time.Time
	if t >= 0 {
		deadline = time.After(time.Duration(t) * time.Second)
	}
	select {
	case <-exited:
		return nil
	case <-deadline:
	case <-ctx.Done():
		return ctx.Err()
	}
	task.Kill(syscall.SIGKILL)
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		return fmt.Errorf("container %s did not exit after SIGKILL", c.ShortID())
	}
	return nil
}

// Kill sends a signal to the main process.
func (e *Engine) Kill(ref string, signal string) error {
	c, err := e.Container(ref)
	if err != nil {
		return err
	}
	sig, err := ParseSignal(signal)
	if err != nil {
		return err
	}
	if sig == 0 {
		sig = syscall.SIGKILL
	}
	c.mu.Lock()
	if !c.Running() || c.task == nil {
		c.mu.Unlock()
		return Conflict("cannot kill container: %s: container %s is not running", ref, c.ID)
	}
	task := c.task
	c.mu.Unlock()
	if err := task.Kill(sig); err != nil {
		return err
	}
	e.containerEvent(c, "kill", map[string]string{"signal": strconv.Itoa(int(sig))})
	return nil
}

// Restart stops (if running) then starts.
func (e *Engine) Restart(ctx context.Context, ref string, timeout *int, signal string) error {
	if err := e.Stop(ctx, ref, timeout, signal); err != nil && KindOf(err) != KindNotModified {
		return err
	}
	c, err := e.Container(ref)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.Running() {
		return nil
	}
	if err := e.startLocked(ctx, c); err != nil {
		return err
	}
	e.containerEvent(c, "restart", nil)
	return nil
}

// Pause freezes the container's processes.
func (e *Engine) Pause(ref string) error {
	return e.setPaused(ref, true)
}

// Unpause thaws a paused container.
func (e *Engine) Unpause(ref string) error {
	return e.setPaused(ref, false)
}

// setPaused freezes or thaws the container's cgroup, with Docker's conflict texts for the wrong state.
func (e *Engine) setPaused(ref string, pause bool) error {
	c, err := e.Container(ref)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	action, next := "unpause", StateRunning
	if pause {
		action, next = "pause", StatePaused
	}
	switch {
	case pause && c.State.Status == StatePaused:
		return Conflict("cannot pause container %s: container %s is already paused", ref, c.ID)
	case pause && c.State.Status != StateRunning:
		return Conflict("cannot pause container %s: container %s is not running", ref, c.ID)
	case !pause && c.State.Status != StatePaused:
		return Conflict("cannot unpause container %s: container %s is not paused", ref, c.ID)
	}
	change := c.task.Resume // the state checks above mean the task exists
	if pause {
		change = c.task.Pause
	}
	if err := change(); err != nil {
		return err
	}
	c.State.Status = next
	e.saveContainerLocked(c)
	e.containerEvent(c, action, nil)
	return nil
}

// Wait blocks per condition ("not-running" default, "next-exit", "removed") and returns the exit code.
// ready is closed once the waiter is registered (the API flushes its headers then).
func (e *Engine) Wait(ctx context.Context, ref, condition string, ready func()) (int, error) {
	c, err := e.Container(ref)
	if err != nil {
		return -1, err
	}
	c.mu.Lock()
	switch condition {
	case "", "not-running":
		exited := c.exited
		running := c.Running() || c.State.Status == StateRestarting
		c.mu.Unlock()
		if ready != nil {
			ready()
		}
		if running {
			select {
			case <-exited:
			case <-ctx.Done():
				return -1, ctx.Err()
			}
		}
		c.mu.Lock()
		code := c.State.ExitCode
		c.mu.Unlock()
		return code, nil
	case "next-exit":
		ch := make(chan int, 1)
		c.waitNext = append(c.waitNext, ch)
		c.mu.Unlock()
		if ready != nil {
			ready()
		}
		select {
		case code := <-ch:
			return code, nil
		case <-ctx.Done():
			return -1, ctx.Err()
		}
	case "removed":
		removed := c.removed
		c.mu.Unlock()
		if ready != nil {
			ready()
		}
		select {
		case <-removed:
		case <-ctx.Done():
			return -1, ctx.Err()
		}
		c.mu.Lock()
		code := c.State.ExitCode
		c.mu.Unlock()
		return code, nil
	default:
		c.mu.Unlock()
		return -1, Invalid("invalid condition: %q", condition)
	}
}

// writeEtcFiles writes the container's /etc/hosts, /etc/hostname and /etc/resolv.conf as Docker does.
func (e *Engine) writeEtcFiles(c *Container, att *wnet.Attachment) error {
	hostname := c.Config.Hostname
	if err := writeFileInPlace(c.HostnamePath, []byte(hostname+"\n"), 0o644); err != nil {
		return err
	}
	var hosts strings.Builder
	if att.NetNSPath == "host" {
		if b, err := os.ReadFile("/etc/hosts"); err == nil {
			hosts.Write(b)
		}
	} else {
		hosts.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::\tip6-localnet\nff00::\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n")
	}
	for _, h := range c.HostConfig.ExtraHosts {
		if i := strings.IndexByte(h, ':'); i > 0 {
			ip := h[i+1:]
			if ip == "host-gateway" && att.HostGateway != nil {
				ip = att.HostGateway.String()
			}
			fmt.Fprintf(&hosts, "%s\t%s\n", ip, h[:i])
		}
	}
	if att.IP != nil {
		fmt.Fprintf(&hosts, "%s\t%s\n", att.IP, hostname)
	}
	if err := writeFileInPlace(c.HostsPath, []byte(hosts.String()), 0o644); err != nil {
		return err
	}
	return writeFileInPlace(c.ResolvPath, resolvConf(c.HostConfig, att.NetNSPath == "host", att.DNS), 0o644)
}

// resolvConf derives the container's resolv.conf from the host's, dropping loopback resolvers that
// cannot be reached from another network namespace (Docker falls back to public resolvers then).
//
// On a user-defined network the only nameserver is the network's embedded DNS server (embedded, even with
// --dns), as Docker does with 127.0.0.11; it forwards other names to the --dns servers, else the host's.
func resolvConf(hc *container.HostConfig, hostNet bool, embedded net.IP) []byte {
	host, _ := os.ReadFile("/etc/resolv.conf")
	var ns, search, opts []string
	for _, line := range strings.Split(string(host), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "nameserver":
			if hostNet || !strings.HasPrefix(f[1], "127.") && f[1] != "::1" {
				ns = append(ns, f[1])
			}
		case "search":
			search = f[1:]
		case "options":
			opts = append(opts, f[1:]...)
		}
	}
	if len(hc.DNS) > 0 {
		ns = nil
		for _, a := range hc.DNS {
			ns = append(ns, a.String())
		}
	}
	if embedded != nil {
		// User networks: only the embedded server, which forwards other names to --dns (else the host's).
		ns = []string{embedded.String()}
	}
	if len(ns) == 0 {
		ns = []string{"8.8.8.8", "8.8.4.4"}
	}
	if len(hc.DNSSearch) > 0 {
		search = hc.DNSSearch
	}
	if len(hc.DNSOptions) > 0 {
		opts = hc.DNSOptions
	}
	if embedded != nil && !strings.Contains(" "+strings.Join(opts, " "), " ndots:") {
		opts = append(opts, "ndots:0") // as dockerd with its embedded server
	}
	var b strings.Builder
	for _, n := range ns {
		fmt.Fprintf(&b, "nameserver %s\n", n)
	}
	if len(search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(search, " "))
	}
	if len(opts) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(opts, " "))
	}
	return []byte(b.String())
}

// writeFileInPlace replaces the content of path, keeping its inode: the container's runtime may have
// bind-mounted it already (see startLocked), and a rename would leave the container the old file.
// These files are written before the container's process runs, so nobody reads them half-written;
// no fsync: they are derived state, written again at every start.
func writeFileInPlace(path string, data []byte, mode os.FileMode) error {
	return os.WriteFile(path, data, mode)
}

// ensureFile creates path, empty, if it does not exist (a bind mount's source must).
func ensureFile(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	return f.Close()
}
