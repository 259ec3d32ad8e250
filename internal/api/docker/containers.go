package docker

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/docker/go-units"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/storage"

	"github.com/wharfhq/wharf/internal/engine"
)

// createRequest is container.CreateRequest decoded leniently.
type createRequest struct {
	*container.Config
	HostConfig       *container.HostConfig
	NetworkingConfig *network.NetworkingConfig
}

func (s *Server) containerCreate(r *request) error {
	req := createRequest{Config: &container.Config{}}
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if req.HostConfig == nil {
		req.HostConfig = &container.HostConfig{}
	}
	c, warnings, err := s.e.Create(r.Context(), engine.CreateOptions{Name: r.query("name"), Config: req.Config, HostConfig: req.HostConfig, NetworkingConfig: req.NetworkingConfig})
	if err != nil {
		return err
	}
	if warnings == nil {
		warnings = []string{}
	}
	return writeJSON(r.w, http.StatusCreated, map[string]any{"Id": c.ID, "Warnings": warnings})
}

func (s *Server) containerStart(r *request, id string) error {
	if err := s.e.Start(r.Context(), id); err != nil {
		return err
	}
	r.w.WriteHeader(http.StatusNoContent)
	return nil
}

func optionalInt(r *request, k string) (*int, error) {
	v := r.query(k)
	if v == "" {
		return nil, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return nil, engine.Invalid("invalid value for %s: %q", k, v)
	}
	return &n, nil
}

func (s *Server) containerStop(r *request, id string) error {
	t, err := optionalInt(r, "t")
	if err != nil {
		return err
	}
	if err := s.e.Stop(r.Context(), id, t, r.query("signal")); err != nil {
		return err
	}
	r.w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) containerRestart(r *request, id string) error {
	t, err := optionalInt(r, "t")
	if err != nil {
		return err
	}
	if err := s.e.Restart(r.Context(), id, t, r.query("signal")); err != nil {
		return err
	}
	r.w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) containerKill(r *request, id string) error {
	if err := s.e.Kill(id, r.query("signal")); err != nil {
		return err
	}
	r.w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) containerRemove(r *request, id string) error {
	if err := s.e.Remove(id, engine.RemoveOptions{Force: r.bool("force"), Volumes: r.bool("v")}); err != nil {
		return err
	}
	r.w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) containerPrune(r *request) error {
	ids, space := s.e.PruneContainers()
	if ids == nil {
		ids = []string{}
	}
	return writeJSON(r.w, http.StatusOK, map[string]any{"ContainersDeleted": ids, "SpaceReclaimed": space})
}

// containerWait sends and flushes the 200 headers at once (the CLI starts the container only then),
// and the exit code when the condition is met.
func (s *Server) containerWait(r *request, id string) error {
	if _, err := s.e.Container(id); err != nil {
		return err
	}
	ready := func() {
		r.w.Header().Set("Content-Type", "application/json")
		r.w.WriteHeader(http.StatusOK)
		flush(r.w)
	}
	code, err := s.e.Wait(r.Context(), id, r.query("condition"), ready)
	if err != nil {
		json.NewEncoder(r.w).Encode(map[string]any{"StatusCode": code, "Error": map[string]string{"Message": err.Error()}})
		return errHandled
	}
	json.NewEncoder(r.w).Encode(map[string]any{"StatusCode": code})
	return errHandled
}

