package registry

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestRealmRewrite(t *testing.T) {
	reg, _ := url.Parse("http://127.0.0.1:5000/v2/")
	for realm, refused := range map[string]bool{
		"http://127.0.0.1:5001/token":    true,  // loopback, another port
		"http://10.1.2.3/token":          true,  // private
		"http://127.0.0.1:5000/token":    false, // the registry itself
		"https://auth.example.com/token": false,
		"ftp://x/token":                  false, // malformed for ggcr: it reports it
	} {
		if got := realmRefused(realm, reg); got != refused {
			t.Errorf("%s: refused %v, want %v", realm, got, refused)
		}
	}
	sec, _ := url.Parse("https://reg.example.com/v2/")
	if !realmRefused("http://auth.example.com/token", sec) {
		t.Error("http realm of an https registry: ggcr refuses it")
	}

	req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:5000/v2/", nil)
	resp := &http.Response{StatusCode: http.StatusUnauthorized, Header: http.Header{}}
	resp.Header.Add("WWW-Authenticate", `Bearer realm="http://127.0.0.1:5001/token?x=1",service="reg",scope="repository:a/b:pull"`)
	rewriteChallenge(req, resp)
	h := resp.Header.Get("WWW-Authenticate")
	if !strings.HasPrefix(h, `Bearer realm="http://127.0.0.1:5000`+realmPrefix) || !strings.HasSuffix(h, `",service="reg",scope="repository:a/b:pull"`) {
		t.Fatalf("rewritten: %s", h)
	}
	fake := h[len(`Bearer realm="`):strings.Index(h, `",service`)]
	treq, _ := http.NewRequest(http.MethodGet, fake+"?scope=repository%3Aa%2Fb%3Apull&service=reg", nil)
	treq.SetBasicAuth("alice", "pw")
	real := realmRequest(treq)
	if real == nil || real.URL.Host != "127.0.0.1:5001" || real.URL.Path != "/token" || real.Host != "127.0.0.1:5001" {
		t.Fatalf("real request: %+v", real)
	}
	if q := real.URL.Query(); q.Get("x") != "1" || q.Get("service") != "reg" || q.Get("scope") != "repository:a/b:pull" {
		t.Errorf("query: %v", q)
	}
	if u, p, ok := real.BasicAuth(); !ok || u != "alice" || p != "pw" {
		t.Error("credentials not kept")
	}
	if realmRequest(req) != nil {
		t.Error("a registry request taken for a realm request")
	}
}

func TestInsufficientScopeIsDenied(t *testing.T) {
	resp := &http.Response{StatusCode: http.StatusUnauthorized, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(`{"errors":[{"code":"UNAUTHORIZED"}]}`))}
	resp.Header.Set("WWW-Authenticate", `Bearer realm="https://a/token",service="r",scope="repository:x:pull",error="insufficient_scope"`)
	deniedBody(resp)
	b, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(b), `"code":"DENIED"`) {
		t.Errorf("body: %s", b)
	}
	resp = &http.Response{StatusCode: http.StatusUnauthorized, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(`x`))}
	resp.Header.Set("WWW-Authenticate", `Bearer realm="https://a/token",service="r"`)
	deniedBody(resp)
	if b, _ := io.ReadAll(resp.Body); string(b) != "x" {
		t.Errorf("a plain challenge changed: %s", b)
	}
}
