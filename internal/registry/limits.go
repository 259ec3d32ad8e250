package registry

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// MaxManifestSize is the largest manifest (or index) a pull accepts: 4 MiB, dockerd's and
// CNCF distribution's limit (go-containerregistry alone would read up to 100 MiB).
const MaxManifestSize = 4 << 20

// manifestTooLarge is returned by the transport for a manifest response over MaxManifestSize.
type manifestTooLarge struct {
	url  string
	size int64 // -1: unknown (no Content-Length; found while reading)
}

func (e *manifestTooLarge) Error() string {
	if e.size >= 0 {
		return fmt.Sprintf("manifest too large: %s is %d bytes, over the %d byte limit", e.url, e.size, MaxManifestSize)
	}
	return fmt.Sprintf("manifest too large: %s is over the %d byte limit", e.url, MaxManifestSize)
}

// limitManifest enforces MaxManifestSize on a manifest GET's response, before and while its body is read.
func limitManifest(r *http.Request, resp *http.Response) (*http.Response, error) {
	if r.Method != http.MethodGet || !strings.Contains(r.URL.Path, "/manifests/") || resp.StatusCode != http.StatusOK {
		return resp, nil
	}
	if resp.ContentLength > MaxManifestSize {
		resp.Body.Close()
		return nil, &manifestTooLarge{url: r.URL.Redacted(), size: resp.ContentLength}
	}
	resp.Body = &limitedBody{rc: resp.Body, left: MaxManifestSize, url: r.URL.Redacted()}
	return resp, nil
}

type limitedBody struct {
	rc   io.ReadCloser
	left int64
	url  string
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left < 0 {
		return 0, &manifestTooLarge{url: b.url, size: -1}
	}
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		return 0, &manifestTooLarge{url: b.url, size: -1}
	}
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }

// tooLargeError words a manifestTooLarge found anywhere in err's chain; nil when there is none.
func tooLargeError(err error) error {
	var e *manifestTooLarge
	if errors.As(err, &e) {
		return &Error{Kind: KindInvalid, Err: err, Msg: e.Error()}
	}
	return nil
}
