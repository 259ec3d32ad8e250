package engine

import (
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// Volume is a named local volume.
type Volume struct {
	Name       string
	Driver     string
	Mountpoint string
	CreatedAt  time.Time
	Labels     map[string]string
	Options    map[string]string
	Anonymous  bool
}

var validVolumeName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)

func (e *Engine) volumePath(name string) string {
	return filepath.Join(e.cfg.DataRoot, "volumes", name, "_data")
}

// CreateVolume creates a volume (a no-op returning the existing one if the name exists, as Docker does).
func (e *Engine) CreateVolume(name string, labels, opts map[string]string) (*Volume, error) {
	anonymous := name == ""
	if anonymous {
		name = newID()
	}
	if !validVolumeName.MatchString(name) {
		return nil, Invalid("create %s: %q includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path", name, name)
	}
	if v, err := e.Volume(name); err == nil {
		return v, nil
	}
	v := &Volume{Name: name, Driver: "local", Mountpoint: e.volumePath(name), CreatedAt: time.Now().UTC().Truncate(time.Second),
		Labels: labels, Options: opts, Anonymous: anonymous}
	if v.Labels == nil {
		v.Labels = map[string]string{}
	}
	if anonymous {
		v.Labels["com.docker.volume.anonymous"] = ""
	}
	if err := os.MkdirAll(v.Mountpoint, 0o755); err != nil {
		return nil, err
	}
	data, _ := json.Marshal(v)
	if err := e.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketVolumes).Put([]byte(name), data) }); err != nil {
		return nil, err
	}
	e.ev.publish(Event{Type: "volume", Action: "create", ID: name, Attrs: map[string]string{"driver": "local"}})
	return v, nil
}

// Volume finds a volume by name.
func (e *Engine) Volume(name string) (*Volume, error) {
	var v *Volume
	e.db.View(func(tx *bolt.Tx) error {
		data := tx.Bucket(bucketVolumes).Get([]byte(name))
		if data != nil {
			v = &Volume{}
			return json.Unmarshal(data, v)
		}
		return nil
	})
	if v == nil {
		return nil, NotFound("get %s: no such volume", name)
	}
	return v, nil
}

// Volumes lists volumes by name.
func (e *Engine) Volumes() []*Volume {
	var out []*Volume
	e.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketVolumes).ForEach(func(k, data []byte) error {
			v := &Volume{}
			if json.Unmarshal(data, v) == nil {
				out = append(out, v)
			}
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// VolumeInUse returns the IDs of containers that mount the volume.
func (e *Engine) VolumeInUse(name string) []string {
	var ids []string
	for _, c := range e.Containers() {
		for _, m := range c.Mounts {
			if m.Type == mount.TypeVolume && m.Name == name {
				ids = append(ids, c.ID)
			}
		}
	}
	return ids
}

// RemoveVolume deletes a volume unless a container uses it (force only ignores a missing volume).
func (e *Engine) RemoveVolume(name string, force bool) error {
	if _, err := e.Volume(name); err != nil {
		if force {
			return nil
		}
		return err
	}
	if users := e.VolumeInUse(name); len(users) > 0 {
		return Conflict("remove %s: volume is in use - [%s]", name, strings.Join(users, ", "))
	}
	if err := e.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketVolumes).Delete([]byte(name)) }); err != nil {
		return err
	}
	os.RemoveAll(filepath.Dir(e.volumePath(name)))
	e.ev.publish(Event{Type: "volume", Action: "destroy", ID: name, Attrs: map[string]string{"driver": "local"}})
	return nil
}

// PruneVolumes removes unused volumes (anonymous ones only unless all).
func (e *Engine) PruneVolumes(all bool) ([]string, uint64) {
	var removed []string
	var space uint64
	for _, v := range e.Volumes() {
		if !all && !v.Anonymous {
			continue
		}
		if len(e.VolumeInUse(v.Name)) > 0 {
			continue
		}
		sz := dirSize(v.Mountpoint)
		if e.RemoveVolume(v.Name, false) == nil {
			removed = append(removed, v.Name)
			space += uint64(sz)
		}
	}
	return removed, space
}

