// Package docker is the Docker Engine API front door: it translates Engine API
// requests (as the real docker CLI 28 and the moby client send them) onto
// engine calls, and engine results back into the Engine API's JSON, streams
// and hijacked connections. It holds no state of its own.
package docker

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/wharfhq/wharf/internal/engine"
)

const (
	// APIVersion is the newest Engine API version served; the docker CLI 28 caps at 1.50.
	APIVersion = "1.50"
	// MinAPIVersion is the oldest accepted.
	MinAPIVersion = "1.24"
	maxJSONBody   = 16 << 20
)

// Server serves the Engine API for one engine.
type Server struct {
	e       *engine.Engine
	log     *slog.Logger
	version string
	// Builder, when set, serves POST /build.
	Builder BuildFunc
	// BuildPrune, when set, empties the build cache (POST /build/prune); it returns the entries removed.
	BuildPrune func() (int, error)
	// Activity, when set, is called as each request begins and ends (the daemon trims memory when idle).
	Activity func()
	http     *http.Server
}

// BuildFunc runs a legacy-builder build, writing Docker's JSON stream to out.
type BuildFunc func(r *http.Request, out io.Writer) error

// New makes a server; version is Wharf's own version string.
func New(e *engine.Engine, version string, log *slog.Logger) *Server {
	if log == nil {
		log = slog.Default()
	}
	return &Server{e: e, log: log, version: version}
}

