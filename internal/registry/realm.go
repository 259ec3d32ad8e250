package registry

import (
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
)

// Token realms go-containerregistry refuses but dockerd uses.
//
// go-containerregistry (since v0.21) only fetches bearer tokens from a realm on the registry's own
// host:port, or on a public address over HTTPS: a realm on a loopback or private address, or an HTTP
// realm for an HTTPS registry, is an error ("invalid realm in www-authenticate"). dockerd has no such
// rule, and private registries commonly run their token server on another port or host of a private
// network. httpPolicy therefore rewrites such a challenge's realm to a path on the registry's own
// host (which go-containerregistry accepts) and sends requests for that path to the real realm, with
// the query (service, scopes) and the credentials go-containerregistry attached.

const realmPrefix = "/.wharf-token-realm/"

var bearerRealm = regexp.MustCompile(`(?i)(realm\s*=\s*")([^"]*)(")`)

// rewriteChallenge rewrites, in a 401 answer to req, the realm of a Bearer challenge that
// go-containerregistry would refuse.
func rewriteChallenge(req *http.Request, resp *http.Response) {
	if resp.StatusCode != http.StatusUnauthorized {
		return
	}
	vals := resp.Header.Values("WWW-Authenticate")
	changed := false
	for i, v := range vals {
		if !strings.HasPrefix(strings.ToLower(strings.TrimSpace(v)), "bearer") {
			continue
		}
		vals[i] = bearerRealm.ReplaceAllStringFunc(v, func(m string) string {
			sub := bearerRealm.FindStringSubmatch(m)
			realm := sub[2]
			if !realmRefused(realm, req.URL) {
				return m
			}
			changed = true
			fake := url.URL{Scheme: req.URL.Scheme, Host: req.URL.Host, Path: realmPrefix + base64.RawURLEncoding.EncodeToString([]byte(realm))}
			return sub[1] + fake.String() + sub[3]
		})
	}
	if changed {
		resp.Header.Del("WWW-Authenticate")
		for _, v := range vals {
			resp.Header.Add("WWW-Authenticate", v)
		}
	}
}

var bearerError = regexp.MustCompile(`(?i)\berror\s*=\s*"?insufficient_scope"?`)

// deniedBody makes a 401 whose Bearer challenge says error="insufficient_scope" answer DENIED, as
// distribution's client (and so dockerd) reads it (RFC 6750): "denied: requested access to the
// resource is denied", which pull words as "pull access denied for …".
func deniedBody(resp *http.Response) {
	if resp.StatusCode != http.StatusUnauthorized {
		return
	}
	for _, v := range resp.Header.Values("WWW-Authenticate") {
		if strings.HasPrefix(strings.ToLower(strings.TrimSpace(v)), "bearer") && bearerError.MatchString(v) {
			resp.Body.Close()
			const body = `{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}`
			resp.Body = io.NopCloser(strings.NewReader(body))
			resp.ContentLength = int64(len(body))
			resp.Header.Set("Content-Type", "application/json")
			resp.Header.Del("Content-Length")
			return
		}
	}
}

// realmRefused mirrors go-containerregistry's validateRealmURL: true when it would refuse realm
// for a registry reached at reg.
func realmRefused(realm string, reg *url.URL) bool {
	u, err := url.Parse(realm)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return false // malformed: let go-containerregistry report it
	}
	if u.Host == reg.Host {
		return false
	}
	if u.Scheme == "http" && reg.Scheme == "https" {
		return true
	}
	ip := net.ParseIP(strings.Trim(u.Hostname(), "[]"))
	return ip != nil && (ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsUnspecified())
}

// realmRequest turns a request for a rewritten realm back into one for the real realm; nil when r
// is not one.
func realmRequest(r *http.Request) *http.Request {
	enc, ok := strings.CutPrefix(r.URL.Path, realmPrefix)
	if !ok {
		return nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil {
		return nil
	}
	u, err := url.Parse(string(raw))
	if err != nil {
		return nil
	}
	q := u.Query()
	for k, vs := range r.URL.Query() {
		q[k] = vs
	}
	u.RawQuery = q.Encode()
	r2 := r.Clone(r.Context())
	r2.URL = u
	r2.Host = u.Host
	return r2
}
