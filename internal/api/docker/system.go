package docker

import (
	"encoding/json"
	"net/http"
	goruntime "runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wharfhq/wharf/internal/engine"
)

func kernelVersion() string {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

func (s *Server) versionInfo(r *request) error {
	return writeJSON(r.w, http.StatusOK, map[string]any{
		"Platform":      map[string]string{"Name": "Wharf Engine"},
		"Components":    []map[string]any{{"Name": "Engine", "Version": s.version, "Details": map[string]string{"ApiVersion": APIVersion, "MinAPIVersion": MinAPIVersion, "Os": "linux", "Arch": goruntime.GOARCH, "KernelVersion": kernelVersion(), "GoVersion": goruntime.Version()}}},
		"Version":       s.version,
		"ApiVersion":    APIVersion,
		"MinAPIVersion": MinAPIVersion,
		"GitCommit":     "",
		"GoVersion":     goruntime.Version(),
		"Os":            "linux",
		"Arch":          goruntime.GOARCH,
		"KernelVersion": kernelVersion(),
		"BuildTime":     "",
	})
}

func (s *Server) info(r *request) error {
	var running, paused, stopped int
	cs := s.e.Containers()
	for _, c := range cs {
		switch c.Snapshot().State.Status {
		case engine.StateRunning:
			running++
		case engine.StatePaused:
			paused++
		default:
			stopped++
		}
	}
	imgs, _ := s.e.Images.List()
	var si unix.Sysinfo_t
	unix.Sysinfo(&si)
	cgv := "1"
	if isCgroup2() {
		cgv = "2"
	}
	return writeJSON(r.w, http.StatusOK, map[string]any{
		"ID": "wharf", "Containers": len(cs), "ContainersRunning": running, "ContainersPaused": paused,
		"ContainersStopped": stopped, "Images": len(imgs), "Driver": "overlayfs", "DriverStatus": [][2]string{},
		"MemoryLimit": true, "SwapLimit": false, "CpuCfsPeriod": true, "CpuCfsQuota": true, "CPUShares": true,
		"CPUSet": true, "PidsLimit": true, "IPv4Forwarding": true, "Debug": false, "NFd": 0, "NGoroutines": goruntime.NumGoroutine(),
		"SystemTime": time.Now().Format(time.RFC3339Nano), "LoggingDriver": "json-file", "CgroupDriver": "cgroupfs",
		"CgroupVersion": cgv, "NEventsListener": 0, "KernelVersion": kernelVersion(), "OperatingSystem": "Wharf",
		"OSVersion": "", "OSType": "linux", "Architecture": archName(), "IndexServerAddress": "https://index.docker.io/v1/",
		"NCPU": goruntime.NumCPU(), "MemTotal": int64(si.Totalram) * int64(si.Unit), "DockerRootDir": s.e.DataRoot(),
		"Name": hostname(), "Labels": []string{}, "ExperimentalBuild": false, "ServerVersion": s.version,
		"Runtimes": map[string]any{"runc": map[string]string{"path": "libcontainer (in-process)"}}, "DefaultRuntime": "runc",
		"Swarm":              map[string]any{"LocalNodeState": "inactive", "ControlAvailable": false, "NodeID": "", "NodeAddr": "", "RemoteManagers": nil},
		"LiveRestoreEnabled": true, "Isolation": "", "InitBinary": "", "SecurityOptions": []string{"name=cgroupns"},
		"Plugins":        map[string]any{"Volume": []string{"local"}, "Network": []string{"bridge", "host", "null"}, "Log": []string{"json-file", "local"}},
		"RegistryConfig": RegistryClient.ServiceConfig(),
		"Warnings":       []string{},
	})
}

func archName() string {
	if goruntime.GOARCH == "amd64" {
		return "x86_64"
	}
	return goruntime.GOARCH
}

func isCgroup2() bool {
	var st unix.Statfs_t
	return unix.Statfs("/sys/fs/cgroup", &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC
}

// eventFilter matches docker events' --filter.
type eventFilter map[string][]string

func parseFilters(raw string) (map[string][]string, error) {
	out := map[string][]string{}
	if raw == "" {
		return out, nil
	}
	// Both the modern {"k":{"v":true}} and the legacy {"k":["v"]} forms.
	var modern map[string]map[string]bool
	if err := json.Unmarshal([]byte(raw), &modern); err == nil {
		for k, vs := range modern {
			for v := range vs {
				out[k] = append(out[k], v)
			}
		}
		return out, nil
	}
	var legacy map[string][]string
	if err := json.Unmarshal([]byte(raw), &legacy); err != nil {
		return nil, engine.Invalid("invalid filter: %v", err)
	}
	return legacy, nil
}

func (f eventFilter) match(ev engine.Event) bool {
	for k, vs := range f {
		ok := false
		for _, v := range vs {
			switch k {
			case "type":
				ok = ok || ev.Type == v
			case "event", "action":
				ok = ok || ev.Action == v || strings.HasPrefix(ev.Action, v+":")
			case "container", "image", "volume", "network":
				ok = ok || ev.Type == k && (ev.ID == v || strings.HasPrefix(ev.ID, v) || ev.Attrs["name"] == v)
			case "label":
				kk, vv, hasV := strings.Cut(v, "=")
				lv, has := ev.Attrs[kk]
				ok = ok || has && (!hasV || lv == vv)
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

func parseTimeParam(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if sec, frac, ok := strings.Cut(s, "."); ok || isDigits(s) {
		n, err := strconv.ParseInt(sec, 10, 64)
		if err == nil {
			ns := int64(0)
			if ok {
				frac = (frac + "000000000")[:9]
				ns, _ = strconv.ParseInt(frac, 10, 64)
			}
			return time.Unix(n, ns), nil
		}
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return time.Now().Add(-d), nil
	}
	return time.Time{}, engine.Invalid("invalid time value %q", s)
}

func isDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

func eventJSON(ev engine.Event) map[string]any {
	m := map[string]any{
		"Type": ev.Type, "Action": ev.Action, "Actor": map[string]any{"ID": ev.ID, "Attributes": ev.Attrs},
		"scope": "local", "time": ev.TimeNano / 1e9, "timeNano": ev.TimeNano,
	}
	// Fields removed after API 1.50 that older clients still read.
	if ev.Type == "container" || ev.Type == "image" {
		m["status"], m["id"] = ev.Action, ev.ID
		if from, ok := ev.Attrs["image"]; ok {
			m["from"] = from
		}
	}
	return m
}

func (s *Server) events(r *request) error {
	since, err := parseTimeParam(r.query("since"))
	if err != nil {
		return err
	}
	until, err := parseTimeParam(r.query("until"))
	if err != nil {
		return err
	}
	f, err := parseFilters(r.query("filters"))
	if err != nil {
		return err
	}
	filter := eventFilter(f)
	past, live, cancel := s.e.Subscribe(since)
	defer cancel()
	r.w.Header().Set("Content-Type", "application/json")
	r.w.WriteHeader(http.StatusOK)
	flush(r.w)
	enc := json.NewEncoder(r.w)
	for _, ev := range past {
		if !until.IsZero() && ev.TimeNano > until.UnixNano() {
			return nil
		}
		if filter.match(ev) {
			enc.Encode(eventJSON(ev))
		}
	}
	flush(r.w)
	var deadline <-chan time.Time
	if !until.IsZero() {
		d := time.Until(until)
		if d <= 0 {
			return nil
		}
		deadline = time.After(d)
	}
	for {
		select {
		case ev := <-live:
			if filter.match(ev) {
				if err := enc.Encode(eventJSON(ev)); err != nil {
					return nil
				}
				flush(r.w)
			}
		case <-deadline:
			return nil
		case <-r.Context().Done():
			return nil
		}
	}
}

func flush(w http.ResponseWriter) {
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *Server) systemDF(r *request) error {
	imgs, _ := s.e.Images.List()
	var li []any
	for _, img := range imgs {
		li = append(li, imageSummary(s.e, img))
	}
	var cs []any
	for _, c := range s.e.Containers() {
		cs = append(cs, s.containerSummary(c, true))
	}
	var vs []any
	for _, v := range s.e.Volumes() {
		vs = append(vs, volumeJSON(v))
	}
	return writeJSON(r.w, http.StatusOK, map[string]any{"LayersSize": 0, "Images": li, "Containers": cs, "Volumes": vs, "BuildCache": []any{}})
}
