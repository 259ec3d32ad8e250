package snapshot

import (
	"archive/tar"
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	"golang.org/x/sys/unix"
)

// tarWriter writes a directory tree as a tar stream: entries in sorted order, real mtimes
// (whole seconds), numeric ownership only, no atime/ctime, so an unchanged tree always gives
// the same bytes. Files are read through descriptors opened relative to their (already open)
// parent directory with O_NOFOLLOW: a symlink is archived as a symlink and never followed, even
// if the tree changes while it is being read.
type tarWriter struct {
	tw    *tar.Writer
	buf   []byte
	links map[[2]uint64]string
	diff  bool // the tree is an overlay upper dir: write whiteouts and opaque markers
}

func newTarWriter(w io.Writer, diff bool) (*tarWriter, *bufio.Writer) {
	bw := bufio.NewWriterSize(w, copyBufSize)
	return &tarWriter{tw: tar.NewWriter(bw), buf: getBuf(), links: map[[2]uint64]string{}, diff: diff}, bw
}

func (w *tarWriter) finish(bw *bufio.Writer) error {
	putBuf(w.buf)
	w.buf = nil
	if err := w.tw.Close(); err != nil {
		return err
	}
	return bw.Flush()
}

func header(name string, st *unix.Stat_t) *tar.Header {
	return &tar.Header{
		Name:    name,
		Mode:    int64(st.Mode & 0o7777),
		Uid:     int(st.Uid),
		Gid:     int(st.Gid),
		ModTime: time.Unix(st.Mtim.Sec, 0),
	}
}

// add writes entry base of directory dfd under the archive name name (and its subtree).
func (w *tarWriter) add(dfd int, base, name string, st *unix.Stat_t) error {
	hdr := header(name, st)
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		fd, err := unix.Openat(dfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("archive %s: %w", name, err)
		}
		dir := os.NewFile(uintptr(fd), name)
		defer dir.Close()
		hdr.Typeflag = tar.TypeDir
		hdr.Name += "/"
		if err := w.tw.WriteHeader(hdr); err != nil {
			return err
		}
		if w.diff && isOpaque(fd) {
			if err := w.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name + "/" + whiteoutOpaque,
				Mode: hdr.Mode & 0o777, Uid: hdr.Uid, Gid: hdr.Gid, ModTime: hdr.ModTime}); err != nil {
				return err
			}
		}
		return w.children(fd, dir, name+"/")
	case unix.S_IFREG:
		key := [2]uint64{st.Dev, st.Ino}
		if st.Nlink > 1 {
			if first, ok := w.links[key]; ok {
				hdr.Typeflag, hdr.Linkname = tar.TypeLink, first
				return w.tw.WriteHeader(hdr)
			}
		}
		fd, err := unix.Openat(dfd, base, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
		if err != nil {
			return fmt.Errorf("archive %s: %w", name, err)
		}
		f := os.NewFile(uintptr(fd), name)
		defer f.Close()
		var fst unix.Stat_t
		if err := unix.Fstat(fd, &fst); err != nil {
			return err
		}
		if fst.Mode&unix.S_IFMT != unix.S_IFREG {
			return fmt.Errorf("archive %s: changed while being archived", name)
		}
		hdr = header(name, &fst)
		hdr.Typeflag = tar.TypeReg
		hdr.Size = fst.Size
		if caps := getxattr(fd, "security.capability"); caps != nil {
			hdr.PAXRecords = map[string]string{paxXattrPrefix + "security.capability": string(caps)}
		}
		if fst.Nlink > 1 {
			w.links[key] = name
		}
		if err := w.tw.WriteHeader(hdr); err != nil {
			return err
		}
		n, err := io.CopyBuffer(struct{ io.Writer }{w.tw}, io.LimitReader(struct{ io.Reader }{f}, hdr.Size), w.buf)
		if err != nil {
			return fmt.Errorf("archive %s: %w", name, err)
		}
		if n != hdr.Size {
			return fmt.Errorf("archive %s: file shrank while being archived", name)
		}
		return nil
	case unix.S_IFLNK:
		target, err := readlinkat(dfd, base)
		if err != nil {
			return fmt.Errorf("archive %s: %w", name, err)
		}
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
		return w.tw.WriteHeader(hdr)
	case unix.S_IFCHR, unix.S_IFBLK:
		if w.diff && st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0 {
			dir, b := splitName(name)
			wo := whiteoutPrefix + b
			if dir != "" {
				wo = dir + "/" + wo
			}
			return w.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: wo, Mode: hdr.Mode & 0o777,
				Uid: hdr.Uid, Gid: hdr.Gid, ModTime: hdr.ModTime})
		}
		hdr.Typeflag = tar.TypeChar
		if st.Mode&unix.S_IFMT == unix.S_IFBLK {
			hdr.Typeflag = tar.TypeBlock
		}
		hdr.Devmajor, hdr.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
		return w.tw.WriteHeader(hdr)
	case unix.S_IFIFO:
		hdr.Typeflag = tar.TypeFifo
		return w.tw.WriteHeader(hdr)
	}
	return nil // sockets are not archived (Docker skips them too)
}

