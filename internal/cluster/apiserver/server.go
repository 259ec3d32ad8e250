// Package apiserver is Wharf's Kubernetes-compatible API server: HTTPS with
// a generated CA and bearer token, the core/apps/discovery/coordination
// resources of k8s.io/api on a store.Interface, discovery, OpenAPI and
// Table output that real kubectl (1.27–1.33) and client-go accept.
package apiserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"

	"github.com/wharfhq/wharf/internal/cluster/store"
)

// Version is the Kubernetes version the server reports.
var Version = struct{ Major, Minor, GitVersion string }{"1", "33", "v1.33.0+wharf"}

// Options configures the API server.
type Options struct {
	// DataRoot holds kube/ (CA, serving cert, token, embedded store) and
	// kubeconfig.yaml.
	DataRoot string
	// Port is the HTTPS port (default 6443).
	Port int
	// BindAddress is the listen address (default 0.0.0.0).
	BindAddress string
	// Listener, when set, is used instead of BindAddress:Port (tests pass a
	// 127.0.0.1:0 listener).
	Listener net.Listener
	// Store is the storage; nil opens etcd when DatastoreEndpoint is set,
	// else the embedded bbolt store at <DataRoot>/kube/state.db (an opened
	// store is closed by Run on exit).
	Store store.Interface
	// DatastoreEndpoint selects etcd (k3s's --datastore-endpoint): comma
	// separated http(s):// URLs; with the optional client TLS files.
	DatastoreEndpoint                                    string
	DatastoreCAFile, DatastoreCertFile, DatastoreKeyFile string
	// NodeAgent serves pods/log, exec, attach and portforward; nil answers 503.
	NodeAgent NodeAgent
	// ExtraSANs are added to the serving certificate.
	ExtraSANs []string
	// ServiceCIDR for ClusterIPs (default 10.43.0.0/16).
	ServiceCIDR string
	// NodePortMin/Max (default 30000–32767).
	NodePortMin, NodePortMax int
	// GCInterval is how often the garbage collector sweeps when no
	// deletion kicks it (default DefaultGCInterval).
	GCInterval time.Duration
	// Logf logs (default: discard).
	Logf func(format string, args ...any)
}

// Server is one API server instance.
type Server struct {
	opts       Options
	pki        *pki
	store      store.Interface
	ownStore   bool
	reg        *registry
	scheme     *runtime.Scheme
	protoCodec *protobuf.Serializer
	listener   net.Listener
	kubeconfig string
	server     string // https URL in the kubeconfig
	ready      chan struct{}
	alloc      *allocator
	openapi    *openAPI
	fms        fieldManagers
	events     eventCache
	started    time.Time
	bgWG       sync.WaitGroup
	gcKick     chan struct{}
}

