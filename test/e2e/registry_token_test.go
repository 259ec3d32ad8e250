package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wharfhq/wharf/internal/registry"
)

// tokenServer is a Docker token authentication server (the "realm" of distribution's token auth):
// GET /token?service=…&scope=repository:NAME:ACTIONS…, HTTP basic credentials, answers a JWT (ES256,
// x5c header) signed by a key made for the test. alice:s3cret gets what she asks for; anonymous
// callers get a token that grants nothing; a wrong password is refused.
type tokenServer struct {
	key     *ecdsa.PrivateKey
	certDER []byte
	service string
	issuer  string

	mu     sync.Mutex
	scopes []string // every scope asked for, in order
	users  []string // who asked ("" for anonymous)
}

func newTokenServer(t *testing.T, service, issuer string) (*tokenServer, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: issuer},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(t.TempDir(), "token-ca.pem")
	if err := os.WriteFile(bundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return &tokenServer{key: key, certDER: der, service: service, issuer: issuer}, bundle
}

type tokenAccess struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

func (ts *tokenServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	user, pass, hasAuth := r.BasicAuth()
	if hasAuth && (user != "alice" || pass != "s3cret") {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"invalid username or password"}]}`)
		return
	}
	if q.Get("service") != ts.service {
		http.Error(w, "unknown service", http.StatusBadRequest)
		return
	}
	access := []tokenAccess{}
	ts.mu.Lock()
	ts.users = append(ts.users, user)
	for _, s := range q["scope"] {
		ts.scopes = append(ts.scopes, s)
		// repository:NAME:ACTIONS (NAME may hold a port-less path; ACTIONS comma-separated).
		i, j := strings.Index(s, ":"), strings.LastIndex(s, ":")
		if i < 0 || i == j || !hasAuth {
			continue
		}
		access = append(access, tokenAccess{Type: s[:i], Name: s[i+1 : j], Actions: strings.Split(s[j+1:], ",")})
	}
	ts.mu.Unlock()
	now := time.Now()
	claims := map[string]any{
		"iss": ts.issuer, "sub": user, "aud": ts.service, "exp": now.Add(5 * time.Minute).Unix(),
		"nbf": now.Add(-time.Minute).Unix(), "iat": now.Unix(), "jti": fmt.Sprint(now.UnixNano()), "access": access,
	}
	tok, err := ts.sign(claims)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"token": tok, "access_token": tok, "expires_in": 300, "issued_at": now.UTC().Format(time.RFC3339)})
}

// sign makes a compact JWS (ES256) with the signing certificate in the x5c header.
func (ts *tokenServer) sign(claims map[string]any) (string, error) {
	enc := base64.RawURLEncoding
	hdr, _ := json.Marshal(map[string]any{"typ": "JWT", "alg": "ES256", "x5c": []string{base64.StdEncoding.EncodeToString(ts.certDER)}})
	body, _ := json.Marshal(claims)
	signing := enc.EncodeToString(hdr) + "." + enc.EncodeToString(body)
	sum := sha256.Sum256([]byte(signing))
	r, s, err := ecdsa.Sign(rand.Reader, ts.key, sum[:])
	if err != nil {
		return "", err
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return signing + "." + enc.EncodeToString(sig), nil
}

func (ts *tokenServer) asked() ([]string, []string) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]string(nil), ts.scopes...), append([]string(nil), ts.users...)
}

func (ts *tokenServer) reset() {
	ts.mu.Lock()
	ts.scopes, ts.users = nil, nil
	ts.mu.Unlock()
}

// serveHTTP serves h on 127.0.0.1:<free port> until the test ends and returns the address.
func serveHTTP(t *testing.T, h http.Handler) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

// serveRegistry serves internal/registry's server (distribution v3, filesystem storage in a temp dir) with
// cfg in this process on l until the test ends, and returns its address.
func serveRegistry(t *testing.T, l net.Listener, cfg *registry.ServerConfig) string {
	t.Helper()
	root := t.TempDir()
	logf, err := os.Create(filepath.Join(root, "registry.log"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Addr, cfg.Root, cfg.Log = l.Addr().String(), filepath.Join(root, "data"), logf
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cfg.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("registry: %v", err)
		}
		logf.Close()
	})
	return l.Addr().String()
}

// startTokenRegistry runs distribution v3 (internal/registry's server, in this process) with token
// authentication against a token server of the test.
func startTokenRegistry(t *testing.T) (string, *tokenServer) {
	t.Helper()
	ts, bundle := newTokenServer(t, "wharf-e2e-registry", "wharf-e2e-token-issuer")
	tokAddr := serveHTTP(t, ts)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := serveRegistry(t, l, &registry.ServerConfig{
		Token: &registry.TokenAuth{Realm: "http://" + tokAddr + "/token", Service: ts.service, Issuer: ts.issuer, RootCertBundle: bundle}})
	return addr, ts
}

// TestRegistryTokenAuth: distribution's token authentication (Docker's bearer-token flow) with a token
// server of the test: login (good and bad password), push (push+pull scopes), a second repository whose
// layers are mounted from the first (the source's pull scope asked for), rmi, pull, run, logout.
func TestRegistryTokenAuth(t *testing.T) {
	d := needDaemon(t)
	addr, ts := startTokenRegistry(t)
	forEachClient(t, func(t *testing.T, cc cli) {
		c := cc
		c.env = append(c.env, "DOCKER_CONFIG="+t.TempDir()) // logins stay in the test
		ref := fmt.Sprintf("%s/priv/busybox-%s:1", addr, c.name)
		ref2 := fmt.Sprintf("%s/priv/copy-%s:1", addr, c.name)
		c.ok(t, "tag", "busybox:latest", ref)
		defer c.run(t, "", "rmi", ref)

		r := c.run(t, "", "push", ref)
		if r.Code != 1 || !strings.Contains(r.Stderr+r.Stdout, "denied: requested access to the resource is denied") {
			t.Errorf("push without login: %s", r)
		}
		// dockerd shows the token server's refusal.
		r = c.run(t, "wrong\n", "login", "-u", "alice", "--password-stdin", addr)
		if want := fmt.Sprintf(`Error response from daemon: Get "http://%s/v2/": unauthorized: invalid username or password`, addr); r.Code != 1 || !strings.Contains(r.Stderr, want) {
			t.Errorf("login with a bad password: want %q\n%s", want, r)
		}
		r = c.run(t, "s3cret\n", "login", "-u", "alice", "--password-stdin", addr)
		if r.Code != 0 || !strings.Contains(r.Stdout, "Login Succeeded") {
			t.Fatalf("login: %s", r)
		}
		ts.reset()
		out := c.ok(t, "push", ref)
		if !strings.Contains(out, "1: digest: sha256:") {
			t.Errorf("push:\n%s", out)
		}
		repo := strings.TrimPrefix(ref[:strings.LastIndex(ref, ":")], addr+"/")
		scopes, users := ts.asked()
		if !containsStr(scopes, "repository:"+repo+":push,pull") && !containsStr(scopes, "repository:"+repo+":pull,push") {
			t.Errorf("push asked for scopes %q", scopes)
		}
		for _, u := range users {
			if u != "alice" {
				t.Errorf("a token request without alice's credentials during push: %q", users)
				break
			}
		}

		// The same image under another repository: its layer is mounted from the first one.
		c.ok(t, "tag", ref, ref2)
		ts.reset()
		out = c.ok(t, "push", ref2)
		c.ok(t, "rmi", ref2)
		if !strings.Contains(out, "Mounted from "+repo) {
			t.Errorf("cross-repository push:\n%s", out)
		}
		scopes, _ = ts.asked()
		if !containsStr(scopes, "repository:"+repo+":pull") {
			t.Errorf("the mount did not ask for the source's pull scope: %q", scopes)
		}

		c.ok(t, "rmi", ref)
		ts.reset()
		out = c.ok(t, "pull", ref)
		if !strings.Contains(out, "Status: Downloaded newer image for "+ref) {
			t.Errorf("pull:\n%s", out)
		}
		if scopes, _ = ts.asked(); !containsStr(scopes, "repository:"+repo+":pull") {
			t.Errorf("pull asked for scopes %q", scopes)
		}
		c.ok(t, "rmi", ref)
		if got := strings.TrimSpace(c.ok(t, "run", "--rm", ref, "echo", "token ok")); got != "token ok" {
			t.Errorf("run (pulls through the token flow): %q", got)
		}
		c.ok(t, "pull", ref2)
		c.ok(t, "rmi", ref2)

		c.ok(t, "logout", addr)
		c.ok(t, "rmi", ref)
		// As dockerd: the anonymous token lacks the scope (insufficient_scope), which reads as denied.
		r = c.run(t, "", "pull", ref)
		if want := "pull access denied for " + strings.TrimSuffix(ref, ":1") + ", repository does not exist or may require 'docker login': denied: requested access to the resource is denied"; r.Code != 1 || !strings.Contains(r.Stderr, want) {
			t.Errorf("pull after logout: want %q\n%s", want, r)
		}
	})
	_ = d
}

func containsStr(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
