package registry

import (
	"context"
	"fmt"
	"io"
	"sort"
	"sync/atomic"

	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/wharfhq/wharf/internal/image"
)

// PushOptions are the per-push settings.
type PushOptions struct {
	Auth     *AuthConfig
	Progress *Progress
}

// PushResult is what push reports per tag (the stream's final aux object).
type PushResult struct {
	Tag    string
	Digest string
	Size   int
}

// Push uploads ref ("127.0.0.1:5000/x:1"; a name without tag pushes every local tag of that
// repository) from store. Blobs the registry already has are skipped; a blob the image was pulled
// from (or pushed to) another repository of the same registry is mounted from there. The manifest
// is the store's OCI manifest; name@digest is recorded as a RepoDigest.
func (c *Client) Push(ctx context.Context, store image.API, ref string, o PushOptions) ([]PushResult, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return nil, &Error{Kind: KindInvalid, Msg: "invalid reference format"}
	}
	if _, ok := named.(reference.Digested); ok {
		return nil, &Error{Kind: KindInvalid, Msg: "cannot push a digest reference"}
	}
	var tags []reference.NamedTagged
	if t, ok := named.(reference.NamedTagged); ok {
		if _, err := store.Resolve(t.String()); err != nil {
			return nil, &Error{Kind: KindNotFound, Msg: "An image does not exist locally with the tag: " + reference.FamiliarString(t)}
		}
		tags = append(tags, t)
	} else {
		imgs, err := store.List()
		if err != nil {
			return nil, err
		}
		for _, img := range imgs {
			for _, rt := range img.RepoTags {
				n, err := reference.ParseNormalizedNamed(rt)
				if err != nil || n.Name() != named.Name() {
					continue
				}
				if t, ok := n.(reference.NamedTagged); ok {
					tags = append(tags, t)
				}
			}
		}
		sort.Slice(tags, func(i, j int) bool { return tags[i].Tag() < tags[j].Tag() })
		if len(tags) == 0 {
			return nil, &Error{Kind: KindNotFound, Msg: "An image does not exist locally with the tag: " + reference.FamiliarName(named)}
		}
	}
	repoRef, err := c.parseRef(reference.TagNameOnly(named))
	if err != nil {
		return nil, &Error{Kind: KindInvalid, Msg: "invalid reference format", Err: err}
	}
	repo := repoRef.Context()
	pusher, err := remote.NewPusher(c.remoteOptions(ctx, o.Auth)...)
	if err != nil {
		return nil, wrapNetError(err)
	}
	o.Progress.Status("The push refers to repository [%s]", named.Name())
	var out []PushResult
	for _, t := range tags {
		r, err := c.pushTag(ctx, store, pusher, repo, t, o)
		if err != nil {
			return out, err
		}
		out = append(out, *r)
	}
	return out, nil
}

