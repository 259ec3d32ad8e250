package registry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	"github.com/distribution/distribution/v3/registry/storage"
	"github.com/distribution/distribution/v3/registry/storage/driver/factory"
	"github.com/sirupsen/logrus"
	"golang.org/x/crypto/bcrypt"

	// Registered by init: the filesystem storage driver, the htpasswd and token access controllers.
	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd"
	_ "github.com/distribution/distribution/v3/registry/auth/token"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
)

// ServerConfig configures the built-in registry (CNCF distribution v3, filesystem storage).
type ServerConfig struct {
	Addr     string // host:port
	Root     string // storage directory
	Htpasswd string // optional: bcrypt htpasswd file; enables basic auth
	TLSCert  string // optional: serve HTTPS
	TLSKey   string
	// Token enables distribution's token authentication (docker's bearer-token flow) instead of
	// htpasswd: clients get a JWT from Realm, signed by a key whose certificate is in RootCertBundle.
	Token *TokenAuth
	Debug bool      // log every request
	Log   io.Writer // nil: stderr
}

func (c *ServerConfig) configuration() (*configuration.Configuration, error) {
	if c.Root == "" {
		return nil, errors.New("registry: a storage root is required")
	}
	root, err := filepath.Abs(c.Root)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, err
	}
	secret := make([]byte, 16)
	rand.Read(secret)
	level := "warn"
	if c.Debug {
		level = "info"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "version: 0.1\nlog:\n  level: %s\n  accesslog:\n    disabled: %v\n", level, !c.Debug)
	fmt.Fprintf(&b, "storage:\n  filesystem:\n    rootdirectory: %q\n  delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      enabled: true\n      age: 168h\n      interval: 24h\n      dryrun: false\n", root)
	fmt.Fprintf(&b, "http:\n  addr: %q\n  secret: %q\n  headers:\n    X-Content-Type-Options: [nosniff]\n", c.Addr, hex.EncodeToString(secret))
	// Non-distributable (foreign) layers reference URLs; accept http(s) ones, as the OCI spec allows.
	b.WriteString("validation:\n  manifests:\n    urls:\n      allow: ['^https?://']\n")
	if c.Htpasswd != "" && c.Token != nil {
		return nil, errors.New("registry: htpasswd and token authentication are exclusive")
	}
	if t := c.Token; t != nil {
		if t.Realm == "" || t.Service == "" || t.Issuer == "" || t.RootCertBundle == "" {
			return nil, errors.New("registry: token authentication needs a realm, a service, an issuer and a root certificate bundle")
		}
		p, err := filepath.Abs(t.RootCertBundle)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(&b, "auth:\n  token:\n    realm: %q\n    service: %q\n    issuer: %q\n    rootcertbundle: %q\n", t.Realm, t.Service, t.Issuer, p)
	}
	if c.Htpasswd != "" {
		p, err := filepath.Abs(c.Htpasswd)
		if err != nil {
			return nil, err
		}
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("registry: htpasswd file: %w", err)
		}
		fmt.Fprintf(&b, "auth:\n  htpasswd:\n    realm: %q\n    path: %q\n", "wharf-registry", p)
	}
	return configuration.Parse(strings.NewReader(b.String()))
}

// TokenAuth is distribution's "auth: token:" section.
type TokenAuth struct {
	Realm          string // URL of the token server
	Service        string // the registry's name in tokens (audience)
	Issuer         string // the token server's name in tokens
	RootCertBundle string // PEM file: certificates of the keys that sign tokens
}

// Handler builds the registry's HTTP handler (the distribution app; /v2/ API).
func (c *ServerConfig) Handler(ctx context.Context) (h http.Handler, err error) {
	cfg, err := c.configuration()
	if err != nil {
		return nil, err
	}
	var out io.Writer = os.Stderr
	if c.Log != nil {
		out = c.Log
	}
	logrus.SetOutput(out)
	if c.Debug {
		logrus.SetLevel(logrus.InfoLevel)
	} else {
		logrus.SetLevel(logrus.WarnLevel)
	}
	defer func() {
		// distribution's NewApp panics on configuration errors.
		if r := recover(); r != nil {
			h, err = nil, fmt.Errorf("registry: %v", r)
		}
	}()
	app := handlers.NewApp(ctx, cfg)
	if c.Htpasswd != "" || c.Token != nil {
		return app, nil
	}
	root, _ := filepath.Abs(c.Root)
	return &nameUnknown{next: app, repos: filepath.Join(root, "docker", "registry", "v2", "repositories")}, nil
}

// nameUnknown answers reads of a repository that does not exist with NAME_UNKNOWN, as
// distribution 2.x did (v3 says MANIFEST_UNKNOWN), so that clients can tell an unknown
// repository from an unknown tag ("repository x not found: name unknown: …", as dockerd words it).
// It is used only without authentication, where it reveals nothing the registry would not.
type nameUnknown struct {
	next  http.Handler
	repos string
}

var repoPath = regexp.MustCompile(`^/v2/(.+)/(manifests|blobs|tags)/[^/]+$`)

func (h *nameUnknown) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		if m := repoPath.FindStringSubmatch(r.URL.Path); m != nil && !strings.Contains(m[1], "..") {
			if _, err := os.Stat(filepath.Join(h.repos, filepath.FromSlash(m[1]))); os.IsNotExist(err) {
				w.Header().Set("Content-Type", "application/json; charset=utf-8")
				w.Header().Set("Docker-Distribution-Api-Version", "registry/2.0")
				w.WriteHeader(http.StatusNotFound)
				if r.Method == http.MethodGet {
					fmt.Fprintf(w, `{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry","detail":{"name":%q}}]}`+"\n", m[1])
				}
				return
			}
		}
	}
	h.next.ServeHTTP(w, r)
}

// Serve answers registry requests on l until ctx is done.
func (c *ServerConfig) Serve(ctx context.Context, l net.Listener) error {
	h, err := c.Handler(ctx)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if c.TLSCert != "" || c.TLSKey != "" {
		err = srv.ServeTLS(l, c.TLSCert, c.TLSKey)
	} else {
		err = srv.Serve(l)
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// ListenAndServe listens on c.Addr and serves until ctx is done.
func (c *ServerConfig) ListenAndServe(ctx context.Context) error {
	l, err := net.Listen("tcp", c.Addr)
	if err != nil {
		return err
	}
	return c.Serve(ctx, l)
}

// GarbageCollect deletes blobs no manifest references (and, with removeUntagged, manifests no tag
// references) from a registry root, as `registry garbage-collect` does. Run it while the registry
// is stopped or read-only.
func GarbageCollect(ctx context.Context, root string, dryRun, removeUntagged bool, out io.Writer) error {
	if out != nil {
		logrus.SetOutput(out)
	}
	drv, err := factory.Create(ctx, "filesystem", map[string]any{"rootdirectory": root})
	if err != nil {
		return err
	}
	reg, err := storage.NewRegistry(ctx, drv, storage.EnableDelete)
	if err != nil {
		return err
	}
	return storage.MarkAndSweep(ctx, drv, reg, storage.GCOpts{DryRun: dryRun, RemoveUntagged: removeUntagged, Quiet: out == nil})
}

// HtpasswdLine returns "user:bcrypt-hash" for an htpasswd file.
func HtpasswdLine(user, password string) (string, error) {
	if user == "" || strings.Contains(user, ":") {
		return "", errors.New("htpasswd: invalid user name")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return "", err
	}
	return user + ":" + string(h), nil
}
