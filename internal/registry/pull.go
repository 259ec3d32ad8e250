package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"

	"github.com/wharfhq/wharf/internal/image"
)

// PullOptions are the per-pull settings.
type PullOptions struct {
	Auth     *AuthConfig // nil: anonymous
	Platform string      // "os/arch[/variant]"; empty: linux/GOARCH
	Progress *Progress   // nil: no progress
}

// Pull fetches ref ("busybox", "127.0.0.1:5000/x:1", "x@sha256:…") into store and returns the image.
// Blobs already in the store are not fetched again; the others are fetched concurrently and
// verified against their digests (by go-containerregistry while reading and again by the store).
// The tag (or name@digest) and name@manifest-digest (RepoDigests) are recorded. Errors are worded
// as dockerd's.
func (c *Client) Pull(ctx context.Context, store image.API, ref string, o PullOptions) (*image.Image, error) {
	named, err := ParseReference(ref)
	if err != nil {
		return nil, err
	}
	gref, err := c.parseRef(named)
	if err != nil {
		return nil, &Error{Kind: KindInvalid, Msg: "invalid reference format", Err: err}
	}
	plat, err := platformOf(o.Platform)
	if err != nil {
		return nil, err
	}
	// One authenticated transport for the manifests (go-containerregistry) and the layer blobs (fetched
	// here, so that only the store hashes them: go-containerregistry would verify them once more).
	rt, err := c.pullTransport(ctx, gref.Context(), o.Auth)
	if err != nil {
		return nil, pullError(named, o.Auth, err)
	}
	desc, err := remote.Get(gref, remote.WithContext(ctx), remote.WithTransport(rt), remote.WithJobs(c.jobs()))
	if err != nil {
		return nil, pullError(named, o.Auth, err)
	}
	blobs := &blobFetcher{client: &http.Client{Transport: rt}, repo: gref.Context()}
	manifestDigest := desc.Digest
	var img v1.Image
	switch {
	case desc.MediaType.IsIndex():
		idx, err := desc.ImageIndex()
		if err != nil {
			return nil, wrapNetError(err)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return nil, wrapNetError(err)
		}
		var chosen *v1.Descriptor
		for i := range im.Manifests {
			m := &im.Manifests[i]
			if m.Platform != nil && m.Platform.Satisfies(plat) && m.MediaType.IsImage() {
				chosen = m
				break
			}
		}
		if chosen == nil {
			return nil, &Error{Kind: KindNotFound, Msg: fmt.Sprintf("no matching manifest for %s in the manifest list entries", plat.String())}
		}
		if img, err = idx.Image(chosen.Digest); err != nil {
			return nil, wrapNetError(err)
		}
	case desc.MediaType.IsSchema1():
		return nil, &Error{Kind: KindInvalid, Msg: fmt.Sprintf("[DEPRECATION NOTICE] Docker Image Format v1 and Docker Image manifest version 2, schema 1 support has been removed. Suggest the author of %s to upgrade the image to the OCI Format or Docker Image manifest v2, schema 2.", reference.FamiliarString(named))}
	case desc.MediaType.IsImage():
		if img, err = desc.Image(); err != nil {
			return nil, wrapNetError(err)
		}
	default:
		return nil, &Error{Kind: KindInvalid, Msg: fmt.Sprintf("unsupported manifest media type %q for %s", desc.MediaType, reference.FamiliarString(named))}
	}

	tagOrDigest := ""
	if t, ok := named.(reference.Tagged); ok {
		tagOrDigest = t.Tag()
	} else if d, ok := named.(reference.Digested); ok {
		tagOrDigest = d.Digest().String()
	}
	p := o.Progress
	p.Item(tagOrDigest, "Pulling from "+reference.Path(named))

	mf, err := img.Manifest()
	if err != nil {
		return nil, wrapNetError(err)
	}
	rawCfg, err := img.RawConfigFile()
	if err != nil {
		return nil, wrapNetError(err)
	}
	if got := digest.FromBytes(rawCfg); got.String() != mf.Config.Digest.String() {
		return nil, &Error{Kind: KindInvalid, Msg: fmt.Sprintf("image config verification failed for digest %s", mf.Config.Digest)}
	}

	// Layers: the ones present are skipped, the others fetched concurrently.
	layers := make([]image.Layer, len(mf.Layers))
	var todo []v1.Descriptor
	seen := map[v1.Hash]bool{}
	for i, l := range mf.Layers {
		if !l.MediaType.IsDistributable() {
			return nil, &Error{Kind: KindInvalid, Msg: fmt.Sprintf("layer %s: foreign (non-distributable) layers are not supported", l.Digest)}
		}
		if l.MediaType == types.OCILayerZStd {
			return nil, &Error{Kind: KindInvalid, Msg: fmt.Sprintf("layer %s: zstd-compressed layers are not supported", l.Digest)}
		}
		layers[i] = image.Layer{Blob: digest.Digest(l.Digest.String()), MediaType: string(l.MediaType), Size: l.Size}
		id := shortID(l.Digest.String())
		if seen[l.Digest] {
			continue
		}
		seen[l.Digest] = true
		if store.HasBlob(digest.Digest(l.Digest.String())) {
			p.Item(id, "Already exists")
			continue
		}
		p.Item(id, "Pulling fs layer")
		todo = append(todo, l)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.jobs())
	for _, l := range todo {
		l := l
		g.Go(func() error { return fetchLayer(gctx, store, blobs, l, p) })
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}

	canonical, err := reference.WithDigest(reference.TrimNamed(named), digest.Digest(manifestDigest.String()))
	if err != nil {
		return nil, &Error{Kind: KindInvalid, Msg: err.Error()}
	}
	refs := []string{canonical.String()}
	if _, ok := named.(reference.Tagged); ok {
		refs = append([]string{named.String()}, refs...)
	}
	cfgID := digest.FromBytes(rawCfg)
	upToDate := false
	if old, err := store.Resolve(named.String()); err == nil && old.ID == cfgID {
		upToDate = true
	}
	var out *image.Image
	if old, err := store.Resolve(cfgID.String()); err == nil && upToDate {
		if err := store.AddRepoDigest(old.ID, canonical.String()); err != nil {
			return nil, err
		}
		out, err = store.Resolve(cfgID.String())
		if err != nil {
			return nil, err
		}
	} else {
		if out, err = store.PutImage(rawCfg, layers, refs); err != nil {
			return nil, &Error{Kind: KindInvalid, Msg: err.Error(), Err: err}
		}
	}
	for _, l := range todo {
		p.Item(shortID(l.Digest.String()), "Pull complete")
	}
	p.Status("Digest: %s", manifestDigest)
	if upToDate {
		p.Status("Status: Image is up to date for %s", reference.FamiliarString(named))
	} else {
		p.Status("Status: Downloaded newer image for %s", reference.FamiliarString(named))
	}
	return out, nil
}

