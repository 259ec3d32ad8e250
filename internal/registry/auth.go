package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

// wrapPushErr words push failures as dockerd's.
func wrapPushErr(auth *AuthConfig, err error) error {
	var te *transport.Error
	if errors.As(err, &te) && hasCode(te, transport.DeniedErrorCode) {
		return &Error{Kind: KindUnauthorized, Err: err, Msg: diagnostics(te)}
	}
	if errors.As(err, &te) && (te.StatusCode == http.StatusUnauthorized || hasCode(te, transport.UnauthorizedErrorCode)) {
		return unauthorizedError(auth, te, err)
	}
	return wrapNetError(err)
}

// registryHost turns a login server address ("https://index.docker.io/v1/", "127.0.0.1:5000",
// "http://localhost:5000") into the registry host.
func registryHost(server string) string {
	s := strings.TrimPrefix(strings.TrimPrefix(server, "https://"), "http://")
	s, _, _ = strings.Cut(s, "/")
	switch s {
	case "", "docker.io", "index.docker.io", "registry-1.docker.io":
		return name.DefaultRegistry
	}
	return s
}

// Login checks credentials against a registry as dockerd's POST /auth does: GET /v2/ with them
// (a bearer-token registry issues a token only for valid credentials). It returns the status text.
func (c *Client) Login(ctx context.Context, auth *AuthConfig) (string, error) {
	if auth == nil {
		auth = &AuthConfig{}
	}
	host := registryHost(auth.ServerAddress)
	var opts []name.Option
	if c.plainHTTPAllowed(host) {
		opts = append(opts, name.Insecure)
	}
	reg, err := name.NewRegistry(host, opts...)
	if err != nil {
		return "", &Error{Kind: KindInvalid, Msg: err.Error()}
	}
	rt, err := transport.NewWithContext(ctx, reg, auth.authenticator(), c.transport(), []string{})
	if err != nil {
		var te *transport.Error
		if errors.As(err, &te) && te.StatusCode == http.StatusUnauthorized {
			if te.Request != nil && te.Request.URL.Path != "/v2/" {
				// The token server refused the credentials: dockerd shows its error.
				scheme := reg.Scheme()
				if pr, perr := transport.Ping(ctx, reg, c.transport()); perr == nil && !pr.Insecure {
					scheme = "https"
				}
				msg := "unauthorized: authentication required"
				if len(te.Errors) > 0 {
					msg = diagnostics(te)
				}
				return "", &Error{Kind: KindUnauthorized, Err: err, Msg: fmt.Sprintf("Get %q: %s", scheme+"://"+host+"/v2/", msg)}
			}
			return "", &Error{Kind: KindUnauthorized, Err: err, Msg: fmt.Sprintf("login attempt to %s://%s/v2/ failed with status: 401 Unauthorized", reg.Scheme(), host)}
		}
		return "", wrapNetError(err)
	}
	// The ping chose the scheme; ask again with the credentials.
	for _, scheme := range []string{"https", "http"} {
		if scheme == "http" && !c.plainHTTPAllowed(host) {
			break
		}
		url := fmt.Sprintf("%s://%s/v2/", scheme, host)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := (&http.Client{Transport: rt}).Do(req)
		if err != nil {
			if scheme == "https" && c.plainHTTPAllowed(host) {
				continue
			}
			return "", wrapNetError(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusOK:
			return "Login Succeeded", nil
		case http.StatusUnauthorized, http.StatusForbidden:
			return "", &Error{Kind: KindUnauthorized, Msg: fmt.Sprintf("login attempt to %s failed with status: %d %s", url, resp.StatusCode, http.StatusText(resp.StatusCode))}
		default:
			return "", &Error{Kind: KindInternal, Msg: fmt.Sprintf("login attempt to %s failed with status: %d %s", url, resp.StatusCode, http.StatusText(resp.StatusCode))}
		}
	}
	return "", &Error{Kind: KindInternal, Msg: "login: registry " + host + " did not answer"}
}