func (s *Server) containerAttach(r *request, id string) error {
	c, err := s.e.Container(id)
	if err != nil {
		return err
	}
	tty := c.Snapshot().Config.Tty
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var conn net.Conn
	var brw *bufio.ReadWriter
	var stdout, stderr io.Writer
	var hijackErr error
	opts := engine.AttachOptions{Logs: r.bool("logs"), Stream: r.bool("stream")}
	wantStdin := r.bool("stdin")
	// The 101 goes out only once the engine has registered this attach, so the start the client
	// sends next cannot outrun it.
	opts.Ready = func() {
		conn, brw, hijackErr = hijack(r, tty)
		if hijackErr != nil {
			cancel()
			return
		}
		stdout, stderr = outputs(brw, tty, func() { brw.Flush() })
		if !wantStdin {
			// Nothing is read from the client. EOF is its half-close (the CLI does that when it sends no
			// stdin); any other read error means it went away.
			go func() {
				if _, err := io.Copy(io.Discard, conn); err != nil {
					cancel()
				}
			}()
		}
	}
	opts.Stdout = writerFunc(func(p []byte) (int, error) {
		if r.bool("stdout") && stdout != nil {
			return stdout.Write(p)
		}
		return len(p), nil
	})
	opts.Stderr = writerFunc(func(p []byte) (int, error) {
		if r.bool("stderr") && stderr != nil {
			return stderr.Write(p)
		}
		return len(p), nil
	})
	if wantStdin {
		opts.Stdin = readerFunc(func(p []byte) (int, error) {
			if brw == nil {
				return 0, io.EOF
			}
			return brw.Read(p)
		})
	}
	err = s.e.Attach(ctx, c.ID, opts)
	if conn == nil {
		if err != nil {
			return err
		}
		return hijackErr
	}
	brw.Flush()
	closeWrite(conn)
	conn.Close()
	return errHandled
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

func (s *Server) containerLogs(r *request, id string) error {
	c, err := s.e.Container(id)
	if err != nil {
		return err
	}
	if !r.bool("stdout") && !r.bool("stderr") {
		return engine.Invalid("Bad parameters: you must choose at least one stream")
	}
	if err := s.e.LogsReadable(c.ID); err != nil {
		return err
	}
	opts := engine.LogOptions{Follow: r.bool("follow"), Tail: -1}
	if t := r.query("tail"); t != "" && t != "all" {
		n, err := strconv.Atoi(t)
		if err != nil {
			return engine.Invalid("invalid tail value %q", t)
		}
		opts.Tail = n
	}
	if opts.Since, err = parseTimeParam(r.query("since")); err != nil {
		return err
	}
	if opts.Until, err = parseTimeParam(r.query("until")); err != nil {
		return err
	}
	tty := c.Snapshot().Config.Tty
	r.w.Header().Set("Content-Type", "application/vnd.docker.multiplexed-stream")
	if tty {
		r.w.Header().Set("Content-Type", "application/vnd.docker.raw-stream")
	}
	r.w.WriteHeader(http.StatusOK)
	flush(r.w)
	stdout, stderr := outputs(r.w, tty, func() {
		if opts.Follow {
			flush(r.w)
		}
	})
	ts := r.bool("timestamps")
	s.e.Logs(r.Context(), c.ID, opts, func(stream string, t time.Time, line []byte) error {
		w := stdout
		if stream == "stderr" {
			if !r.bool("stderr") {
				return nil
			}
			w = stderr
		} else if !r.bool("stdout") {
			return nil
		}
		if ts {
			line = append([]byte(t.UTC().Format(time.RFC3339Nano)+" "), line...)
		}
		_, err := w.Write(line)
		return err
	})
	return errHandled
}

func (s *Server) containerResize(r *request, id string) error {
	h, _ := strconv.Atoi(r.query("h"))
	w, _ := strconv.Atoi(r.query("w"))
	if err := s.e.Resize(id, uint16(w), uint16(h)); err != nil {
		return err
	}
	r.w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) containerTop(r *request, id string) error {
	titles, procs, err := s.e.Top(id, r.query("ps_args"))
	if err != nil {
		return err
	}
	if procs == nil {
		procs = [][]string{}
	}
	return writeJSON(r.w, http.StatusOK, map[string]any{"Titles": titles, "Processes": procs})
}

func (s *Server) containerStats(r *request, id string) error {
	c, err := s.e.Container(id)
	if err != nil {
		return err
	}
	stream := r.query("stream") == "" || r.bool("stream")
	oneShot := r.bool("one-shot")
	r.w.Header().Set("Content-Type", "application/json")
	r.w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(r.w)
	var prev map[string]any
	for {
		st, _ := s.e.Stats(c.ID)
		snap := c.Snapshot()
		cur := map[string]any{
			"read": time.Now().UTC().Format(time.RFC3339Nano), "preread": "0001-01-01T00:00:00Z",
			"id": c.ID, "name": snap.Name, "num_procs": 0,
			"pids_stats": map[string]any{}, "blkio_stats": map[string]any{}, "networks": map[string]any{},
			"cpu_stats":    map[string]any{"cpu_usage": map[string]any{"total_usage": 0}, "system_cpu_usage": 0, "online_cpus": 0},
			"memory_stats": map[string]any{},
		}
		if st != nil {
			cur["cpu_stats"] = map[string]any{"cpu_usage": map[string]any{"total_usage": st.CPUTotalNanos, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
				"system_cpu_usage": st.SystemNanos, "online_cpus": st.OnlineCPUs, "throttling_data": map[string]any{}}
			cur["memory_stats"] = map[string]any{"usage": st.MemoryUsage, "limit": st.MemoryLimit, "stats": map[string]any{}}
			cur["pids_stats"] = map[string]any{"current": st.PidsCurrent, "limit": st.PidsLimit}
		}
		if prev != nil {
			cur["precpu_stats"] = prev["cpu_stats"]
			cur["preread"] = prev["read"]
		} else {
			cur["precpu_stats"] = map[string]any{"cpu_usage": map[string]any{"total_usage": 0}, "system_cpu_usage": 0, "throttling_data": map[string]any{}}
		}
		if !stream && !oneShot && prev == nil {
			// Docker samples twice so the CPU percentage can be computed.
			prev = cur
			select {
			case <-time.After(time.Second):
			case <-r.Context().Done():
				return errHandled
			}
			continue
		}
		if err := enc.Encode(cur); err != nil || !stream {
			return errHandled
		}
		flush(r.w)
		prev = cur
		select {
		case <-time.After(time.Second):
		case <-r.Context().Done():
			return errHandled
		}
	}
}

func (s *Server) archiveGet(r *request, id string) error {
	p := r.query("path")
	st, err := s.e.StatPath(id, p)
	if err != nil {
		return err
	}
	b, _ := json.Marshal(map[string]any{"name": st.Name, "size": st.Size, "mode": uint32(st.Mode), "mtime": st.Mtime.Format(time.RFC3339Nano), "linkTarget": st.LinkTarget})
	r.w.Header().Set("X-Docker-Container-Path-Stat", base64.StdEncoding.EncodeToString(b))
	if r.Method == http.MethodHead {
		r.w.WriteHeader(http.StatusOK)
		return nil
	}
	r.w.Header().Set("Content-Type", "application/x-tar")
	r.w.WriteHeader(http.StatusOK)
	s.e.ArchivePath(id, p, r.w)
	return errHandled
}

func (s *Server) archivePut(r *request, id string) error {
	if err := s.e.ExtractToContainer(id, r.query("path"), r.Body); err != nil {
		return err
	}
	r.w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) archiveExport(r *request, id string) error {
	if _, err := s.e.StatPath(id, "/"); err != nil {
		return err
	}
	r.w.Header().Set("Content-Type", "application/x-tar")
	r.w.WriteHeader(http.StatusOK)
	s.e.ArchivePath(id, "/", r.w)
	return errHandled
}

// --- inspect and list ---

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "0001-01-01T00:00:00Z"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func portMap(c *engine.Container) network.PortMap {
	pm := network.PortMap{}
	if c.Config != nil {
		for p := range c.Config.ExposedPorts {
			pm[p] = nil
		}
	}
	if c.Net != nil {
		for p, b := range c.Net.Ports {
			pm[p] = b
		}
	}
	return pm
}

func endpoint(c *engine.Container) map[string]*network.EndpointSettings {
	if c.Net != nil && len(c.Net.Networks) > 0 {
		return endpointsOf(c)
	}
	name := string(c.HostConfig.NetworkMode)
	ep := &network.EndpointSettings{NetworkID: networkID(name)}
	if c.Net != nil {
		ep.EndpointID = c.ID
		ep.IPAddress, _ = netip.ParseAddr(c.Net.IP)
		ep.Gateway, _ = netip.ParseAddr(c.Net.Gateway)
		ep.IPPrefixLen = c.Net.PrefixLen
		if mac, err := parseMAC(c.Net.MAC); err == nil {
			ep.MacAddress = mac
		}
	}
	return map[string]*network.EndpointSettings{name: ep}
}

func (s *Server) containerInspect(r *request, id string) error {
	c, err := s.e.Container(id)
	if err != nil {
		return err
	}
	snap := c.Snapshot()
	st := snap.State
	resp := map[string]any{}
	ir := container.InspectResponse{
		ID: snap.ID, Created: fmtTime(snap.Created), Path: snap.Path, Args: snap.Args,
		State: &container.State{Status: container.ContainerState(st.Status), Running: st.Status == engine.StateRunning || st.Status == engine.StatePaused,
			Paused: st.Status == engine.StatePaused, Restarting: st.Status == engine.StateRestarting, OOMKilled: st.OOMKilled,
			Dead: st.Status == engine.StateDead, Pid: st.Pid, ExitCode: st.ExitCode, Error: st.Error,
			StartedAt: fmtTime(st.StartedAt), FinishedAt: fmtTime(st.FinishedAt)},
		Image: snap.ImageID, ResolvConfPath: snap.ResolvPath, HostnamePath: snap.HostnamePath, HostsPath: snap.HostsPath,
		LogPath: snap.LogPath, Name: snap.Name, RestartCount: st.RestartCount, Driver: "overlayfs", Platform: "linux",
		ExecIDs: c.ExecIDs(), HostConfig: snap.HostConfig, Mounts: snap.Mounts, Config: snap.Config,
		GraphDriver:     &storage.DriverData{Name: "overlayfs", Data: map[string]string{"UpperDir": s.e.UpperDir(snap.ID)}},
		NetworkSettings: &container.NetworkSettings{SandboxKey: sandboxKey(&snap), Ports: portMap(&snap), Networks: endpoint(&snap)},
	}
	if ir.Mounts == nil {
		ir.Mounts = []container.MountPoint{}
	}
	if r.bool("size") {
		rw := s.e.SizeRw(c)
		ir.SizeRw = &rw
		var root int64
		if img, err := s.e.Images.Resolve(snap.ImageID); err == nil {
			root = img.Size + rw
		}
		ir.SizeRootFs = &root
	}
	b, _ := json.Marshal(ir)
	json.Unmarshal(b, &resp)
	// Fields removed from the types after API 1.50 that older clients still read.
	if ns, ok := resp["NetworkSettings"].(map[string]any); ok && snap.Net != nil {
		ns["IPAddress"], ns["Gateway"], ns["IPPrefixLen"], ns["MacAddress"] = snap.Net.IP, snap.Net.Gateway, snap.Net.PrefixLen, snap.Net.MAC
		ns["Bridge"], ns["HairpinMode"], ns["LinkLocalIPv6Address"], ns["LinkLocalIPv6PrefixLen"] = "", false, "", 0
	}
	return writeJSON(r.w, http.StatusOK, resp)
}

func sandboxKey(c *engine.Container) string {
	if c.Net != nil {
		return c.Net.NetNSPath
	}
	return ""
}

// statusText is what `docker ps` prints in STATUS.
func statusText(c *engine.Container) string {
	st := c.State
	switch st.Status {
	case engine.StateRunning:
		return "Up " + units.HumanDuration(time.Since(st.StartedAt))
	case engine.StatePaused:
		return "Up " + units.HumanDuration(time.Since(st.StartedAt)) + " (Paused)"
	case engine.StateRestarting:
		return fmt.Sprintf("Restarting (%d) %s ago", st.ExitCode, units.HumanDuration(time.Since(st.FinishedAt)))
	case engine.StateExited:
		if !st.HasBeenStarted && st.FinishedAt.IsZero() {
			return "Created"
		}
		return fmt.Sprintf("Exited (%d) %s ago", st.ExitCode, units.HumanDuration(time.Since(st.FinishedAt)))
	case engine.StateCreated:
		return "Created"
	case engine.StateRemoving:
		return "Removal In Progress"
	case engine.StateDead:
		return "Dead"
	}
	return st.Status
}

func commandText(c *engine.Container) string {
	parts := append([]string{c.Path}, c.Args...)
	return strings.Join(parts, " ")
}

func (s *Server) containerSummary(c *engine.Container, size bool) map[string]any {
	snap := c.Snapshot()
	var ports []container.PortSummary
	pm := portMap(&snap)
	keys := make([]network.Port, 0, len(pm))
	for p := range pm {
		keys = append(keys, p)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].Num() < keys[j].Num() })
	for _, p := range keys {
		if len(pm[p]) == 0 {
			ports = append(ports, container.PortSummary{PrivatePort: p.Num(), Type: string(p.Proto())})
			continue
		}
		for _, b := range pm[p] {
			hp, _ := strconv.Atoi(b.HostPort)
			ports = append(ports, container.PortSummary{IP: b.HostIP, PrivatePort: p.Num(), PublicPort: uint16(hp), Type: string(p.Proto())})
		}
	}
	if ports == nil {
		ports = []container.PortSummary{}
	}
	imageName := snap.ImageRef
	sum := container.Summary{
		ID: snap.ID, Names: []string{snap.Name}, Image: imageName, ImageID: snap.ImageID, Command: commandText(&snap),
		Created: snap.Created.Unix(), Ports: ports, Labels: snap.Config.Labels, State: container.ContainerState(snap.State.Status),
		Status: statusText(&snap), NetworkSettings: &container.NetworkSettingsSummary{Networks: endpoint(&snap)}, Mounts: snap.Mounts,
	}
	sum.HostConfig.NetworkMode = string(snap.HostConfig.NetworkMode)
	if sum.Mounts == nil {
		sum.Mounts = []container.MountPoint{}
	}
	if size {
		sum.SizeRw = s.e.SizeRw(c)
		if img, err := s.e.Images.Resolve(snap.ImageID); err == nil {
			sum.SizeRootFs = img.Size + sum.SizeRw
		}
	}
	out := map[string]any{}
	b, _ := json.Marshal(sum)
	json.Unmarshal(b, &out)
	return out
}

