// Package build builds images from Dockerfiles the way Docker's classic builder (the legacy
// POST /build API) does: every step runs against the current image; metadata instructions make a
// new config with an empty_layer history entry, RUN runs a container of the current image and
// commits its writable layer, COPY/ADD write into a container's rootfs and commit it. Steps are
// cached by (parent image, instruction, build args, content of copied files) in a bbolt file
// under the data root.
package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/wharfhq/wharf/internal/engine"
	"github.com/wharfhq/wharf/internal/registry"
)

// Options are one build's parameters (the POST /build query).
type Options struct {
	Dockerfile  string
	Tags        []string
	BuildArgs   map[string]*string
	Labels      map[string]string
	Target      string
	NoCache     bool
	Quiet       bool
	Remove      bool // remove intermediate containers after a successful step (default true)
	ForceRemove bool // remove them even when the step fails
	NetworkMode string
	Pull        bool // pull every FROM image, even one present locally (--pull)
}

// Builder builds images with an engine.
type Builder struct {
	e     *engine.Engine
	log   *slog.Logger
	cache *cache
	// Registry is the client FROM pulls images with (missing ones, or all with --pull); nil: an
	// anonymous client with default settings.
	Registry *registry.Client
}

// New opens the builder's cache under the engine's data root.
func New(e *engine.Engine, log *slog.Logger) (*Builder, error) {
	if log == nil {
		log = slog.Default()
	}
	c, err := openCache(e.DataRoot())
	if err != nil {
		return nil, fmt.Errorf("open build cache: %w", err)
	}
	cleanTmp(filepath.Join(e.DataRoot(), "builder", "tmp"))
	return &Builder{e: e, log: log, cache: c}, nil
}

// Close closes the cache.
func (b *Builder) Close() error { return b.cache.close() }

// PruneCache empties the layer cache (the images stay); returns the number of entries dropped.
func (b *Builder) PruneCache() (int, error) { return b.cache.prune() }

// Build reads the context tar from r, builds, tags, and writes Docker's JSON stream to out. A
// failure is reported in the stream (and returned). Cancelling ctx stops the build and removes
// its containers.
func (b *Builder) Build(ctx context.Context, r io.Reader, o Options, out io.Writer) (string, error) {
	s := &stream{w: out, quiet: o.Quiet}
	id, err := b.build(ctx, r, o, s)
	if err != nil {
		var be *Error
		code := 1
		if errors.As(err, &be) && be.Code != 0 {
			code = be.Code
		}
		if ctx.Err() == nil {
			s.fail(err.Error(), code)
		}
		return "", err
	}
	return id, nil
}

func (b *Builder) build(ctx context.Context, r io.Reader, o Options, s *stream) (string, error) {
	for _, t := range o.Tags {
		if _, err := normalizeTag(t); err != nil {
			return "", errorf("invalid reference format: %s", t)
		}
	}
	tmpRoot := filepath.Join(b.e.DataRoot(), "builder", "tmp")
	if err := os.MkdirAll(tmpRoot, 0o700); err != nil {
		return "", err
	}
	ctxDir, ctxIndex, release, err := prepareContext(r, tmpRoot)
	if err != nil {
		return "", err
	}
	defer release()
	if ctx.Err() != nil {
		return "", ctx.Err()
	}
	data, dfName, err := readDockerfile(ctxDir, o.Dockerfile)
	if err != nil {
		return "", err
	}
	df, err := ParseDockerfile(data)
	if err != nil {
		return "", err
	}
	if ign, err := readContextFile(ctxDir, ".dockerignore"); err == nil {
		pats, err := ParseIgnore(ign)
		if err != nil {
			return "", errorf("error reading .dockerignore: %v", err)
		}
		pm, err := ignoreMatcher(pats, dfName)
		if err != nil {
			return "", err
		}
		if err := applyIgnore(ctxDir, pm, dfName); err != nil {
			return "", err
		}
	}
	// Like Docker, the Dockerfile and .dockerignore stay in the context (COPY . copies them).
	bs := &buildState{b: b, o: o, s: s, ctx: ctx, ctxDir: ctxDir, ctxIndex: ctxIndex, tmpRoot: tmpRoot, df: df,
		args: newArgScope(o.BuildArgs)}
	defer bs.cleanup()
	img, err := bs.run()
	if err != nil {
		return "", err
	}
	if unused := bs.args.unused(); len(unused) > 0 {
		s.print(fmt.Sprintf("[Warning] One or more build-args %v were not consumed\n", unused))
	}
	s.aux(map[string]string{"ID": img.String()})
	if o.Quiet {
		s.write(jsonMessage{Stream: img.String() + "\n"})
	} else {
		s.print(fmt.Sprintf("Successfully built %s\n", img.Encoded()[:12]))
	}
	for _, t := range o.Tags {
		n, _ := normalizeTag(t)
		if err := b.e.ImageTag(img.String(), n); err != nil {
			return "", err
		}
		s.print(fmt.Sprintf("Successfully tagged %s\n", familiar(n)))
	}
	return img.String(), nil
}

// removeContainer removes a build container and its anonymous volumes.
func (b *Builder) removeContainer(id string) {
	if err := b.e.Remove(id, engine.RemoveOptions{Force: true, Volumes: true}); err != nil {
		b.log.Warn("remove build container", "id", id, "err", err)
	}
}

func familiar(ref string) string {
	ref = strings.TrimPrefix(ref, "docker.io/")
	ref = strings.TrimPrefix(ref, "library/")
	return ref
}