// children archives the entries of the open directory fd, sorted by name.
func (w *tarWriter) children(fd int, dir *os.File, prefix string) error {
	names, err := dir.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("archive %s: %w", prefix, err)
	}
	sort.Strings(names)
	for _, n := range names {
		var st unix.Stat_t
		if err := unix.Fstatat(fd, n, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if err == unix.ENOENT {
				continue // removed meanwhile
			}
			return fmt.Errorf("archive %s%s: %w", prefix, n, err)
		}
		if err := w.add(fd, n, prefix+n, &st); err != nil {
			return err
		}
	}
	return nil
}

func isOpaque(fd int) bool {
	v := getxattr(fd, overlayOpaqueXattr)
	return len(v) == 1 && v[0] == 'y'
}

func getxattr(fd int, attr string) []byte {
	buf := make([]byte, 256)
	for {
		n, err := unix.Fgetxattr(fd, attr, buf)
		if err == unix.ERANGE {
			buf = make([]byte, len(buf)*4)
			if len(buf) > 1<<20 {
				return nil
			}
			continue
		}
		if err != nil || n == 0 {
			return nil
		}
		return buf[:n]
	}
}

func readlinkat(dfd int, base string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dfd, base, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

// ArchivePath writes src (a file, symlink or directory tree) as a tar stream for `docker cp`
// out of a container. Entries are named rebaseName ("" means filepath.Base(src)) and
// rebaseName/<path inside src>. Symlinks are archived as links and never followed: not src
// itself, and nothing inside it. src's parent directories are trusted as given; for a path
// inside a running container's rootfs use ArchivePathInRoot.
func ArchivePath(src string, w io.Writer, rebaseName string) error {
	src = filepath.Clean(src)
	if rebaseName == "" {
		rebaseName = filepath.Base(src)
	}
	if src == "/" {
		fd, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return archiveDir(fd, w, rebaseName)
	}
	parent, base := filepath.Dir(src), filepath.Base(src)
	pfd, err := unix.Open(parent, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: parent, Err: err}
	}
	defer unix.Close(pfd)
	return archiveAt(pfd, base, src, w, rebaseName)
}

// archiveAt archives entry base of directory pfd (not following it if it is a symlink).
func archiveAt(pfd int, base, display string, w io.Writer, rebaseName string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "lstat", Path: display, Err: err}
	}
	tw, bw := newTarWriter(w, false)
	if err := tw.add(pfd, base, rebaseName, &st); err != nil {
		return err
	}
	return tw.finish(bw)
}

// archiveDir archives the directory open as fd (any flags) under rebaseName.
func archiveDir(fd int, w io.Writer, rebaseName string) error {
	dfd, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	dir := os.NewFile(uintptr(dfd), rebaseName)
	defer dir.Close()
	var st unix.Stat_t
	if err := unix.Fstat(dfd, &st); err != nil {
		return err
	}
	tw, bw := newTarWriter(w, false)
	hdr := header(rebaseName+"/", &st)
	hdr.Typeflag = tar.TypeDir
	if err := tw.tw.WriteHeader(hdr); err != nil {
		return err
	}
	if err := tw.children(dfd, dir, rebaseName+"/"); err != nil {
		return err
	}
	return tw.finish(bw)
}

// diffTree writes the overlay upper directory dir as a layer tar: overlay whiteouts (0:0 char
// devices) become ".wh.<name>" entries, opaque directories get a ".wh..wh..opq" entry.
func diffTree(dir string, w io.Writer) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: dir, Err: err}
	}
	d := os.NewFile(uintptr(fd), dir)
	defer d.Close()
	tw, bw := newTarWriter(w, true)
	if err := tw.children(fd, d, ""); err != nil {
		return err
	}
	return tw.finish(bw)
}