// prepareMounts resolves -v binds, --mount and the image's VOLUMEs into mount points.
func (e *Engine) prepareMounts(c *Container, img *ocispec.ImageConfig) ([]container.MountPoint, error) {
	var out []container.MountPoint
	seen := map[string]bool{}
	add := func(m container.MountPoint) error {
		if !filepath.IsAbs(m.Destination) {
			return Invalid("invalid mount config for type %q: invalid mount path: '%s' mount path must be absolute", m.Type, m.Destination)
		}
		m.Destination = filepath.Clean(m.Destination)
		if seen[m.Destination] {
			return Invalid("Duplicate mount point: %s", m.Destination)
		}
		seen[m.Destination] = true
		out = append(out, m)
		return nil
	}
	for _, b := range c.HostConfig.Binds {
		m, err := e.parseBind(b)
		if err != nil {
			return nil, err
		}
		if err := add(m); err != nil {
			return nil, err
		}
	}
	for _, mt := range c.HostConfig.Mounts {
		m := container.MountPoint{Type: mt.Type, Destination: mt.Target, RW: !mt.ReadOnly}
		switch mt.Type {
		case mount.TypeBind:
			if _, err := os.Stat(mt.Source); err != nil {
				return nil, Invalid("invalid mount config for type \"bind\": bind source path does not exist: %s", mt.Source)
			}
			m.Source = mt.Source
			m.Propagation = mount.PropagationRPrivate
		case mount.TypeVolume:
			v, err := e.CreateVolume(mt.Source, nil, nil)
			if err != nil {
				return nil, err
			}
			m.Name, m.Source, m.Driver = v.Name, v.Mountpoint, "local"
			if mt.VolumeOptions != nil && mt.VolumeOptions.NoCopy {
				m.Mode = "nocopy"
			}
		case mount.TypeTmpfs:
		default:
			return nil, Invalid("invalid mount config: mount type unknown: %q", mt.Type)
		}
		if err := add(m); err != nil {
			return nil, err
		}
	}
	vols := make([]string, 0, len(c.Config.Volumes))
	for v := range c.Config.Volumes {
		vols = append(vols, v)
	}
	sort.Strings(vols)
	for _, dest := range vols {
		if seen[filepath.Clean(dest)] {
			continue
		}
		v, err := e.CreateVolume("", nil, nil)
		if err != nil {
			return nil, err
		}
		if err := add(container.MountPoint{Type: mount.TypeVolume, Name: v.Name, Source: v.Mountpoint, Destination: dest, Driver: "local", RW: true}); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// parseBind parses "src:dst[:opts]" as Docker's -v does: an absolute src is a host path, else a volume name.
func (e *Engine) parseBind(spec string) (container.MountPoint, error) {
	parts := strings.Split(spec, ":")
	var src, dst, mode string
	switch len(parts) {
	case 1:
		dst = parts[0]
	case 2:
		src, dst = parts[0], parts[1]
	case 3:
		src, dst, mode = parts[0], parts[1], parts[2]
	default:
		return container.MountPoint{}, Invalid("invalid volume specification: '%s'", spec)
	}
	if dst == "" || !filepath.IsAbs(dst) {
		return container.MountPoint{}, Invalid("invalid volume specification: '%s'", spec)
	}
	m := container.MountPoint{Destination: dst, RW: true, Mode: mode}
	for _, o := range strings.Split(mode, ",") {
		switch o {
		case "ro":
			m.RW = false
		case "rw", "", "z", "Z", "private", "rprivate", "shared", "rshared", "slave", "rslave", "nocopy":
		default:
			return container.MountPoint{}, Invalid("invalid mode: %s", o)
		}
	}
	switch {
	case src == "":
		v, err := e.CreateVolume("", nil, nil)
		if err != nil {
			return m, err
		}
		m.Type, m.Name, m.Source, m.Driver = mount.TypeVolume, v.Name, v.Mountpoint, "local"
	case filepath.IsAbs(src):
		if _, err := os.Stat(src); os.IsNotExist(err) {
			// Docker creates a missing bind source for -v.
			if err := os.MkdirAll(src, 0o755); err != nil {
				return m, Invalid("error while creating mount source path '%s': %v", src, err)
			}
		}
		m.Type, m.Source, m.Propagation = mount.TypeBind, src, mount.PropagationRPrivate
	default:
		v, err := e.CreateVolume(src, nil, nil)
		if err != nil {
			return m, err
		}
		m.Type, m.Name, m.Source, m.Driver = mount.TypeVolume, v.Name, v.Mountpoint, "local"
	}
	return m, nil
}

func dirSize(root string) int64 {
	var n int64
	filepath.Walk(root, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

// populateVolume copies what the container's image has at a volume's mount
// point into the volume when the volume is still empty, as Docker does on a
// volume's first use (not for binds, not with the nocopy option). Owner,
// mode and times come along; device nodes do not.
func populateVolume(rootfs string, m container.MountPoint) error {
	if m.Type != mount.TypeVolume || m.Source == "" || strings.Contains(m.Mode, "nocopy") {
		return nil
	}
	if ents, err := os.ReadDir(m.Source); err != nil || len(ents) > 0 {
		return nil
	}
	// symlinks in the image resolve inside the rootfs, never to the host
	src, err := securejoin.SecureJoin(rootfs, m.Destination)
	if err != nil {
		return nil
	}
	if fi, err := os.Lstat(src); err != nil || !fi.IsDir() {
		return nil
	}
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		dst := filepath.Join(m.Source, rel)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			if rel != "." {
				if err := os.Mkdir(dst, 0o700); err != nil {
					return err
				}
			}
		case unix.S_IFREG:
			if err := copyRegular(p, dst); err != nil {
				return err
			}
		case unix.S_IFLNK:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if err := os.Symlink(target, dst); err != nil {
				return err
			}
		default:
			return nil // devices, fifos, sockets: not copied
		}
		if err := unix.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
			return err
		}
		if st.Mode&unix.S_IFMT != unix.S_IFLNK {
			if err := unix.Chmod(dst, st.Mode&0o7777); err != nil {
				return err
			}
		}
		ts := []unix.Timespec{st.Atim, st.Mtim}
		_ = unix.UtimesNanoAt(unix.AT_FDCWD, dst, ts, unix.AT_SYMLINK_NOFOLLOW)
		return nil
	})
}

func copyRegular(src, dst string) error {
	in, err := os.OpenFile(src, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