// New prepares the server: generates (first start) or loads the PKI and
// token, writes <DataRoot>/kubeconfig.yaml, opens the store and listens.
// Serving starts with Run.
func New(opts Options) (*Server, error) {
	if opts.DataRoot == "" {
		return nil, errors.New("apiserver: DataRoot is required")
	}
	if opts.Port == 0 {
		opts.Port = 6443
	}
	if opts.BindAddress == "" {
		opts.BindAddress = "0.0.0.0"
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	if opts.GCInterval <= 0 {
		opts.GCInterval = DefaultGCInterval
	}
	s := &Server{opts: opts, ready: make(chan struct{}), started: time.Now(), gcKick: make(chan struct{}, 1)}
	var err error
	s.scheme, err = newScheme()
	if err != nil {
		return nil, err
	}
	s.protoCodec = protobuf.NewSerializer(s.scheme, s.scheme)
	s.reg = newRegistry()
	s.alloc, err = newAllocator(opts.ServiceCIDR, opts.NodePortMin, opts.NodePortMax)
	if err != nil {
		return nil, err
	}
	kubeDir := filepath.Join(opts.DataRoot, "kube")
	if s.pki, err = loadOrCreatePKI(kubeDir, append(append([]string{}, opts.ExtraSANs...), bindHost(opts.BindAddress))); err != nil {
		return nil, fmt.Errorf("apiserver: certificates: %w", err)
	}
	s.listener = opts.Listener
	if s.listener == nil {
		s.listener, err = net.Listen("tcp", net.JoinHostPort(opts.BindAddress, strconv.Itoa(opts.Port)))
		if err != nil {
			return nil, fmt.Errorf("apiserver: listen: %w", err)
		}
	}
	host := "127.0.0.1"
	if ta, ok := s.listener.Addr().(*net.TCPAddr); ok {
		if !ta.IP.IsUnspecified() {
			host = ta.IP.String()
		}
		s.server = "https://" + net.JoinHostPort(host, strconv.Itoa(ta.Port))
	} else {
		s.server = "https://" + s.listener.Addr().String()
	}
	s.kubeconfig = filepath.Join(opts.DataRoot, "kubeconfig.yaml")
	if err := writeKubeconfig(s.kubeconfig, buildKubeconfig(s.server, s.pki.caPEM, s.pki.token)); err != nil {
		s.listener.Close()
		return nil, fmt.Errorf("apiserver: write kubeconfig: %w", err)
	}
	s.store = opts.Store
	if s.store == nil && opts.DatastoreEndpoint != "" {
		st, err := openEtcdStore(opts)
		if err != nil {
			s.listener.Close()
			return nil, err
		}
		s.store, s.ownStore = st, true
	}
	if s.store == nil {
		b, err := store.OpenBolt(filepath.Join(kubeDir, "state.db"), store.BoltOptions{})
		if err != nil {
			s.listener.Close()
			return nil, err
		}
		s.store, s.ownStore = b, true
	}
	s.openapi = newOpenAPI(s.reg)
	return s, nil
}

func openEtcdStore(opts Options) (store.Interface, error) {
	var tlsCfg *tls.Config
	if opts.DatastoreCAFile != "" || opts.DatastoreCertFile != "" || strings.HasPrefix(opts.DatastoreEndpoint, "https://") {
		tlsCfg = &tls.Config{MinVersion: tls.VersionTLS12}
		if opts.DatastoreCAFile != "" {
			pem, err := os.ReadFile(opts.DatastoreCAFile)
			if err != nil {
				return nil, fmt.Errorf("apiserver: datastore CA: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("apiserver: datastore CA %s: no certificates", opts.DatastoreCAFile)
			}
			tlsCfg.RootCAs = pool
		}
		if opts.DatastoreCertFile != "" {
			c, err := tls.LoadX509KeyPair(opts.DatastoreCertFile, opts.DatastoreKeyFile)
			if err != nil {
				return nil, fmt.Errorf("apiserver: datastore client certificate: %w", err)
			}
			tlsCfg.Certificates = []tls.Certificate{c}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return store.OpenEtcd(ctx, store.EtcdOptions{Endpoints: strings.Split(opts.DatastoreEndpoint, ","), TLS: tlsCfg})
}

// EtcdCompactionInterval is how often an etcd store is compacted.
var EtcdCompactionInterval = 5 * time.Minute

func (s *Server) compactLoop(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	var prev int64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if prev > 0 {
			if err := s.store.Compact(ctx, prev); err != nil {
				s.opts.Logf("kube API: compact store at %d: %v", prev, err)
			}
		}
		if cur, err := s.store.CurrentRevision(ctx); err == nil {
			prev = cur
		}
	}
}

func bindHost(b string) string {
	if ip := net.ParseIP(b); ip != nil && ip.IsUnspecified() {
		return ""
	}
	return b
}

// KubeconfigPath is <DataRoot>/kubeconfig.yaml.
func (s *Server) KubeconfigPath() string { return s.kubeconfig }

// URL is the server URL written in the kubeconfig.
func (s *Server) URL() string { return s.server }

// Token is the bearer token.
func (s *Server) Token() string { return s.pki.token }

// CAPEM is the cluster CA certificate.
func (s *Server) CAPEM() []byte { return append([]byte(nil), s.pki.caPEM...) }

// Ready is closed once the server answers requests.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Store is the storage the server runs on (for controllers in-process).
func (s *Server) Store() store.Interface { return s.store }

// Run seeds the built-in objects and serves until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	defer func() {
		if s.ownStore {
			s.bgWG.Wait()
			s.store.Close()
		}
	}()
	if err := s.seed(ctx); err != nil {
		s.listener.Close()
		return fmt.Errorf("apiserver: seed: %w", err)
	}
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 30 * time.Second,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{s.pki.serving}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}},
		ErrorLog:          nil,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(s.listener, "", "") }()
	if _, ok := s.store.(*store.Bolt); !ok {
		// bbolt compacts its own history; etcd is compacted like
		// kube-apiserver does: every interval, up to the revision seen one
		// interval earlier
		go s.compactLoop(ctx, EtcdCompactionInterval)
	}
	gcCtx, gcCancel := context.WithCancel(ctx)
	gcDone := make(chan struct{})
	go func() {
		defer close(gcDone)
		s.gcLoop(gcCtx, s.opts.GCInterval)
	}()
	defer func() { gcCancel(); <-gcDone }() // before a store we opened is closed
	s.kickGC()                              // dependents left over from before a restart
	close(s.ready)
	s.opts.Logf("kube API server listening on %s", s.server)
	// build the OpenAPI documents and the managed-fields type converter in
	// the background, so the first write or kubectl apply does not wait
	s.bgWG.Add(1)
	go func() {
		defer s.bgWG.Done()
		t0 := time.Now()
		for _, r := range s.reg.all {
			s.fieldManager(r, "")
		}
		s.opts.Logf("kube API: OpenAPI and field managers ready in %v", time.Since(t0))
	}()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
		<-errc
		return nil
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	}
}