func (c *Client) pushTag(ctx context.Context, store image.API, pusher *remote.Pusher, repo name.Repository, t reference.NamedTagged, o PushOptions) (*PushResult, error) {
	p := o.Progress
	img, err := store.Resolve(t.String())
	if err != nil {
		return nil, &Error{Kind: KindNotFound, Msg: "An image does not exist locally with the tag: " + reference.FamiliarString(t)}
	}
	rawManifest, desc, err := store.Manifest(img)
	if err != nil {
		return nil, err
	}
	mount := c.mountSource(img, t)
	// Layers top first, as docker shows them.
	type job struct {
		l  *storeLayer
		id string
	}
	var jobs []job
	seen := map[digest.Digest]bool{}
	for i := len(img.Layers) - 1; i >= 0; i-- {
		l := img.Layers[i]
		if seen[l.Blob] {
			continue
		}
		seen[l.Blob] = true
		sl := &storeLayer{store: store, blob: l.Blob, diffID: l.DiffID, size: l.Size, mediaType: types.MediaType(ociLayerType(l.MediaType))}
		jobs = append(jobs, job{l: sl, id: shortID(l.DiffID.String())})
		p.Item(shortID(l.DiffID.String()), "Preparing")
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.jobs())
	for _, j := range jobs {
		j := j
		j.l.progress = p
		j.l.id = j.id
		g.Go(func() error {
			var layer v1.Layer = j.l
			if mount != nil {
				layer = &remote.MountableLayer{Layer: j.l, Reference: mount}
			}
			if err := pusher.Upload(gctx, repo, layer); err != nil {
				return pushError(o.Auth, err)
			}
			switch {
			case j.l.opened.Load():
				p.Item(j.id, "Pushed")
			case mount != nil && j.l.digestAfterSize.Load():
				p.Item(j.id, "Mounted from "+mount.Context().RepositoryStr())
			default:
				p.Item(j.id, "Layer already exists")
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	cfg := &storeLayer{store: store, blob: img.ID, size: int64(len(img.RawConfig)), mediaType: types.OCIConfigJSON, raw: img.RawConfig}
	if err := pusher.Upload(ctx, repo, cfg); err != nil {
		return nil, pushError(o.Auth, err)
	}
	tagRef := repo.Tag(t.Tag())
	if err := pusher.Put(ctx, tagRef, &rawTaggable{raw: rawManifest, mediaType: types.MediaType(desc.MediaType)}); err != nil {
		return nil, pushError(o.Auth, err)
	}
	canonical, err := reference.WithDigest(reference.TrimNamed(t), desc.Digest)
	if err == nil {
		store.AddRepoDigest(img.ID, canonical.String())
	}
	res := &PushResult{Tag: t.Tag(), Digest: desc.Digest.String(), Size: len(rawManifest)}
	p.Status("%s: digest: %s size: %d", t.Tag(), desc.Digest, len(rawManifest))
	p.Aux(res)
	return res, nil
}

func pushError(auth *AuthConfig, err error) error {
	return wrapPushErr(auth, err)
}

// mountSource picks a repository of the same registry the image is known to be in (from its
// RepoDigests), for cross-repository blob mounts.
func (c *Client) mountSource(img *image.Image, target reference.Named) name.Reference {
	for _, rd := range img.RepoDigests {
		n, err := reference.ParseNormalizedNamed(rd)
		if err != nil {
			continue
		}
		if reference.Domain(n) != reference.Domain(target) || n.Name() == target.Name() {
			continue
		}
		var opts []name.Option
		if c.plainHTTPAllowed(reference.Domain(n)) {
			opts = append(opts, name.Insecure)
		}
		r, err := name.ParseReference(n.String(), opts...)
		if err == nil {
			return r
		}
	}
	return nil
}

// ociLayerType maps Docker layer media types to OCI ones (the store's manifest is OCI).
func ociLayerType(mt string) string {
	switch mt {
	case "application/vnd.docker.image.rootfs.diff.tar.gzip":
		return ocispec.MediaTypeImageLayerGzip
	case "application/vnd.docker.image.rootfs.diff.tar", "":
		return ocispec.MediaTypeImageLayer
	}
	return mt
}

// storeLayer is a blob of the local store seen as a go-containerregistry layer. It records what
// the pusher did with it: read it (pushed), or only asked its size (already there / mounted).
type storeLayer struct {
	store     image.API
	blob      digest.Digest
	diffID    digest.Digest
	size      int64
	mediaType types.MediaType
	raw       []byte
	progress  *Progress
	id        string

	opened          atomic.Bool
	sizeAsked       atomic.Bool
	digestAfterSize atomic.Bool
}

func (l *storeLayer) Digest() (v1.Hash, error) {
	if l.sizeAsked.Load() {
		l.digestAfterSize.Store(true)
	}
	return v1.NewHash(l.blob.String())
}

func (l *storeLayer) DiffID() (v1.Hash, error) {
	if l.diffID == "" {
		return v1.NewHash(l.blob.String())
	}
	return v1.NewHash(l.diffID.String())
}

func (l *storeLayer) Compressed() (io.ReadCloser, error) {
	l.opened.Store(true)
	if l.raw != nil {
		return io.NopCloser(bytesReader(l.raw)), nil
	}
	rc, err := l.store.OpenBlob(l.blob)
	if err != nil {
		return nil, err
	}
	if l.progress == nil {
		return rc, nil
	}
	return struct {
		io.Reader
		io.Closer
	}{&counter{r: rc, p: l.progress, id: l.id, status: "Pushing", total: l.size}, rc}, nil
}

func (l *storeLayer) Uncompressed() (io.ReadCloser, error) {
	return nil, fmt.Errorf("uncompressed layer %s is not available", l.diffID)
}

func (l *storeLayer) Size() (int64, error) {
	l.sizeAsked.Store(true)
	return l.size, nil
}

func (l *storeLayer) MediaType() (types.MediaType, error) { return l.mediaType, nil }

// rawTaggable is a manifest as bytes, for remote.Put.
type rawTaggable struct {
	raw       []byte
	mediaType types.MediaType
}

func (r *rawTaggable) RawManifest() ([]byte, error)        { return r.raw, nil }
func (r *rawTaggable) MediaType() (types.MediaType, error) { return r.mediaType, nil }