func (s *Server) containerList(r *request) error {
	filters, err := parseFilters(r.query("filters"))
	if err != nil {
		return err
	}
	all := r.bool("all")
	limit, _ := strconv.Atoi(r.query("limit"))
	size := r.bool("size")
	out := []map[string]any{}
	for _, c := range s.e.Containers() {
		snap := c.Snapshot()
		running := snap.State.Status == engine.StateRunning || snap.State.Status == engine.StatePaused || snap.State.Status == engine.StateRestarting
		if !all && !running && len(filters["status"]) == 0 && limit <= 0 {
			continue
		}
		if !matchContainer(&snap, filters) {
			continue
		}
		out = append(out, s.containerSummary(c, size))
		if limit > 0 && len(out) >= limit {
			break
		}
	}
	return writeJSON(r.w, http.StatusOK, out)
}

func matchContainer(c *engine.Container, f map[string][]string) bool {
	for k, vs := range f {
		ok := false
		for _, v := range vs {
			switch k {
			case "id":
				ok = ok || strings.HasPrefix(c.ID, v)
			case "name":
				ok = ok || strings.Contains(strings.TrimPrefix(c.Name, "/"), strings.TrimPrefix(v, "/"))
			case "status":
				ok = ok || c.State.Status == v
			case "label":
				kk, vv, hasV := strings.Cut(v, "=")
				lv, has := c.Config.Labels[kk]
				ok = ok || has && (!hasV || lv == vv)
			case "ancestor":
				ok = ok || c.ImageRef == v || c.ImageID == v || strings.HasPrefix(strings.TrimPrefix(c.ImageID, "sha256:"), strings.TrimPrefix(v, "sha256:"))
			case "exited":
				ok = ok || c.State.Status == engine.StateExited && strconv.Itoa(c.State.ExitCode) == v
			case "network":
				ok = ok || string(c.HostConfig.NetworkMode) == v
			case "volume":
				for _, m := range c.Mounts {
					ok = ok || m.Name == v || m.Destination == v
				}
			default:
				ok = true
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

func (s *Server) commit(r *request) error {
	var cfg *container.Config
	if r.ContentLength != 0 {
		cfg = &container.Config{}
		if err := decodeJSON(r, cfg); err != nil {
			return err
		}
		if cfg.Cmd == nil && cfg.Entrypoint == nil && cfg.Env == nil && cfg.Labels == nil {
			cfg = nil
		}
	}
	ref := r.query("repo")
	if ref != "" && r.query("tag") != "" {
		ref += ":" + r.query("tag")
	}
	pause := r.query("pause") == "" || r.bool("pause")
	img, err := s.e.Commit(r.query("container"), engine.CommitOptions{Ref: ref, Comment: r.query("comment"), Author: r.query("author"),
		Changes: r.URL.Query()["changes"], Config: cfg, Pause: pause})
	if err != nil {
		return err
	}
	return writeJSON(r.w, http.StatusCreated, map[string]string{"Id": img.ID.String()})
}