// Handler is the authenticated HTTP handler (TLS is terminated by Run).
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.opts.Logf("apiserver: panic serving %s %s: %v", r.Method, r.URL, p)
				writeError(w, apierrors.NewInternalError(fmt.Errorf("%v", p)))
			}
		}()
		switch r.URL.Path {
		case "/healthz", "/livez", "/readyz", "/healthz/", "/livez/", "/readyz/":
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Set("X-Content-Type-Options", "nosniff")
			w.Write([]byte("ok"))
			return
		case "/version", "/version/":
			s.serveVersion(w, r)
			return
		}
		if !s.authenticate(r) {
			writeError(w, apierrors.NewUnauthorized("Unauthorized"))
			return
		}
		s.route(w, r)
	})
}

func (s *Server) authenticate(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	if tok, ok := strings.CutPrefix(h, "Bearer "); ok {
		return s.pki.tokenOK(strings.TrimSpace(tok))
	}
	// websocket clients may pass the token as a subprotocol
	for _, p := range strings.Split(r.Header.Get("Sec-WebSocket-Protocol"), ",") {
		if enc, ok := strings.CutPrefix(strings.TrimSpace(p), "base64url.bearer.authorization.k8s.io."); ok {
			if b, err := base64URLDecode(enc); err == nil {
				return s.pki.tokenOK(string(b))
			}
		}
	}
	return false
}

func (s *Server) serveVersion(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{
		"major":        Version.Major,
		"minor":        Version.Minor,
		"gitVersion":   Version.GitVersion,
		"gitCommit":    "0000000000000000000000000000000000000000",
		"gitTreeState": "clean",
		"buildDate":    "2026-01-01T00:00:00Z",
		"goVersion":    goruntime.Version(),
		"compiler":     goruntime.Compiler,
		"platform":     goruntime.GOOS + "/" + goruntime.GOARCH,
	})
}

