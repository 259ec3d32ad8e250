package snapshot

import (
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"
)

// ResolvePath maps a path inside a container, as `docker cp` names it, to a host path under
// root, resolving symlinks as if root were "/". The last component is kept as is (so a symlink
// there is the link itself, as docker cp copies it) unless followLast is set or ctrPath ends in
// "/" or "/.". The result is for display and stat only: a running container can change its
// tree afterwards; ExtractTar (with Root) and ArchivePathInRoot resolve race-free themselves.
func ResolvePath(root, ctrPath string, followLast bool) (string, error) {
	clean := path.Clean("/" + ctrPath)
	if followLast || clean == "/" || strings.HasSuffix(ctrPath, "/") || strings.HasSuffix(ctrPath, "/.") {
		return securejoin.SecureJoin(root, clean)
	}
	dir, err := securejoin.SecureJoin(root, path.Dir(clean))
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, path.Base(clean)), nil
}

// ArchivePathInRoot is ArchivePath for ctrPath inside the container rootfs root: its
// directories are resolved inside root (symlinks cannot lead out, even if the container changes
// them meanwhile); the last component is archived as is (a symlink as a link) unless ctrPath
// ends in "/" or "/.", which follows it like docker cp does. rebaseName "" means the last
// component's name.
func ArchivePathInRoot(root, ctrPath string, w io.Writer, rebaseName string) error {
	clean := path.Clean("/" + ctrPath)
	rfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: root, Err: err}
	}
	rootF := os.NewFile(uintptr(rfd), root)
	defer rootF.Close()
	follow := clean == "/" || strings.HasSuffix(ctrPath, "/") || strings.HasSuffix(ctrPath, "/.")
	if rebaseName == "" {
		rebaseName = path.Base(clean)
		if clean == "/" {
			rebaseName = "."
		}
	}
	if follow {
		h, err := pathrs.OpenatInRoot(rootF, clean)
		if err != nil {
			return err
		}
		defer h.Close()
		var st unix.Stat_t
		if err := unix.Fstat(int(h.Fd()), &st); err != nil {
			return err
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return &os.PathError{Op: "stat", Path: ctrPath, Err: unix.ENOTDIR}
		}
		return archiveDir(int(h.Fd()), w, rebaseName)
	}
	h, err := pathrs.OpenatInRoot(rootF, path.Dir(clean))
	if err != nil {
		return err
	}
	defer h.Close()
	base := path.Base(clean)
	if clean == "/" {
		base = "."
	}
	return archiveAt(int(h.Fd()), base, ctrPath, w, rebaseName)
}
