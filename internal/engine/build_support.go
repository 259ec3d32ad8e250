package engine

import (
	"archive/tar"
	"errors"
	"io"
	"os"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/wharfhq/wharf/internal/image"
)

// Hooks for the image builder (package build). The builder runs every Dockerfile step in an
// ordinary container of the current image and turns the container's writable layer into the
// next image; these are the few things it needs beyond the public container operations.

// WithContainerRootfs runs fn with the (stopped) container's root filesystem mounted, unmounting
// it afterwards. fn must resolve paths inside rootfs safely (snapshot.ExtractTar with Root,
// snapshot.ResolvePath): the tree comes from an image and may hold hostile symlinks.
func (e *Engine) WithContainerRootfs(ref string, fn func(rootfs string) error) error {
	c, err := e.Container(ref)
	if err != nil {
		return err
	}
	return e.withRootfs(c, fn)
}

// BuildCommitOptions make an image from a build container.
type BuildCommitOptions struct {
	// Config is the complete new image config: Config, History (the new entry included), Author….
	// RootFS is filled in by the image store.
	Config ocispec.Image
	// Skip, when set, leaves out non-directory diff entries it returns true for (mount targets
	// the runtime created, such as an empty /etc/hosts). A diff whose every entry (directories
	// included) Skip drops counts as empty.
	Skip func(hdr *tar.Header) bool
}

// BuildCommit stores the container's writable layer as a new layer on top of its image, with the
// given config. When the layer holds nothing (after Skip), no layer is added and the last history
// entry is marked empty_layer, as Docker does for a step that changed no file.
func (e *Engine) BuildCommit(ref string, o BuildCommitOptions) (*image.Image, error) {
	c, err := e.Container(ref)
	if err != nil {
		return nil, err
	}
	parent, err := e.Images.Resolve(c.Snapshot().ImageID)
	if err != nil {
		return nil, NotFound("No such image: %s", c.Snapshot().ImageID)
	}
	cfg := o.Config
	empty, err := e.diffEmpty(c.ID, o.Skip)
	if err != nil {
		return nil, err
	}
	if empty {
		if n := len(cfg.History); n > 0 {
			cfg.History = append([]ocispec.History(nil), cfg.History...)
			cfg.History[n-1].EmptyLayer = true
		}
		return e.Images.CreateImage(image.CreateOptions{Config: cfg, Parent: parent.ID})
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(e.filteredDiff(c.ID, o.Skip, pw)) }()
	img, err := e.Images.CreateImage(image.CreateOptions{Config: cfg, Layers: []io.Reader{pr}, Parent: parent.ID})
	pr.CloseWithError(io.ErrClosedPipe)
	if err != nil {
		return nil, err
	}
	e.containerEvent(c, "commit", nil)
	return img, nil
}

var errNotEmpty = errors.New("not empty")

// diffEmpty reports whether the container's diff has no entry that Skip keeps.
func (e *Engine) diffEmpty(id string, skip func(*tar.Header) bool) (bool, error) {
	ents, err := os.ReadDir(e.snaps.UpperDir(id))
	if err != nil {
		return false, err
	}
	if len(ents) == 0 {
		return true, nil
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(e.snaps.Diff(id, pw)) }()
	defer pr.CloseWithError(io.ErrClosedPipe)
	tr := tar.NewReader(pr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return true, nil
		}
		if err != nil {
			return false, err
		}
		if skip == nil || !skip(h) {
			return false, nil
		}
	}
}

// filteredDiff writes the container's diff without the entries skip drops.
func (e *Engine) filteredDiff(id string, skip func(*tar.Header) bool, w io.Writer) error {
	if skip == nil {
		return e.snaps.Diff(id, w)
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(e.snaps.Diff(id, pw)) }()
	defer pr.CloseWithError(io.ErrClosedPipe)
	tr := tar.NewReader(pr)
	tw := tar.NewWriter(w)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return tw.Close()
		}
		if err != nil {
			return err
		}
		if h.Typeflag != tar.TypeDir && skip(h) {
			continue // directories stay: they are the parents of what remains
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
	}
}
