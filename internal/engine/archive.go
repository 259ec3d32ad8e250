package engine

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/wharfhq/wharf/internal/snapshot"
)

// PathStat describes a path in a container (docker cp's X-Docker-Container-Path-Stat).
type PathStat struct {
	Name       string
	Size       int64
	Mode       os.FileMode
	Mtime      time.Time
	LinkTarget string
}

// withRootfs runs fn with the container's rootfs mounted (mounting it temporarily if stopped).
func (e *Engine) withRootfs(c *Container, fn func(rootfs string) error) error {
	img, err := e.Images.Resolve(c.ImageID)
	if err != nil {
		return err
	}
	e.awaitTeardown(c.ID) // else its unmount could come after our mount
	c.mu.Lock()
	running := c.Running()
	c.mu.Unlock()
	rootfs, err := e.snaps.Prepare(c.ID, img.ChainIDs())
	if err != nil {
		return err
	}
	if !running {
		defer func() {
			c.mu.Lock()
			if !c.Running() {
				e.snaps.Unmount(c.ID)
			}
			c.mu.Unlock()
		}()
	}
	return fn(rootfs)
}

// mountFor maps a container path to the root it lives in (the rootfs or a mount's source) and the
// path relative to that root, following the container's mounts.
func mountFor(c *Container, rootfs, p string) (root, rel string) {
	p = filepath.Clean("/" + p)
	// The files the engine writes for the container are bind-mounted over the rootfs's.
	for dst, src := range map[string]string{"/etc/hostname": c.HostnamePath, "/etc/hosts": c.HostsPath, "/etc/resolv.conf": c.ResolvPath} {
		if p == dst {
			return filepath.Dir(src), "/" + filepath.Base(src)
		}
	}
	root, rel = rootfs, p
	best := ""
	for _, m := range c.Mounts {
		d := m.Destination
		if (p == d || strings.HasPrefix(p, d+"/")) && len(d) > len(best) {
			best, root, rel = d, m.Source, "/"+strings.TrimPrefix(strings.TrimPrefix(p, d), "/")
		}
	}
	return root, rel
}

// StatPath stats a path in a container.
func (e *Engine) StatPath(ref, p string) (*PathStat, error) {
	c, err := e.Container(ref)
	if err != nil {
		return nil, err
	}
	var st *PathStat
	err = e.withRootfs(c, func(rootfs string) error {
		root, rel := mountFor(c, rootfs, p)
		hp, err := snapshot.ResolvePath(root, rel, false)
		if err != nil {
			return NotFound("Could not find the file %s in container %s", p, ref)
		}
		fi, err := os.Lstat(hp)
		if err != nil {
			return NotFound("Could not find the file %s in container %s", p, ref)
		}
		st = &PathStat{Name: fi.Name(), Size: fi.Size(), Mode: fi.Mode(), Mtime: fi.ModTime()}
		if fi.Mode()&os.ModeSymlink != 0 {
			st.LinkTarget, _ = os.Readlink(hp)
		}
		return nil
	})
	return st, err
}

// ArchivePath writes a tar of a container path to w (docker cp out).
func (e *Engine) ArchivePath(ref, p string, w io.Writer) error {
	c, err := e.Container(ref)
	if err != nil {
		return err
	}
	return e.withRootfs(c, func(rootfs string) error {
		root, rel := mountFor(c, rootfs, p)
		name := filepath.Base(filepath.Clean("/" + p))
		if name == "/" {
			name = "."
		}
		return snapshot.ArchivePathInRoot(root, rel, w, name)
	})
}

// ExtractToContainer unpacks a tar into a directory of a container (docker cp in), never writing
// outside the container's root.
func (e *Engine) ExtractToContainer(ref, p string, r io.Reader) error {
	c, err := e.Container(ref)
	if err != nil {
		return err
	}
	c.mu.Lock()
	ro := c.HostConfig.ReadonlyRootfs
	c.mu.Unlock()
	return e.withRootfs(c, func(rootfs string) error {
		root, rel := mountFor(c, rootfs, p)
		hp, err := snapshot.ResolvePath(root, rel, true)
		if err != nil {
			return NotFound("Could not find the file %s in container %s", p, ref)
		}
		fi, err := os.Stat(hp)
		if err != nil {
			return NotFound("Could not find the file %s in container %s", p, ref)
		}
		if !fi.IsDir() {
			return Invalid("extraction point is not a directory")
		}
		if ro && root == rootfs {
			return Forbidden("container rootfs is marked read-only")
		}
		return snapshot.ExtractTar(r, hp, snapshot.ExtractOptions{Root: root})
	})
}

// Forbidden builds a forbidden error.
func Forbidden(format string, a ...any) error { return errorf(KindForbidden, format, a...) }
