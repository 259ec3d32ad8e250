// Package registry moves images between the local image store and registries (pull, push, login),
// through github.com/google/go-containerregistry, and serves a registry of its own (Server) by
// embedding github.com/distribution/distribution/v3.
//
// Client conventions follow dockerd: Docker Hub naming ("busybox" → docker.io/library/busybox:latest),
// X-Registry-Auth credentials, plain HTTP only for loopback registries and those listed as insecure,
// linux/amd64 (or the requested platform) picked out of manifest lists, RepoDigests recorded, Docker's
// JSON progress stream, and Docker's error texts.
package registry

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// AuthConfig is the credentials object the docker CLI sends base64-encoded in X-Registry-Auth and
// in the body of POST /auth (field names as Docker's registry.AuthConfig).
type AuthConfig struct {
	Username      string `json:"username,omitempty"`
	Password      string `json:"password,omitempty"`
	Auth          string `json:"auth,omitempty"`
	ServerAddress string `json:"serveraddress,omitempty"`
	IdentityToken string `json:"identitytoken,omitempty"`
	RegistryToken string `json:"registrytoken,omitempty"`
}

// DecodeAuthHeader decodes an X-Registry-Auth value (URL-safe or standard base64 JSON). An empty or
// undecodable header means anonymous, as dockerd treats it.
func DecodeAuthHeader(h string) *AuthConfig {
	if h == "" {
		return nil
	}
	var raw []byte
	var err error
	for _, enc := range []*base64.Encoding{base64.URLEncoding, base64.StdEncoding, base64.RawURLEncoding, base64.RawStdEncoding} {
		if raw, err = enc.DecodeString(h); err == nil {
			break
		}
	}
	if err != nil {
		return nil
	}
	var ac AuthConfig
	if json.Unmarshal(raw, &ac) != nil {
		return nil
	}
	if ac == (AuthConfig{}) {
		return nil
	}
	return &ac
}

func (a *AuthConfig) authenticator() authn.Authenticator {
	if a == nil {
		return authn.Anonymous
	}
	cfg := authn.AuthConfig{Username: a.Username, Password: a.Password, IdentityToken: a.IdentityToken, RegistryToken: a.RegistryToken}
	if cfg.Username == "" && cfg.Password == "" && a.Auth != "" {
		if dec, err := base64.StdEncoding.DecodeString(a.Auth); err == nil {
			cfg.Username, cfg.Password, _ = strings.Cut(string(dec), ":")
		}
	}
	if cfg == (authn.AuthConfig{}) {
		return authn.Anonymous
	}
	return authn.FromConfig(cfg)
}

func (a *AuthConfig) anonymous() bool { return a.authenticator() == authn.Anonymous }

// Client holds the daemon-wide registry settings.
type Client struct {
	// Insecure lists registries ("host:port" or CIDRs) that may be reached over plain HTTP
	// (--insecure-registry). Loopback registries always may.
	Insecure []string
	// Transport is the base HTTP transport (nil: a clone of http.DefaultTransport).
	Transport http.RoundTripper
	// UserAgent is sent to registries.
	UserAgent string
	// Jobs is how many blobs move at once (0: 4).
	Jobs int

	resolved sync.Map // host name → its addresses are in an insecure CIDR (bool)
}

func (c *Client) jobs() int {
	if c == nil || c.Jobs <= 0 {
		return 4
	}
	return c.Jobs
}

// plainHTTPAllowed says whether Docker would talk plain HTTP to host ("host[:port]").
func (c *Client) plainHTTPAllowed(host string) bool {
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(h, "[]"))
	if ip != nil && ip.IsLoopback() {
		return true
	}
	return c.insecureHost(host)
}

