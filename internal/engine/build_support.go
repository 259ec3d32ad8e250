package engine

import (
	"archive/tar"
	"errors"
	"io"
	"os"

	"github.com/moby/moby/api/types/container"
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
	// Config is the complete new image config: Config, History (the new entry included), Author…,
	// Docker's Healthcheck/OnBuild/Shell. RootFS is filled in by the image store.
	Config image.Config
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

// dockerConfigFrom is the image-config side of a container config's Docker-only fields (commit
// keeps them as Docker does).
func dockerConfigFrom(cc *container.Config) image.DockerConfig {
	var d image.DockerConfig
	if cc == nil {
		return d
	}
	d.OnBuild = cc.OnBuild
	d.Shell = cc.Shell
	d.Healthcheck = cc.Healthcheck // the same type (moby's container.HealthConfig is docker-image-spec's)
	return d
}

// mergeImageHealthcheck gives a new container the image's HEALTHCHECK, field by field where the
// container's own leaves a field unset (Docker's merge of a container config with its image's).
func mergeImageHealthcheck(cfg *container.Config, img *image.Image) {
	ih := img.Docker.Healthcheck
	if ih == nil {
		return
	}
	if cfg.Healthcheck == nil {
		h := *ih
		h.Test = append([]string(nil), ih.Test...)
		cfg.Healthcheck = &h
		return
	}
	h := *cfg.Healthcheck
	if len(h.Test) == 0 {
		h.Test = append([]string(nil), ih.Test...)
	}
	if h.Interval == 0 {
		h.Interval = ih.Interval
	}
	if h.Timeout == 0 {
		h.Timeout = ih.Timeout
	}
	if h.StartPeriod == 0 {
		h.StartPeriod = ih.StartPeriod
	}
	if h.StartInterval == 0 {
		h.StartInterval = ih.StartInterval
	}
	if h.Retries == 0 {
		h.Retries = ih.Retries
	}
	cfg.Healthcheck = &h
}
