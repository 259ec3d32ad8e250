// Package image owns the local image store: content-addressed blobs (layers,
// configs, manifests) under <root>/blobs/sha256, and metadata (images, tags,
// digests) in a bbolt database. It knows references as Docker normalises them
// and reads and writes docker-archive and OCI layout tarballs. It never
// unpacks layers: that is package snapshot's job.
package image

import (
	"io"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Layer is one filesystem layer of an image.
type Layer struct {
	DiffID    digest.Digest // sha256 of the uncompressed tar
	Blob      digest.Digest // sha256 of the blob as stored (may equal DiffID when stored uncompressed)
	MediaType string
	Size      int64 // stored blob size
}

// Image is the record of one image in the store.
type Image struct {
	ID          digest.Digest // digest of the config blob ("sha256:…"), as Docker shows it
	RepoTags    []string      // familiar form: "busybox:latest", "localhost:5000/x:1"
	RepoDigests []string
	Created     time.Time
	Size        int64 // sum of uncompressed layer sizes
	Config      ocispec.Image
	Docker      DockerConfig // the config's Docker-only fields (Healthcheck, OnBuild, Shell)
	RawConfig   []byte       // the config blob as stored (history, docker-only fields)
	Layers      []Layer
	Parent      digest.Digest // for images made by build/commit (Docker's "Parent")
}

// ChainIDs returns the OCI chain IDs of the image's layers, bottom first.
// Package snapshot names unpacked layers by chain ID.
func (i *Image) ChainIDs() []digest.Digest { return ChainIDs(diffIDs(i.Layers)) }

func diffIDs(ls []Layer) []digest.Digest {
	out := make([]digest.Digest, len(ls))
	for n, l := range ls {
		out[n] = l.DiffID
	}
	return out
}

// ChainIDs computes chain IDs from diff IDs (OCI image-spec "ChainID").
func ChainIDs(diffIDs []digest.Digest) []digest.Digest {
	out := make([]digest.Digest, len(diffIDs))
	for n, d := range diffIDs {
		if n == 0 {
			out[n] = d
			continue
		}
		out[n] = digest.FromString(out[n-1].String() + " " + d.String())
	}
	return out
}

// LoadResult says what a Load added.
type LoadResult struct {
	Refs []string        // "Loaded image: busybox:latest"
	IDs  []digest.Digest // images loaded without a tag: "Loaded image ID: sha256:…"
}

// API is what the engine needs from the store. *Store implements it.
type API interface {
	// Resolve finds an image by reference ("busybox", "busybox:1", "docker.io/library/busybox:latest",
	// "name@sha256:…"), full or short ID (at least 1 hex char unique prefix, with or without "sha256:").
	// Not found → an error for which IsNotFound is true.
	Resolve(refOrID string) (*Image, error)
	List() ([]*Image, error)
	// Load reads a docker-archive ("docker save") or OCI layout tar.
	Load(r io.Reader) (*LoadResult, error)
	// Save writes a docker-archive readable by the real `docker load`, with OCI layout files too.
	Save(w io.Writer, refsOrIDs []string) error
	// Create stores a new image from a config and layer tars (uncompressed) that the caller supplies
	// (import, build, commit). layers[i] is read once; ref may be empty.
	Create(cfg ocispec.Image, layers []io.Reader, ref string) (*Image, error)
	Tag(refOrID, newRef string) error
	// Untag removes one reference; returns the image it pointed to.
	Untag(ref string) (*Image, error)
	// Delete removes an image record (all its tags) and any blob no other image uses.
	Delete(id digest.Digest) error
	// OpenBlob opens a stored blob (layer tars for snapshot.Unpack).
	OpenBlob(d digest.Digest) (io.ReadCloser, error)

	// CreateImage is Create with a parent (commit, build): the parent's layers come first, the new
	// layers are stacked on top, and Image.Parent is set.
	CreateImage(o CreateOptions) (*Image, error)
	// PutBlob stores a blob (e.g. a layer or config fetched by pull), verified against expected
	// when that is set. Blobs that no image uses are garbage-collected when the store is opened.
	PutBlob(r io.Reader, expected digest.Digest) (digest.Digest, int64, error)
	// HasBlob reports whether a blob is stored (pull can skip it).
	HasBlob(d digest.Digest) bool
	// PutImage records an image (pull) from its config and already stored layer blobs, checking
	// every layer's DiffID; refs (tags and name@digest) move to it.
	PutImage(rawConfig []byte, layers []Layer, refs []string) (*Image, error)
	// AddRepoDigest adds a name@digest reference (RepoDigests) to an image, e.g. after push.
	AddRepoDigest(id digest.Digest, canonical string) error
	// Manifest returns the OCI manifest Save writes for img (push can send it) and its descriptor.
	Manifest(img *Image) ([]byte, ocispec.Descriptor, error)
}