// httpPolicy upgrades plain-HTTP requests to HTTPS for registries Docker would not reach over HTTP
// (go-containerregistry also allows RFC 1918 and .local hosts; Docker does not).
// HTTPS to a registry listed by --insecure-registry, or on loopback, does not verify certificates, as
// dockerd (which treats 127.0.0.0/8 as insecure: HTTPS without verification first, then plain HTTP).
type httpPolicy struct {
	c        *Client
	base     http.RoundTripper
	insecure *insecureTLS
}

func (p *httpPolicy) RoundTrip(r *http.Request) (*http.Response, error) {
	if rr := realmRequest(r); rr != nil {
		// A token request for a realm go-containerregistry would refuse (see realm.go).
		return p.base.RoundTrip(rr)
	}
	if r.URL.Scheme == "http" && !p.c.plainHTTPAllowed(r.URL.Host) {
		r2 := r.Clone(r.Context())
		r2.URL.Scheme = "https"
		r = r2
	}
	rt := p.base
	if r.URL.Scheme == "https" && p.c.plainHTTPAllowed(r.URL.Host) {
		if t := p.insecure.get(); t != nil {
			rt = t
		}
	}
	resp, err := rt.RoundTrip(r)
	if err != nil {
		return resp, err
	}
	rewriteChallenge(r, resp)
	deniedBody(resp)
	return limitManifest(r, resp)
}

func (c *Client) transport() http.RoundTripper {
	var base http.RoundTripper
	if c != nil && c.Transport != nil {
		base = c.Transport
	} else {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.ResponseHeaderTimeout = 60 * time.Second
		t.MaxIdleConnsPerHost = 16
		base = t
	}
	return &httpPolicy{c: c, base: base, insecure: &insecureTLS{base: base}}
}

// parseRef turns a Docker reference (already normalised by distribution/reference) into a
// go-containerregistry one, marking loopback and insecure registries.
func (c *Client) parseRef(named reference.Named) (name.Reference, error) {
	var opts []name.Option
	if c.plainHTTPAllowed(reference.Domain(named)) {
		opts = append(opts, name.Insecure)
	}
	return name.ParseReference(named.String(), opts...)
}

func (c *Client) remoteOptions(ctx context.Context, auth *AuthConfig) []remote.Option {
	ua := "wharf"
	if c != nil && c.UserAgent != "" {
		ua = c.UserAgent
	}
	return []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuth(auth.authenticator()),
		remote.WithTransport(c.transport()),
		remote.WithUserAgent(ua),
		remote.WithJobs(c.jobs()),
	}
}

func (c *Client) userAgent() string {
	if c != nil && c.UserAgent != "" {
		return c.UserAgent
	}
	return "wharf"
}

// pullTransport authenticates once for pulling from repo (ping, then basic auth or a bearer token
// for its pull scope) and returns the transport go-containerregistry then uses as is (a
// transport.Wrapper), with its usual retries of network flakes and user agent below.
func (c *Client) pullTransport(ctx context.Context, repo name.Repository, auth *AuthConfig) (http.RoundTripper, error) {
	base := transport.NewUserAgent(transport.NewRetry(c.transport(),
		transport.WithRetryPredicate(retryable),
		transport.WithRetryStatusCodes(http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusInternalServerError,
			http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout)), c.userAgent())
	return transport.NewWithContext(ctx, repo.Registry, auth.authenticator(), base, []string{repo.Scope(transport.PullScope)})
}

// retryable is go-containerregistry's default retry predicate: network flakes.
func retryable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return false
	}
	te, ok := err.(interface{ Temporary() bool })
	return ok && te.Temporary() || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, net.ErrClosed)
}

// ParseReference normalises what a user typed ("busybox", "busybox:1", "x@sha256:…") as Docker
// does; a name without tag or digest gets ":latest".
func ParseReference(s string) (reference.Named, error) {
	named, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		return nil, &Error{Kind: KindInvalid, Msg: "invalid reference format"}
	}
	return reference.TagNameOnly(named), nil
}

// Kind classifies errors for the API front door.
type Kind int

const (
	KindInternal Kind = iota
	KindNotFound
	KindInvalid
	KindUnauthorized
)