// fetchLayer downloads one layer blob into the store. The store spools it to a temp file, hashes
// it and only installs it once the digest matched, so a failed or interrupted fetch leaves nothing
// visible.
func fetchLayer(ctx context.Context, store image.API, blobs *blobFetcher, l v1.Descriptor, p *Progress) error {
	id := shortID(l.Digest.String())
	rc, err := blobs.open(ctx, l.Digest)
	if err != nil {
		return wrapNetError(err)
	}
	defer rc.Close()
	// A body longer than the descriptor says cannot match its digest: stop reading it one byte after.
	body := io.LimitReader(rc, l.Size+1)
	cr := &counter{r: &ctxReader{ctx: ctx, r: body}, p: p, id: id, status: "Downloading", total: l.Size}
	_, n, err := store.PutBlob(cr, digest.Digest(l.Digest.String()))
	if err == nil && n != l.Size {
		err = &Error{Kind: KindInvalid, Msg: fmt.Sprintf("filesystem layer verification failed for digest %s", l.Digest)}
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var ne *Error
		if errors.As(err, &ne) {
			return err
		}
		if image.IsInvalidArgument(err) || isVerifyError(err) {
			return &Error{Kind: KindInvalid, Err: err, Msg: fmt.Sprintf("filesystem layer verification failed for digest %s", l.Digest)}
		}
		return wrapNetError(err)
	}
	p.Item(id, "Verifying Checksum")
	p.Item(id, "Download complete")
	return nil
}

// blobFetcher GETs blobs of one repository through an authenticated transport.
type blobFetcher struct {
	client *http.Client
	repo   name.Repository
}

func (b *blobFetcher) open(ctx context.Context, h v1.Hash) (io.ReadCloser, error) {
	u := url.URL{Scheme: b.repo.Scheme(), Host: b.repo.RegistryStr(), Path: fmt.Sprintf("/v2/%s/blobs/%s", b.repo.RepositoryStr(), h)}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return nil, err
	}
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		resp.Body.Close()
		return nil, err
	}
	return resp.Body, nil
}

func isVerifyError(err error) bool {
	s := err.Error()
	return strings.Contains(s, "error verifying") || strings.Contains(s, "digest mismatch") || strings.Contains(s, "size mismatch")
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(b []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(b)
}