func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	p := strings.Trim(r.URL.Path, "/")
	switch {
	case p == "api":
		s.serveAPI(w, r)
		return
	case p == "apis":
		s.serveAPIs(w, r)
		return
	case p == "openapi/v2":
		s.openapi.serveV2(w, r)
		return
	case p == "openapi/v3":
		s.openapi.serveV3Index(w, r)
		return
	case strings.HasPrefix(p, "openapi/v3/"):
		s.openapi.serveV3(w, r, strings.TrimPrefix(p, "openapi/v3/"))
		return
	case p == "apis/apiextensions.k8s.io/v1/customresourcedefinitions" && r.Method == http.MethodGet && r.URL.Query().Get("watch") == "":
		s.serveNoCRDs(w, r)
		return
	}
	parts := strings.Split(p, "/")
	var group, version string
	var rest []string
	switch {
	case parts[0] == "api" && len(parts) >= 2:
		group, version, rest = "", parts[1], parts[2:]
	case parts[0] == "apis" && len(parts) == 2:
		s.serveGroup(w, r, parts[1])
		return
	case parts[0] == "apis" && len(parts) >= 3:
		group, version, rest = parts[1], parts[2], parts[3:]
	default:
		writeError(w, notFoundPath(r))
		return
	}
	if len(rest) == 0 {
		s.serveResourceList(w, r, group, version)
		return
	}
	var ns, res, name, sub string
	if rest[0] == "namespaces" && len(rest) >= 3 {
		if rr := s.reg.lookup(group, version, rest[2]); rr != nil && rr.namespaced {
			ns, res = rest[1], rest[2]
			rest = rest[3:]
			goto named
		}
	}
	res, rest = rest[0], rest[1:]
named:
	if len(rest) > 0 {
		name = rest[0]
	}
	if len(rest) > 1 {
		sub = rest[1]
	}
	if len(rest) > 2 {
		writeError(w, notFoundPath(r))
		return
	}
	rr := s.reg.lookup(group, version, res)
	if rr == nil {
		writeError(w, notFoundPath(r))
		return
	}
	s.serveREST(w, r, rr, ns, name, sub)
}

func notFoundPath(r *http.Request) error {
	return &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: http.StatusNotFound, Reason: metav1.StatusReasonNotFound,
		Message: "the server could not find the requested resource", Details: &metav1.StatusDetails{Causes: []metav1.StatusCause{{Type: metav1.CauseTypeUnexpectedServerResponse, Message: "404 page not found"}}}}}
}

func writeJSON(w http.ResponseWriter, code int, v interface{}) {
	data, err := json.Marshal(v)
	if err != nil {
		code = http.StatusInternalServerError
		data, _ = json.Marshal(apierrors.NewInternalError(err).Status())
	}
	if w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "application/json")
	}
	w.Header().Set("Cache-Control", "no-cache, private")
	w.WriteHeader(code)
	w.Write(append(data, '\n'))
}

// writeError answers a kube-style Status.
func writeError(w http.ResponseWriter, err error) {
	var st metav1.Status
	var se apierrors.APIStatus
	if errors.As(err, &se) {
		st = se.Status()
	} else {
		st = apierrors.NewInternalError(err).Status()
	}
	st.Kind, st.APIVersion = "Status", "v1"
	if st.Code == 0 {
		st.Code = http.StatusInternalServerError
	}
	if st.Status == "" {
		st.Status = metav1.StatusFailure
	}
	writeJSON(w, int(st.Code), st)
}

// Addr is the listening address.
func (s *Server) Addr() net.Addr { return s.listener.Addr() }

// serveNoCRDs answers the list of CustomResourceDefinitions, which is empty:
// custom resources are not served (the group is not advertised). kubectl's
// client-side validation of an unknown kind lists CRDs to tell a missing
// CRD from a typo, and gives up ("failed to check CRD") on a 404.
func (s *Server) serveNoCRDs(w http.ResponseWriter, r *http.Request) {
	rev, err := s.store.CurrentRevision(r.Context())
	if err != nil {
		writeError(w, apierrors.NewInternalError(err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"kind": "CustomResourceDefinitionList", "apiVersion": "apiextensions.k8s.io/v1",
		"metadata": map[string]any{"resourceVersion": strconv.FormatInt(rev, 10)}, "items": []any{},
	})
}