// Error is an error worded as dockerd's, with a kind for the HTTP status.
type Error struct {
	Kind Kind
	Msg  string
	Err  error
}

func (e *Error) Error() string { return e.Msg }
func (e *Error) Unwrap() error { return e.Err }

// KindOf returns the kind of err (KindInternal for foreign errors).
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindInternal
}

// diagnostics formats a registry's error list as Docker's errcode does: "manifest unknown: …".
func diagnostics(te *transport.Error) string {
	var parts []string
	for _, d := range te.Errors {
		code := strings.ToLower(strings.ReplaceAll(string(d.Code), "_", " "))
		if d.Message != "" {
			parts = append(parts, code+": "+d.Message)
		} else {
			parts = append(parts, code)
		}
	}
	if len(parts) == 0 {
		return te.Error()
	}
	return strings.Join(parts, ", ")
}

func hasCode(te *transport.Error, codes ...transport.ErrorCode) bool {
	for _, d := range te.Errors {
		for _, c := range codes {
			if d.Code == c {
				return true
			}
		}
	}
	return false
}

// pullError words a failed manifest fetch as dockerd's pull does.
func pullError(named reference.Named, auth *AuthConfig, err error) error {
	if e := tooLargeError(err); e != nil {
		return e
	}
	var te *transport.Error
	if errors.As(err, &te) {
		switch {
		case hasCode(te, transport.ManifestUnknownErrorCode):
			return &Error{Kind: KindNotFound, Err: err, Msg: fmt.Sprintf("manifest for %s not found: %s", reference.FamiliarString(named), diagnostics(te))}
		case hasCode(te, transport.NameUnknownErrorCode):
			// dockerd: "repository x not found: name unknown: …" (Docker Hub answers DENIED instead).
			return &Error{Kind: KindNotFound, Err: err, Msg: fmt.Sprintf("repository %s not found: %s", reference.FamiliarName(named), diagnostics(te))}
		case hasCode(te, transport.DeniedErrorCode),
			te.StatusCode == http.StatusNotFound,
			te.StatusCode == http.StatusUnauthorized && reference.Domain(named) == "docker.io":
			return &Error{Kind: KindNotFound, Err: err, Msg: fmt.Sprintf("pull access denied for %s, repository does not exist or may require 'docker login': %s", reference.FamiliarName(named), diagnostics(te))}
		case te.StatusCode == http.StatusUnauthorized:
			return unauthorizedError(auth, te, err)
		}
	}
	return wrapNetError(err)
}

func unauthorizedError(auth *AuthConfig, te *transport.Error, err error) error {
	if auth.anonymous() {
		return &Error{Kind: KindUnauthorized, Err: err, Msg: "no basic auth credentials"}
	}
	return &Error{Kind: KindUnauthorized, Err: err, Msg: diagnostics(te)}
}

// wrapNetError keeps go's error text ("Get \"http://…/v2/\": dial tcp …: connect: connection
// refused"), which is what dockerd shows for an unreachable registry.
func wrapNetError(err error) error {
	if e := tooLargeError(err); e != nil {
		return e
	}
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	var te *transport.Error
	if errors.As(err, &te) {
		if te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden {
			return &Error{Kind: KindUnauthorized, Err: err, Msg: diagnostics(te)}
		}
		return &Error{Kind: KindInternal, Err: err, Msg: diagnostics(te)}
	}
	return &Error{Kind: KindInternal, Err: err, Msg: err.Error()}
}

// platformOf parses "os/arch[/variant]"; empty means linux/GOARCH (linux/amd64 here).
func platformOf(s string) (v1.Platform, error) {
	if s == "" {
		return v1.Platform{OS: "linux", Architecture: runtime.GOARCH}, nil
	}
	p, err := v1.ParsePlatform(s)
	if err != nil {
		return v1.Platform{}, &Error{Kind: KindInvalid, Msg: err.Error()}
	}
	return *p, nil
}