// Serve answers requests on l until it is closed.
func (s *Server) Serve(l net.Listener) error {
	s.http = &http.Server{Handler: s, ReadHeaderTimeout: 30 * time.Second}
	err := s.http.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Close stops serving.
func (s *Server) Close() error {
	if s.http != nil {
		return s.http.Close()
	}
	return nil
}

var versionPrefix = regexp.MustCompile(`^/v([0-9]+\.[0-9]+)(/.*)$`)

type request struct {
	*http.Request
	w       http.ResponseWriter
	path    string
	version string
}

func (r *request) query(k string) string { return r.URL.Query().Get(k) }
func (r *request) bool(k string) bool {
	v := strings.ToLower(r.URL.Query().Get(k))
	return v != "" && v != "0" && v != "false" && v != "no"
}

func (s *Server) ServeHTTP(w http.ResponseWriter, hr *http.Request) {
	if s.Activity != nil {
		s.Activity()
		defer s.Activity()
	}
	h := w.Header()
	h.Set("Api-Version", APIVersion)
	h.Set("Ostype", "linux")
	h.Set("Server", "Wharf/"+s.version+" (linux)")
	h.Set("Docker-Experimental", "false")
	h.Set("Cache-Control", "no-cache, no-store, must-revalidate")
	h.Set("Pragma", "no-cache")
	r := &request{Request: hr, w: w, path: hr.URL.Path, version: APIVersion}
	if m := versionPrefix.FindStringSubmatch(r.path); m != nil {
		r.version, r.path = m[1], m[2]
		if versionLess(r.version, MinAPIVersion) {
			writeError(w, engine.Invalid("client version %s is too old. Minimum supported API version is %s, please upgrade your client to a newer version", r.version, MinAPIVersion))
			return
		}
		if versionLess(APIVersion, r.version) {
			writeError(w, engine.Invalid("client version %s is too new. Maximum supported API version is %s", r.version, APIVersion))
			return
		}
	}
	s.log.Debug("api", "method", hr.Method, "path", hr.URL.RequestURI())
	if err := s.route(r); err != nil {
		if !errors.Is(err, errHandled) {
			writeError(w, err)
		}
	}
}

var errHandled = errors.New("response already written")

func versionLess(a, b string) bool {
	pa, pb := strings.SplitN(a, ".", 2), strings.SplitN(b, ".", 2)
	for i := 0; i < 2; i++ {
		x, _ := strconv.Atoi(pa[min(i, len(pa)-1)])
		y, _ := strconv.Atoi(pb[min(i, len(pb)-1)])
		if x != y {
			return x < y
		}
	}
	return false
}

// route dispatches on method and path. Image names contain slashes, so those routes match suffixes.
func (s *Server) route(r *request) error {
	p, m := r.path, r.Method
	seg := strings.Split(strings.Trim(p, "/"), "/")
	switch {
	case p == "/_ping":
		return s.ping(r)
	case p == "/version" && m == http.MethodGet:
		return s.versionInfo(r)
	case p == "/info" && m == http.MethodGet:
		return s.info(r)
	case p == "/events" && m == http.MethodGet:
		return s.events(r)
	case p == "/system/df" && m == http.MethodGet:
		return s.systemDF(r)
	case p == "/build" && m == http.MethodPost:
		return s.build(r)
	case p == "/build/prune" && m == http.MethodPost:
		deleted := []string{}
		if s.BuildPrune != nil {
			n, err := s.BuildPrune()
			if err != nil {
				return err
			}
			for i := 0; i < n; i++ {
				deleted = append(deleted, fmt.Sprintf("cache-entry-%d", i))
			}
		}
		return writeJSON(r.w, http.StatusOK, map[string]any{"CachesDeleted": deleted, "SpaceReclaimed": 0})
	case p == "/auth" && m == http.MethodPost:
		return s.login(r)

	case seg[0] == "containers":
		return s.routeContainers(r, seg[1:])
	case seg[0] == "exec" && len(seg) == 3:
		switch seg[2] {
		case "start":
			return s.execStart(r, seg[1])
		case "resize":
			return s.execResize(r, seg[1])
		case "json":
			return s.execInspect(r, seg[1])
		}
	case seg[0] == "images":
		return s.routeImages(r, p)
	case seg[0] == "volumes":
		return s.routeVolumes(r, seg[1:])
	case seg[0] == "networks":
		return s.routeNetworks(r, seg[1:])
	case p == "/commit" && m == http.MethodPost:
		return s.commit(r)
	}
	return &engine.Error{Kind: engine.KindNotFound, Msg: "page not found"}
}

func (s *Server) routeContainers(r *request, seg []string) error {
	m := r.Method
	if len(seg) == 1 {
		switch {
		case seg[0] == "json" && m == http.MethodGet:
			return s.containerList(r)
		case seg[0] == "create" && m == http.MethodPost:
			return s.containerCreate(r)
		case seg[0] == "prune" && m == http.MethodPost:
			return s.containerPrune(r)
		case m == http.MethodDelete:
			return s.containerRemove(r, seg[0])
		}
	}
	if len(seg) == 2 {
		id, op := seg[0], seg[1]
		switch op + " " + m {
		case "json GET":
			return s.containerInspect(r, id)
		case "start POST":
			return s.containerStart(r, id)
		case "stop POST":
			return s.containerStop(r, id)
		case "restart POST":
			return s.containerRestart(r, id)
		case "kill POST":
			return s.containerKill(r, id)
		case "wait POST":
			return s.containerWait(r, id)
		case "attach POST":
			return s.containerAttach(r, id)
		case "logs GET":
			return s.containerLogs(r, id)
		case "resize POST":
			return s.containerResize(r, id)
		case "top GET":
			return s.containerTop(r, id)
		case "stats GET":
			return s.containerStats(r, id)
		case "pause POST":
			return s.e.Pause(id)
		case "unpause POST":
			return s.e.Unpause(id)
		case "rename POST":
			if err := s.e.Rename(id, r.query("name")); err != nil {
				return err
			}
			r.w.WriteHeader(http.StatusNoContent)
			return nil
		case "exec POST":
			return s.execCreate(r, id)
		case "archive GET", "archive HEAD":
			return s.archiveGet(r, id)
		case "archive PUT":
			return s.archivePut(r, id)
		case "export GET":
			return s.archiveExport(r, id)
		case "update POST":
			return writeJSON(r.w, http.StatusOK, map[string]any{"Warnings": []string{}})
		}
	}
	return &engine.Error{Kind: engine.KindNotFound, Msg: "page not found"}
}

// statusOf maps engine errors to HTTP statuses as dockerd does.
func statusOf(err error) int {
	switch engine.KindOf(err) {
	case engine.KindNotFound:
		return http.StatusNotFound
	case engine.KindConflict:
		return http.StatusConflict
	case engine.KindInvalid:
		return http.StatusBadRequest
	case engine.KindNotModified:
		return http.StatusNotModified
	case engine.KindForbidden:
		return http.StatusForbidden
	}
	return http.StatusInternalServerError
}

func writeError(w http.ResponseWriter, err error) {
	code := statusOf(err)
	if code == http.StatusNotModified {
		w.WriteHeader(code)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"message": err.Error()})
}

func writeJSON(w http.ResponseWriter, code int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	return json.NewEncoder(w).Encode(v)
}

// decodeJSON decodes leniently (unknown fields are ignored, as dockerd does); an empty body is allowed.
func decodeJSON(r *request, v any) error {
	body := http.MaxBytesReader(r.w, r.Body, maxJSONBody)
	err := json.NewDecoder(body).Decode(v)
	if err == io.EOF {
		return nil
	}
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return engine.Invalid("request body is too large (limit %d bytes)", maxJSONBody)
		}
		return engine.Invalid("invalid JSON: %v", err)
	}
	return nil
}

func (s *Server) ping(r *request) error {
	h := r.w.Header()
	h.Set("Builder-Version", "1")
	h.Set("Swarm", "inactive")
	h.Set("Content-Type", "text/plain; charset=utf-8")
	if r.Method == http.MethodHead {
		h.Set("Content-Length", "0")
		r.w.WriteHeader(http.StatusOK)
		return nil
	}
	r.w.WriteHeader(http.StatusOK)
	io.WriteString(r.w, "OK")
	return nil
}

func hostname() string { h, _ := os.Hostname(); return h }
