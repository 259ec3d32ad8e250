package engine

import (
	"io"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/wharfhq/wharf/internal/image"
)

// CommitOptions are docker commit's options.
type CommitOptions struct {
	Ref     string
	Comment string
	Author  string
	Changes []string          // Dockerfile instructions applied to the new config
	Config  *container.Config // when set, replaces the container's config in the new image (the API's body)
	Pause   bool
	// CreatedBy overrides the history entry's created_by (the builder records its instruction there).
	CreatedBy string
}

// Commit makes an image from a container's changes: its writable layer on top of its image.
func (e *Engine) Commit(ref string, o CommitOptions) (*image.Image, error) {
	c, err := e.Container(ref)
	if err != nil {
		return nil, err
	}
	snap := c.Snapshot()
	parent, err := e.Images.Resolve(snap.ImageID)
	if err != nil {
		return nil, NotFound("No such image: %s", snap.ImageID)
	}
	if o.Pause {
		c.mu.Lock()
		task := c.task
		running := c.State.Status == StateRunning
		c.mu.Unlock()
		if running && task != nil && task.Pause() == nil {
			defer task.Resume()
		}
	}
	cfg := parent.Config
	cc := snap.Config
	if o.Config != nil {
		cc = o.Config
	}
	cfg.Config = imageConfigFrom(cc)
	for _, ch := range o.Changes {
		if err := applyChange(&cfg.Config, ch); err != nil {
			return nil, err
		}
	}
	now := time.Now().UTC()
	cfg.Created = &now
	if o.Author != "" {
		cfg.Author = o.Author
	}
	createdBy := o.CreatedBy
	if createdBy == "" {
		createdBy = strings.Join(append([]string{snap.Path}, snap.Args...), " ")
	}
	cfg.History = append(append([]ocispec.History{}, parent.Config.History...), ocispec.History{Created: &now, CreatedBy: createdBy, Comment: o.Comment, Author: o.Author})
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(e.snaps.Diff(c.ID, pw)) }()
	img, err := e.Images.CreateImage(image.CreateOptions{Config: image.Config{Image: cfg, Docker: dockerConfigFrom(cc)}, Layers: []io.Reader{pr}, Parent: parent.ID, Ref: o.Ref})
	pr.CloseWithError(io.ErrClosedPipe)
	if err != nil {
		return nil, err
	}
	e.containerEvent(c, "commit", nil)
	return img, nil
}

// imageConfigFrom turns a container's config into an image config.
func imageConfigFrom(cc *container.Config) ocispec.ImageConfig {
	ic := ocispec.ImageConfig{User: cc.User, Env: cc.Env, Entrypoint: cc.Entrypoint, Cmd: cc.Cmd, WorkingDir: cc.WorkingDir,
		Labels: cc.Labels, StopSignal: cc.StopSignal}
	if len(cc.ExposedPorts) > 0 {
		ic.ExposedPorts = map[string]struct{}{}
		for p := range cc.ExposedPorts {
			ic.ExposedPorts[p.String()] = struct{}{}
		}
	}
	if len(cc.Volumes) > 0 {
		ic.Volumes = cc.Volumes
	}
	return ic
}
