package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	digest "github.com/opencontainers/go-digest"
)

// TestPullRejectsOversizedManifest: a registry serving a manifest over 4 MiB (with and without a
// Content-Length) gets a clear error, and nothing is stored.
func TestPullRejectsOversizedManifest(t *testing.T) {
	src := openStore(t)
	img := makeImage(t, src, "x/big:1", "big")
	rawManifest, desc, err := src.Manifest(img)
	if err != nil {
		t.Fatal(err)
	}
	// The same manifest, padded with an annotation to just over the limit.
	var m map[string]any
	if err := json.Unmarshal(rawManifest, &m); err != nil {
		t.Fatal(err)
	}
	m["annotations"] = map[string]string{"pad": strings.Repeat("p", MaxManifestSize)}
	big, _ := json.Marshal(m)
	// Just under the limit still pulls: the limit is not off by one the other way.
	m["annotations"] = map[string]string{"pad": strings.Repeat("p", MaxManifestSize-len(rawManifest)-100)}
	under, _ := json.Marshal(m)
	if len(under) > MaxManifestSize || len(big) <= MaxManifestSize {
		t.Fatalf("padding: %d %d", len(under), len(big))
	}
	var blobsServed atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("/v2/", func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		repo, rest, _ := strings.Cut(strings.TrimPrefix(p, "/v2/"), "/manifests/")
		switch {
		case p == "/v2/":
			w.WriteHeader(200)
		case rest != "":
			body := big
			if repo == "x/under" {
				body = under
			}
			w.Header().Set("Content-Type", desc.MediaType)
			w.Header().Set("Docker-Content-Digest", digest.FromBytes(body).String())
			if repo != "x/chunked" {
				w.Header().Set("Content-Length", fmt.Sprint(len(body)))
			}
			if r.Method == http.MethodHead {
				return
			}
			// Without a Content-Length the body goes out chunked, in pieces.
			for off := 0; off < len(body); off += 64 << 10 {
				if _, err := w.Write(body[off:min(off+64<<10, len(body))]); err != nil {
					return
				}
			}
		case strings.Contains(p, "/blobs/"):
			blobsServed.Add(1)
			_, d, _ := strings.Cut(p, "/blobs/")
			rc, err := src.OpenBlob(digest.Digest(d))
			if err != nil {
				http.NotFound(w, r)
				return
			}
			defer rc.Close()
			io.Copy(w, rc)
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

	for _, repo := range []string{"x/big", "x/chunked"} {
		dst := openStore(t)
		ref := l.Addr().String() + "/" + repo + ":1"
		_, err := (&Client{}).Pull(context.Background(), dst, ref, PullOptions{})
		if err == nil || !strings.Contains(err.Error(), "manifest too large") || !strings.Contains(err.Error(), fmt.Sprint(MaxManifestSize)) {
			t.Fatalf("%s: pull of a %d-byte manifest: %v", repo, len(big), err)
		}
		if KindOf(err) != KindInvalid {
			t.Errorf("%s: kind %v", repo, KindOf(err))
		}
		t.Logf("%s: %v", repo, err)
		if imgs, _ := dst.List(); len(imgs) != 0 {
			t.Errorf("%s: images stored: %v", repo, imgs)
		}
		for _, d := range []string{"tmp", filepath.Join("blobs", "sha256")} {
			ents, _ := os.ReadDir(filepath.Join(dst.Root(), d))
			if len(ents) != 0 {
				t.Errorf("%s: files left in %s: %v", repo, d, ents)
			}
		}
	}
	if n := blobsServed.Load(); n != 0 {
		t.Errorf("%d blob requests after an oversized manifest", n)
	}
	dst := openStore(t)
	got, err := (&Client{}).Pull(context.Background(), dst, l.Addr().String()+"/x/under:1", PullOptions{})
	if err != nil {
		t.Fatalf("pull of a %d-byte manifest: %v", len(under), err)
	}
	if got.ID != img.ID {
		t.Errorf("pulled %s, want %s", got.ID, img.ID)
	}
}
