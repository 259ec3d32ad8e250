package engine

import (
	"io"
	"strings"
	"time"

	"github.com/distribution/reference"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/wharfhq/wharf/internal/image"
)

// ImageDeleteItem is one line of rmi's answer.
type ImageDeleteItem struct {
	Untagged string `json:",omitempty"`
	Deleted  string `json:",omitempty"`
}

func shortImageID(id digest.Digest) string { return id.Encoded()[:12] }

// imageUsers returns the containers created from the image, running ones first.
func (e *Engine) imageUsers(id digest.Digest) (running, stopped []*Container) {
	for _, c := range e.Containers() {
		if c.ImageID != id.String() {
			continue
		}
		c.mu.Lock()
		r := c.Running() || c.State.Status == StateRestarting
		c.mu.Unlock()
		if r {
			running = append(running, c)
		} else {
			stopped = append(stopped, c)
		}
	}
	return
}

// isIDRef reports whether ref names an image by (a prefix of) its ID rather than by a reference.
func isIDRef(ref string, img *image.Image) bool {
	r := strings.TrimPrefix(ref, "sha256:")
	return len(r) > 0 && strings.HasPrefix(img.ID.Encoded(), r) && !strings.Contains(ref, ":") || strings.HasPrefix(ref, "sha256:")
}

// ImageRemove untags and deletes images with Docker's rules and conflict messages.
func (e *Engine) ImageRemove(ref string, force bool) ([]ImageDeleteItem, error) {
	img, err := e.Images.Resolve(ref)
	if err != nil {
		if image.IsNotFound(err) {
			return nil, NotFound("No such image: %s", ref)
		}
		return nil, err
	}
	running, stopped := e.imageUsers(img.ID)
	var out []ImageDeleteItem
	byID := isIDRef(ref, img)
	if !byID {
		// The reference goes, and with the last tag of a repository its digest references go too (as dockerd).
		repo := repoName(ref)
		tagged := familiarRef(ref)
		if named, err := reference.ParseNormalizedNamed(ref); err == nil {
			tagged = reference.FamiliarString(reference.TagNameOnly(named))
		}
		var sameRepoTags int
		var remaining []string
		for _, t := range img.RepoTags {
			if t == tagged {
				continue
			}
			if repoName(t) == repo {
				sameRepoTags++
			}
			remaining = append(remaining, t)
		}
		var repoDigests []string
		for _, d := range img.RepoDigests {
			if repoName(d) == repo && sameRepoTags == 0 {
				repoDigests = append(repoDigests, d)
				continue
			}
			remaining = append(remaining, d)
		}
		if len(remaining) > 0 {
			for _, r := range append([]string{ref}, repoDigests...) {
				if _, err := e.Images.Untag(r); err != nil {
					return nil, err
				}
				name := r
				if r == ref {
					name = tagged
				}
				out = append(out, ImageDeleteItem{Untagged: name})
				e.ev.publish(Event{Type: "image", Action: "untag", ID: img.ID.String(), Attrs: map[string]string{"name": name}})
			}
			return out, nil
		}
	}
	if byID && len(img.RepoTags) > 1 && !force {
		return nil, Conflict("conflict: unable to delete %s (must be forced) - image is referenced in multiple repositories", shortImageID(img.ID))
	}
	if len(running) > 0 {
		if byID {
			return nil, Conflict("conflict: unable to delete %s (cannot be forced) - image is being used by running container %s", shortImageID(img.ID), running[0].ShortID())
		}
		if !force {
			return nil, Conflict("conflict: unable to remove repository reference %q (must force) - container %s is using its referenced image %s", ref, running[0].ShortID(), shortImageID(img.ID))
		}
	}
	if len(stopped) > 0 && !force {
		if byID {
			return nil, Conflict("conflict: unable to delete %s (must be forced) - image is being used by stopped container %s", shortImageID(img.ID), stopped[0].ShortID())
		}
		return nil, Conflict("conflict: unable to remove repository reference %q (must force) - container %s is using its referenced image %s", ref, stopped[0].ShortID(), shortImageID(img.ID))
	}
	for _, t := range append(append([]string{}, img.RepoTags...), img.RepoDigests...) {
		if _, err := e.Images.Untag(t); err == nil {
			out = append(out, ImageDeleteItem{Untagged: t})
			e.ev.publish(Event{Type: "image", Action: "untag", ID: img.ID.String(), Attrs: map[string]string{"name": t}})
		}
	}
	if len(running)+len(stopped) > 0 {
		return out, nil // kept for its containers, now untagged
	}
	if err := e.Images.Delete(img.ID); err != nil {
		return out, err
	}
	out = append(out, ImageDeleteItem{Deleted: img.ID.String()})
	e.ev.publish(Event{Type: "image", Action: "delete", ID: img.ID.String()})
	return out, nil
}

// ImagePrune deletes dangling images (all unused ones with all=true).
func (e *Engine) ImagePrune(all bool) ([]ImageDeleteItem, uint64, error) {
	imgs, err := e.Images.List()
	if err != nil {
		return nil, 0, err
	}
	var out []ImageDeleteItem
	var space uint64
	for _, img := range imgs {
		if len(img.RepoTags) > 0 && !all {
			continue
		}
		r, s := e.imageUsers(img.ID)
		if len(r)+len(s) > 0 {
			continue
		}
		items, err := e.ImageRemove(img.ID.String(), true)
		if err == nil {
			out = append(out, items...)
			space += uint64(img.Size)
		}
	}
	return out, space, nil
}

// ImportOptions are docker import's options: a rootfs tar becomes a one-layer image.
type ImportOptions struct {
	Ref     string
	Changes []string // Dockerfile instructions: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, VOLUME, WORKDIR, STOPSIGNAL
	Message string
}

// Import creates an image from a rootfs tar.
func (e *Engine) Import(r io.Reader, opts ImportOptions) (*image.Image, error) {
	cfg := ocispec.Image{}
	cfg.OS, cfg.Architecture = "linux", goarch()
	now := time.Now().UTC()
	cfg.Created = &now
	for _, ch := range opts.Changes {
		if err := applyChange(&cfg.Config, ch); err != nil {
			return nil, err
		}
	}
	comment := opts.Message
	if comment == "" {
		comment = "Imported from -"
	}
	cfg.History = []ocispec.History{{Created: &now, Comment: comment, CreatedBy: ""}}
	img, err := e.Images.Create(cfg, []io.Reader{r}, opts.Ref)
	if err != nil {
		return nil, err
	}
	e.ev.publish(Event{Type: "image", Action: "import", ID: img.ID.String()})
	return img, nil
}

// ImageTag adds a reference to an image.
func (e *Engine) ImageTag(ref, newRef string) error {
	if _, err := e.Images.Resolve(ref); err != nil {
		if image.IsNotFound(err) {
			return NotFound("No such image: %s", ref)
		}
		return err
	}
	if err := e.Images.Tag(ref, newRef); err != nil {
		return Invalid("%v", err)
	}
	e.ev.publish(Event{Type: "image", Action: "tag", ID: newRef})
	return nil
}

// ImageInUse says whether containers use the image (for image ls's Containers column).
func (e *Engine) ImageInUse(id digest.Digest) int {
	r, s := e.imageUsers(id)
	return len(r) + len(s)
}

// repoName is the familiar repository of a reference ("busybox" for "busybox:1" and "busybox@sha256:…").
func repoName(ref string) string {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return ref
	}
	return reference.FamiliarName(named)
}
