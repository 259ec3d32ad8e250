package registry

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/wharfhq/wharf/internal/image"
)

// startRegistry runs the built-in registry on 127.0.0.1:<free port> until the test ends.
func startRegistry(t *testing.T, htpasswd string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cfg := &ServerConfig{Addr: l.Addr().String(), Root: t.TempDir(), Htpasswd: htpasswd, Log: io.Discard}
	done := make(chan error, 1)
	go func() { done <- cfg.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("registry: %v", err)
		}
	})
	return l.Addr().String()
}

func openStore(t *testing.T) *image.Store {
	t.Helper()
	s, err := image.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func layerTar(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for n, data := range files {
		tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(data)), ModTime: time.Unix(1700000000, 0), Typeflag: tar.TypeReg})
		tw.Write([]byte(data))
	}
	tw.Close()
	return buf.Bytes()
}

// makeImage creates a two-layer image tagged ref in s.
func makeImage(t *testing.T, s *image.Store, ref, salt string) *image.Image {
	t.Helper()
	cfg := ocispec.Image{Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"}}
	cfg.Config.Cmd = []string{"/bin/sh"}
	img, err := s.Create(cfg, []io.Reader{
		bytes.NewReader(layerTar(t, map[string]string{"a": "base layer " + salt})),
		bytes.NewReader(layerTar(t, map[string]string{"b": strings.Repeat("x", 300000) + salt})),
	}, ref)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

type messages []Message

func decodeStream(t *testing.T, b []byte) messages {
	t.Helper()
	var out messages
	dec := json.NewDecoder(bytes.NewReader(b))
	for {
		var m Message
		if err := dec.Decode(&m); err == io.EOF {
			return out
		} else if err != nil {
			t.Fatalf("bad stream: %v\n%s", err, b)
		}
		out = append(out, m)
	}
}

func (ms messages) has(status string) bool {
	for _, m := range ms {
		if m.Status == status || strings.HasPrefix(m.Status, status) {
			return true
		}
	}
	return false
}

func (ms messages) count(status string) int {
	n := 0
	for _, m := range ms {
		if m.Status == status {
			n++
		}
	}
	return n
}

func TestPushPullRoundTrip(t *testing.T) {
	addr := startRegistry(t, "")
	src, dst := openStore(t), openStore(t)
	ref := addr + "/test/img:1"
	img := makeImage(t, src, ref, "1")
	c := &Client{}
	ctx := context.Background()

	var buf bytes.Buffer
	res, err := c.Push(ctx, src, ref, PushOptions{Progress: NewProgress(&buf, nil, nil)})
	if err != nil {
		t.Fatal(err)
	}
	ms := decodeStream(t, buf.Bytes())
	if !ms.has("The push refers to repository ["+addr+"/test/img]") || ms.count("Pushed") != 2 || ms.count("Preparing") != 2 {
		t.Fatalf("push stream:\n%s", buf.String())
	}
	if len(res) != 1 || res[0].Tag != "1" || !strings.HasPrefix(res[0].Digest, "sha256:") || res[0].Size == 0 {
		t.Fatalf("push result %+v", res)
	}
	last := ms[len(ms)-1]
	if last.Aux == nil {
		t.Fatalf("no aux at the end:\n%s", buf.String())
	}
	pushed, _ := src.Resolve(ref)
	if len(pushed.RepoDigests) != 1 || pushed.RepoDigests[0] != addr+"/test/img@"+res[0].Digest {
		t.Errorf("RepoDigests after push: %v", pushed.RepoDigests)
	}

	// Again: every blob is there.
	buf.Reset()
	if _, err := c.Push(ctx, src, ref, PushOptions{Progress: NewProgress(&buf, nil, nil)}); err != nil {
		t.Fatal(err)
	}
	if ms := decodeStream(t, buf.Bytes()); ms.count("Layer already exists") != 2 {
		t.Errorf("second push:\n%s", buf.String())
	}

	// Another repository of the same registry: blobs are mounted.
	ref2 := addr + "/other/img:2"
	if err := src.Tag(ref, ref2); err != nil {
		t.Fatal(err)
	}
	buf.Reset()
	if _, err := c.Push(ctx, src, ref2, PushOptions{Progress: NewProgress(&buf, nil, nil)}); err != nil {
		t.Fatal(err)
	}
	if ms := decodeStream(t, buf.Bytes()); ms.count("Mounted from test/img") != 2 {
		t.Errorf("cross-repo push:\n%s", buf.String())
	}

	// Pull into an empty store.
	buf.Reset()
	got, err := c.Pull(ctx, dst, ref, PullOptions{Progress: NewProgress(&buf, nil, nil)})
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != img.ID {
		t.Fatalf("pulled %s, pushed %s", got.ID, img.ID)
	}
	ms = decodeStream(t, buf.Bytes())
	for _, s := range []string{"Pulling from test/img", "Digest: " + res[0].Digest, "Status: Downloaded newer image for " + ref} {
		if !ms.has(s) {
			t.Errorf("pull stream lacks %q:\n%s", s, buf.String())
		}
	}
	if ms.count("Pulling fs layer") != 2 || ms.count("Download complete") != 2 || ms.count("Pull complete") != 2 {
		t.Errorf("pull stream:\n%s", buf.String())
	}
	if len(got.RepoTags) != 1 || got.RepoTags[0] != ref || len(got.RepoDigests) != 1 || got.RepoDigests[0] != addr+"/test/img@"+res[0].Digest {
		t.Errorf("tags %v digests %v", got.RepoTags, got.RepoDigests)
	}
	for _, l := range img.Layers {
		if !dst.HasBlob(l.Blob) {
			t.Errorf("layer %s missing after pull", l.Blob)
		}
	}

	// Pulling again: up to date, nothing downloaded.
	buf.Reset()
	if _, err := c.Pull(ctx, dst, ref, PullOptions{Progress: NewProgress(&buf, nil, nil)}); err != nil {
		t.Fatal(err)
	}
	ms = decodeStream(t, buf.Bytes())
	if ms.count("Already exists") != 2 || ms.count("Pulling fs layer") != 0 || !ms.has("Status: Image is up to date for "+ref) {
		t.Errorf("second pull:\n%s", buf.String())
	}

	// By digest, under another name: blobs present, the image gets name@digest.
	byDigest := addr + "/other/img@" + res[0].Digest
	got2, err := c.Pull(ctx, dst, byDigest, PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got2.ID != img.ID {
		t.Fatalf("by digest: %s", got2.ID)
	}
	if r, err := dst.Resolve(byDigest); err != nil || r.ID != img.ID {
		t.Errorf("resolve %s: %v", byDigest, err)
	}

	// Ensure by policy.
	if _, err := c.EnsureImage(ctx, dst, addr+"/other/img:2", PullNever, PullOptions{}); err == nil || !strings.Contains(err.Error(), "is not present with pull policy of Never") {
		t.Errorf("Never: %v", err)
	}
	if e, err := c.EnsureImage(ctx, dst, addr+"/other/img:2", PullIfNotPresent, PullOptions{}); err != nil || e.ID != img.ID {
		t.Errorf("IfNotPresent: %v", err)
	}
	if _, err := c.EnsureImage(ctx, dst, addr+"/other/img:2", PullNever, PullOptions{}); err != nil {
		t.Errorf("Never after pull: %v", err)
	}
	if _, err := c.EnsureImage(ctx, dst, addr+"/other/img:2", PullAlways, PullOptions{}); err != nil {
		t.Errorf("Always: %v", err)
	}
}

func TestPullErrors(t *testing.T) {
	addr := startRegistry(t, "")
	src, dst := openStore(t), openStore(t)
	c := &Client{}
	ctx := context.Background()
	makeImage(t, src, addr+"/test/e:1", "e")
	if _, err := c.Push(ctx, src, addr+"/test/e:1", PushOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ref, want string
		kind      Kind
	}{
		{addr + "/no/such", "repository " + addr + "/no/such not found: name unknown: repository name not known to registry", KindNotFound},
		{addr + "/test/e:nope", "manifest for " + addr + "/test/e:nope not found: manifest unknown: manifest unknown", KindNotFound},
		{"127.0.0.1:1/x:1", `Get "`, KindInternal},
		{"UPPER/x", "invalid reference format", KindInvalid},
	} {
		_, err := c.Pull(ctx, dst, tc.ref, PullOptions{})
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) || KindOf(err) != tc.kind {
			t.Errorf("pull %s: got %v (kind %d), want %q (kind %d)", tc.ref, err, KindOf(err), tc.want, tc.kind)
		}
	}
	if _, err := c.Push(ctx, src, addr+"/test/none:1", PushOptions{}); err == nil || err.Error() != "An image does not exist locally with the tag: "+addr+"/test/none:1" {
		t.Errorf("push missing: %v", err)
	}
}

func TestPlainHTTPPolicy(t *testing.T) {
	c := &Client{Insecure: []string{"10.1.2.3:5000", "192.168.7.0/24"}}
	for host, want := range map[string]bool{
		"127.0.0.1:5000": true, "127.3.4.5:80": true, "localhost:5000": true, "[::1]:5000": true, "10.1.2.3:5000": true,
		"192.168.7.9:5000": true, "192.168.8.9:5000": false, "10.0.0.1:5000": false, "registry.local:5000": false,
		"index.docker.io": false, "example.com": false,
	} {
		if got := c.plainHTTPAllowed(host); got != want {
			t.Errorf("%s: %v, want %v", host, got, want)
		}
	}
}

func TestDecodeAuthHeader(t *testing.T) {
	raw, _ := json.Marshal(map[string]string{"username": "u", "password": "p:w", "serveraddress": "127.0.0.1:5000"})
	for _, enc := range []*base64.Encoding{base64.URLEncoding, base64.StdEncoding} {
		ac := DecodeAuthHeader(enc.EncodeToString(raw))
		if ac == nil || ac.Username != "u" || ac.Password != "p:w" || ac.ServerAddress != "127.0.0.1:5000" {
			t.Errorf("decoded %+v", ac)
		}
	}
	if DecodeAuthHeader("") != nil || DecodeAuthHeader("e30=") != nil || DecodeAuthHeader("!!") != nil {
		t.Error("empty/invalid should be anonymous")
	}
	ac := &AuthConfig{Auth: base64.StdEncoding.EncodeToString([]byte("a:b"))}
	if ac.anonymous() {
		t.Error("auth field ignored")
	}
}

func TestAuthLoginPushPull(t *testing.T) {
	dir := t.TempDir()
	line, err := HtpasswdLine("alice", "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	htp := filepath.Join(dir, "htpasswd")
	os.WriteFile(htp, []byte(line+"\n"), 0o600)
	addr := startRegistry(t, htp)
	src, dst := openStore(t), openStore(t)
	c := &Client{}
	ctx := context.Background()
	ref := addr + "/priv/img:1"
	makeImage(t, src, ref, "auth")

	if _, err := c.Push(ctx, src, ref, PushOptions{}); err == nil || err.Error() != "no basic auth credentials" || KindOf(err) != KindUnauthorized {
		t.Fatalf("anonymous push: %v", err)
	}
	bad := &AuthConfig{Username: "alice", Password: "wrong", ServerAddress: addr}
	if _, err := c.Login(ctx, bad); err == nil || !strings.Contains(err.Error(), "401 Unauthorized") {
		t.Fatalf("login with a bad password: %v", err)
	}
	if _, err := c.Push(ctx, src, ref, PushOptions{Auth: bad}); err == nil || KindOf(err) != KindUnauthorized {
		t.Fatalf("push with a bad password: %v", err)
	}
	good := &AuthConfig{Username: "alice", Password: "s3cret", ServerAddress: "http://" + addr}
	if st, err := c.Login(ctx, good); err != nil || st != "Login Succeeded" {
		t.Fatalf("login: %q %v", st, err)
	}
	if _, err := c.Push(ctx, src, ref, PushOptions{Auth: good}); err != nil {
		t.Fatalf("push: %v", err)
	}
	if _, err := c.Pull(ctx, dst, ref, PullOptions{}); err == nil || KindOf(err) != KindUnauthorized {
		t.Fatalf("anonymous pull: %v", err)
	}
	if _, err := c.Pull(ctx, dst, ref, PullOptions{Auth: good}); err != nil {
		t.Fatalf("pull: %v", err)
	}
}

// badBlobRegistry serves one image whose layer blob does not match its digest.
func TestPullRejectsWrongDigest(t *testing.T) {
	src, dst := openStore(t), openStore(t)
	img := makeImage(t, src, "x/bad:1", "bad")
	rawManifest, desc, err := src.Manifest(img)
	if err != nil {
		t.Fatal(err)
	}
	corrupt := img.Layers[1].Blob
	mux := http.NewServeMux()
	mux.HandleFunc("/v2/", func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		switch {
		case p == "/v2/":
			w.WriteHeader(200)
		case strings.HasPrefix(p, "/v2/x/bad/manifests/"):
			w.Header().Set("Content-Type", desc.MediaType)
			w.Header().Set("Docker-Content-Digest", desc.Digest.String())
			w.Write(rawManifest)
		case strings.HasPrefix(p, "/v2/x/bad/blobs/"):
			d := digest.Digest(strings.TrimPrefix(p, "/v2/x/bad/blobs/"))
			rc, err := src.OpenBlob(d)
			if err != nil {
				http.NotFound(w, r)
				return
			}
			defer rc.Close()
			b, _ := io.ReadAll(rc)
			if d == corrupt {
				b[len(b)/2] ^= 0xff
			}
			w.Header().Set("Content-Length", fmt.Sprint(len(b)))
			w.Write(b)
		default:
			http.NotFound(w, r)
		}
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux}
	go srv.Serve(l)
	defer srv.Close()
	ref := l.Addr().String() + "/x/bad:1"
	_, err = (&Client{}).Pull(context.Background(), dst, ref, PullOptions{})
	if err == nil || !strings.Contains(err.Error(), "filesystem layer verification failed for digest "+corrupt.String()) {
		t.Fatalf("pull of a corrupt blob: %v", err)
	}
	if dst.HasBlob(corrupt) {
		t.Error("corrupt blob stored")
	}
	if _, err := dst.Resolve(ref); err == nil {
		t.Error("image recorded")
	}
	ents, _ := os.ReadDir(filepath.Join(dst.Root(), "tmp"))
	if len(ents) != 0 {
		t.Errorf("temp files left: %v", ents)
	}
}

func TestGarbageCollect(t *testing.T) {
	root := t.TempDir()
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	cfg := &ServerConfig{Addr: l.Addr().String(), Root: root, Log: io.Discard}
	done := make(chan error, 1)
	go func() { done <- cfg.Serve(ctx, l) }()
	src := openStore(t)
	ref := l.Addr().String() + "/gc/img:1"
	makeImage(t, src, ref, "gc")
	if _, err := (&Client{}).Push(context.Background(), src, ref, PushOptions{}); err != nil {
		t.Fatal(err)
	}
	cancel()
	<-done
	if err := GarbageCollect(context.Background(), root, false, false, nil); err != nil {
		t.Fatal(err)
	}
}
