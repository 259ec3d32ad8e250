package snapshot

import (
	"archive/tar"
	"bufio"
	"compress/bzip2"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"
)

const (
	maxNameLen      = 4096 // PATH_MAX: longer entry names and link targets are rejected
	maxComponentLen = 255  // NAME_MAX
	copyBufSize     = 1 << 20

	whiteoutPrefix     = ".wh."
	whiteoutMetaPrefix = ".wh..wh."
	whiteoutOpaque     = ".wh..wh..opq"
	overlayOpaqueXattr = "trusted.overlay.opaque"
	paxXattrPrefix     = "SCHILY.xattr."
)

// InvalidEntryError reports a tar entry that extraction refuses (unsafe path, link out of the
// destination, device node in docker cp, oversized name, …). Nothing of it was written.
type InvalidEntryError struct {
	Name   string
	Reason string
}

func (e *InvalidEntryError) Error() string {
	n := e.Name
	if len(n) > 128 {
		n = n[:128] + "…"
	}
	return fmt.Sprintf("invalid tar entry %q: %s", n, e.Reason)
}

// InvalidParameter marks the error as the client's fault (moby errdefs; the API answers 400).
func (e *InvalidEntryError) InvalidParameter() {}

func invalidEntry(name, format string, a ...any) error {
	return &InvalidEntryError{Name: name, Reason: fmt.Sprintf(format, a...)}
}

// Owner is a uid/gid pair.
type Owner struct{ UID, GID int }

// ExtractOptions controls ExtractTar (`docker cp` into a container).
type ExtractOptions struct {
	// Root is the container root filesystem; dest must lie inside it. Directories that entries
	// go into are resolved as if Root were "/": a symlink (already in the container, or made by
	// an earlier entry) is followed but can never lead outside Root. This is what Docker's
	// chrooted extraction does. Empty means dest itself is the root.
	Root string
	// NoLchown leaves entries owned by the extracting process instead of the tar's uid/gid.
	NoLchown bool
	// Chown, when set, owns every entry (the API's copyUIDGID: the container's user).
	Chown *Owner
	// NoOverwriteDirNonDir refuses to replace a directory by a non-directory or the reverse.
	NoOverwriteDirNonDir bool
}

// ExtractTar extracts a tar stream (plain, gzip or bzip2) into dest, for `docker cp` into a
// container. Entry names are made relative ("/etc/x" → "etc/x"); an entry whose path climbs out
// ("../x"), a hard link to a file outside dest, a device node, or an oversized name is refused
// with an *InvalidEntryError. Nothing is ever written outside opts.Root (or dest): every file
// operation is relative to a directory descriptor opened without following symlinks out of it,
// and the final path component is never followed.
func ExtractTar(r io.Reader, dest string, opts ExtractOptions) error {
	x, err := newExtractor(dest, opts, false)
	if err != nil {
		return err
	}
	defer x.close()
	return x.run(r)
}

// extractLayer unpacks a layer tar into dest (an empty directory) for use as an overlay lower
// layer: OCI whiteouts become overlay whiteouts, device nodes are allowed, and no entry may be
// written through a symlink at all (a layer tar never needs that).
func extractLayer(r io.Reader, dest string) error {
	x, err := newExtractor(dest, ExtractOptions{}, true)
	if err != nil {
		return err
	}
	defer x.close()
	return x.run(r)
}

type dirTime struct {
	name         string
	atime, mtime time.Time
}

type extractor struct {
	layer   bool
	opts    ExtractOptions
	destFd  int      // layer mode: O_PATH descriptor of dest
	root    *os.File // cp mode: O_PATH handle of opts.Root
	destRel string   // cp mode: dest relative to Root ("." when equal)
	euid    int

	cacheRel string // last directory looked up, and a descriptor for it
	cacheFd  int

	dirs []dirTime
	buf  []byte
}

func newExtractor(dest string, opts ExtractOptions, layer bool) (*extractor, error) {
	x := &extractor{layer: layer, opts: opts, destFd: -1, cacheFd: -1, euid: os.Geteuid(), buf: getBuf()}
	if layer {
		fd, err := unix.Open(dest, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: dest, Err: err}
		}
		x.destFd = fd
		return x, nil
	}
	root := opts.Root
	if root == "" {
		root = dest
	}
	root, dest = filepath.Clean(root), filepath.Clean(dest)
	rel, err := filepath.Rel(root, dest)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return nil, fmt.Errorf("extract: destination %s is outside the root %s", dest, root)
	}
	fd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: root, Err: err}
	}
	x.root = os.NewFile(uintptr(fd), root)
	x.destRel = filepath.ToSlash(rel)
	// dest itself must exist (as a directory, resolved inside the root).
	dfd, err := x.openDir("", false)
	if err != nil {
		x.close()
		return nil, fmt.Errorf("extract: destination %s: %w", dest, err)
	}
	unix.Close(dfd)
	return x, nil
}

// bufPool recycles the large copy buffers of extractions and archives.
var bufPool = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

func getBuf() []byte  { return *(bufPool.Get().(*[]byte)) }
func putBuf(b []byte) { bufPool.Put(&b) }

func (x *extractor) close() {
	if x.buf != nil {
		putBuf(x.buf)
		x.buf = nil
	}
	if x.cacheFd >= 0 {
		unix.Close(x.cacheFd)
		x.cacheFd = -1
	}
	if x.destFd >= 0 {
		unix.Close(x.destFd)
		x.destFd = -1
	}
	if x.root != nil {
		x.root.Close()
		x.root = nil
	}
}

// decompress wraps r according to its magic bytes.
func decompress(r io.Reader) (io.Reader, func(), error) {
	br := bufio.NewReaderSize(r, 256<<10)
	head, _ := br.Peek(4)
	switch {
	case len(head) >= 3 && head[0] == 0x1f && head[1] == 0x8b && head[2] == 8:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("invalid tar archive: %w", err)
		}
		return bufio.NewReaderSize(zr, 256<<10), func() { zr.Close() }, nil
	case len(head) >= 3 && string(head[:3]) == "BZh":
		return bufio.NewReaderSize(bzip2.NewReader(br), 256<<10), func() {}, nil
	case len(head) >= 4 && head[0] == 0x28 && head[1] == 0xb5 && head[2] == 0x2f && head[3] == 0xfd:
		return nil, nil, errors.New("invalid tar archive: zstd compression is not supported")
	case len(head) >= 4 && head[0] == 0xfd && string(head[1:4]) == "7zX":
		return nil, nil, errors.New("invalid tar archive: xz compression is not supported")
	}
	return br, func() {}, nil
}

func (x *extractor) run(r io.Reader) error {
	r, done, err := decompress(r)
	if err != nil {
		return err
	}
	defer done()
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil && !errors.Is(err, tar.ErrInsecurePath) {
			return fmt.Errorf("invalid tar archive: %w", err)
		}
		if err := x.entry(hdr, tr); err != nil {
			return err
		}
	}
	// Directory times last: creating entries inside a directory changes its mtime.
	for _, d := range x.dirs {
		dir, base := splitName(d.name)
		fd, err := x.openDir(dir, false)
		if err != nil {
			continue // replaced by a later entry
		}
		err = unix.UtimesNanoAt(fd, base, timespecs(d.atime, d.mtime), unix.AT_SYMLINK_NOFOLLOW)
		unix.Close(fd)
		if err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("set times on %s: %w", d.name, err)
		}
	}
	return nil
}

// cleanName turns an entry name into a clean relative path; "" is the root itself.
func cleanName(name string) (string, error) {
	if len(name) > maxNameLen {
		return "", invalidEntry(name, "name too long (%d bytes)", len(name))
	}
	if strings.IndexByte(name, 0) >= 0 {
		return "", invalidEntry(name, "name contains a NUL byte")
	}
	p := path.Clean(name)
	if p == ".." || strings.HasPrefix(p, "../") {
		return "", invalidEntry(name, "path escapes the layer")
	}
	p = strings.TrimLeft(p, "/") // absolute names are made relative, like Docker does
	if p == "." {
		p = ""
	}
	for _, c := range strings.Split(p, "/") {
		if len(c) > maxComponentLen {
			return "", invalidEntry(name, "path component too long (%d bytes)", len(c))
		}
	}
	return p, nil
}

func splitName(p string) (dir, base string) {
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return "", p
	}
	return p[:i], p[i+1:]
}

// openDir returns a new O_PATH descriptor of directory rel (relative to dest), creating missing
// directories when create is set. Layer mode refuses any symlink on the way; cp mode resolves
// symlinks inside the root.
func (x *extractor) openDir(rel string, create bool) (int, error) {
	if x.cacheFd >= 0 && rel == x.cacheRel {
		return unix.FcntlInt(uintptr(x.cacheFd), unix.F_DUPFD_CLOEXEC, 0)
	}
	var fd int
	var err error
	if x.layer {
		fd, err = x.walkNoFollow(rel, create)
	} else {
		fd, err = x.walkInRoot(rel, create)
	}
	if err != nil {
		return -1, err
	}
	if x.cacheFd >= 0 {
		unix.Close(x.cacheFd)
	}
	x.cacheRel = rel
	x.cacheFd, err = unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		x.cacheFd = -1
	}
	return fd, nil
}

// invalidate drops the cached directory if rel (just removed or replaced) is it or contains it.
// In cp mode a symlink may alias the cached directory under another name: drop it always.
func (x *extractor) invalidate(rel string) {
	if x.cacheFd >= 0 && (!x.layer || x.cacheRel == rel || strings.HasPrefix(x.cacheRel, rel+"/")) {
		unix.Close(x.cacheFd)
		x.cacheFd = -1
	}
}

type symlinkParentError struct{ at string }

func (e *symlinkParentError) Error() string {
	return fmt.Sprintf("path goes through symlink %q", e.at)
}

func (x *extractor) walkNoFollow(rel string, create bool) (int, error) {
	fd, err := unix.FcntlInt(uintptr(x.destFd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil || rel == "" {
		return fd, err
	}
	done := ""
	for _, c := range strings.Split(rel, "/") {
		done = path.Join(done, c)
		nfd, err := unix.Openat(fd, c, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err == unix.ENOENT && create {
			if err = unix.Mkdirat(fd, c, 0o755); err == nil || err == unix.EEXIST {
				nfd, err = unix.Openat(fd, c, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			}
		}
		if err == unix.ENOTDIR || err == unix.ELOOP {
			var st unix.Stat_t
			if unix.Fstatat(fd, c, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
				err = &symlinkParentError{at: done}
			} else {
				err = fmt.Errorf("%q is not a directory", done)
			}
		}
		unix.Close(fd)
		if err != nil {
			return -1, err
		}
		fd = nfd
	}
	return fd, nil
}

func (x *extractor) walkInRoot(rel string, create bool) (int, error) {
	p := path.Join(x.destRel, rel)
	var h *os.File
	var err error
	if create {
		h, err = pathrs.MkdirAllHandle(x.root, p, 0o755)
	} else {
		h, err = pathrs.OpenatInRoot(x.root, p)
	}
	if err != nil {
		return -1, err
	}
	defer h.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(h.Fd()), &st); err != nil {
		return -1, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return -1, fmt.Errorf("%q is not a directory", rel)
	}
	return unix.FcntlInt(h.Fd(), unix.F_DUPFD_CLOEXEC, 0)
}

func (x *extractor) entry(hdr *tar.Header, r io.Reader) error {
	switch hdr.Typeflag {
	case tar.TypeXGlobalHeader:
		return nil
	case tar.TypeReg, tar.TypeRegA, tar.TypeGNUSparse, tar.TypeDir, tar.TypeSymlink, tar.TypeLink,
		tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
	default:
		return invalidEntry(hdr.Name, "unsupported entry type %q", string(hdr.Typeflag))
	}
	name, err := cleanName(hdr.Name)
	if err != nil {
		return err
	}
	if len(hdr.Linkname) > maxNameLen {
		return invalidEntry(hdr.Name, "link target too long (%d bytes)", len(hdr.Linkname))
	}
	if name == "" {
		return nil // the root itself: keep dest's own metadata
	}
	dir, base := splitName(name)
	if x.layer && strings.HasPrefix(base, whiteoutPrefix) {
		return x.whiteout(hdr, name, dir, base)
	}
	if !x.layer && (hdr.Typeflag == tar.TypeChar || hdr.Typeflag == tar.TypeBlock) {
		return invalidEntry(hdr.Name, "device nodes are not allowed")
	}
	dfd, err := x.openDir(dir, true)
	if err != nil {
		var sp *symlinkParentError
		if errors.As(err, &sp) {
			return invalidEntry(hdr.Name, "%v", err)
		}
		return fmt.Errorf("extract %s: %w", name, err)
	}
	defer unix.Close(dfd)

	isDir := hdr.Typeflag == tar.TypeDir
	if hdr.Typeflag == tar.TypeLink {
		return x.hardlink(hdr, dfd, name, base)
	}
	exists, err := x.prepare(dfd, name, base, isDir)
	if err != nil {
		return err
	}
	mode := uint32(hdr.Mode & 0o7777)
	switch hdr.Typeflag {
	case tar.TypeDir:
		if !exists {
			if err := unix.Mkdirat(dfd, base, 0o700); err != nil {
				return fmt.Errorf("extract %s: mkdir: %w", name, err)
			}
		}
		fd, err := unix.Openat(dfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("extract %s: %w", name, err)
		}
		err = x.metaFd(fd, hdr, name, mode)
		unix.Close(fd)
		if err != nil {
			return err
		}
		x.dirs = append(x.dirs, dirTime{name: name, atime: atimeOf(hdr), mtime: hdr.ModTime})
		return nil
	case tar.TypeReg, tar.TypeRegA, tar.TypeGNUSparse:
		fd, err := unix.Openat(dfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return fmt.Errorf("extract %s: %w", name, err)
		}
		f := os.NewFile(uintptr(fd), name)
		_, err = io.CopyBuffer(struct{ io.Writer }{f}, struct{ io.Reader }{r}, x.buf)
		if err == nil {
			err = x.metaFd(fd, hdr, name, mode)
		}
		if err == nil {
			err = x.times(dfd, base, name, hdr)
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("extract %s: %w", name, err)
		}
		return nil
	case tar.TypeSymlink:
		if err := unix.Symlinkat(hdr.Linkname, dfd, base); err != nil {
			return fmt.Errorf("extract %s: symlink: %w", name, err)
		}
		if err := x.chownAt(dfd, base, hdr); err != nil {
			return fmt.Errorf("extract %s: %w", name, err)
		}
		return x.times(dfd, base, name, hdr)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		typ := uint32(unix.S_IFIFO)
		switch hdr.Typeflag {
		case tar.TypeChar:
			typ = unix.S_IFCHR
		case tar.TypeBlock:
			typ = unix.S_IFBLK
		}
		dev := int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor)))
		if err := unix.Mknodat(dfd, base, typ|mode&0o777, dev); err != nil {
			return fmt.Errorf("extract %s: mknod: %w", name, err)
		}
		if err := x.chownAt(dfd, base, hdr); err != nil {
			return fmt.Errorf("extract %s: %w", name, err)
		}
		if err := chmodAt(dfd, base, mode); err != nil {
			return fmt.Errorf("extract %s: %w", name, err)
		}
		return x.times(dfd, base, name, hdr)
	}
	return nil
}

// prepare makes room for a new entry: an existing directory is kept when the entry is a
// directory too; anything else is removed (never followed).
func (x *extractor) prepare(dfd int, name, base string, isDir bool) (exists bool, err error) {
	var st unix.Stat_t
	if err := unix.Fstatat(dfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if err == unix.ENOENT {
			return false, nil
		}
		return false, fmt.Errorf("extract %s: %w", name, err)
	}
	wasDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
	if isDir && wasDir {
		return true, nil
	}
	if x.opts.NoOverwriteDirNonDir {
		if wasDir {
			return false, fmt.Errorf("cannot overwrite directory %q with non-directory %q", "/"+name, name)
		}
		if isDir {
			return false, fmt.Errorf("cannot overwrite non-directory %q with directory %q", "/"+name, name)
		}
	}
	x.invalidate(name)
	if err := removeAt(dfd, base); err != nil {
		return false, fmt.Errorf("extract %s: remove existing: %w", name, err)
	}
	return false, nil
}

// removeAt removes name in directory dfd, recursively, never following symlinks.
func removeAt(dfd int, name string) error {
	err := unix.Unlinkat(dfd, name, 0)
	if err == nil || err == unix.ENOENT {
		return nil
	}
	if err != unix.EISDIR && err != unix.EPERM {
		return err
	}
	fd, err := unix.Openat(dfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), name)
	names, err := f.Readdirnames(-1)
	if err == nil {
		for _, n := range names {
			if err = removeAt(fd, n); err != nil {
				break
			}
		}
	}
	f.Close()
	if err != nil {
		return err
	}
	return unix.Unlinkat(dfd, name, unix.AT_REMOVEDIR)
}

func (x *extractor) hardlink(hdr *tar.Header, dfd int, name, base string) error {
	target, err := cleanName(hdr.Linkname)
	if err != nil {
		return invalidEntry(hdr.Name, "hardlink target %q escapes the layer", hdr.Linkname)
	}
	if target == "" {
		return invalidEntry(hdr.Name, "hardlink to the root directory")
	}
	if target == name {
		return invalidEntry(hdr.Name, "hardlink to itself")
	}
	tdir, tbase := splitName(target)
	tfd, err := x.openDir(tdir, false)
	if err != nil {
		var sp *symlinkParentError
		if errors.As(err, &sp) {
			return invalidEntry(hdr.Name, "hardlink target %q: %v", hdr.Linkname, err)
		}
		return invalidEntry(hdr.Name, "hardlink target %q not found", hdr.Linkname)
	}
	defer unix.Close(tfd)
	var st unix.Stat_t
	if err := unix.Fstatat(tfd, tbase, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return invalidEntry(hdr.Name, "hardlink target %q not found", hdr.Linkname)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return invalidEntry(hdr.Name, "hardlink to a directory")
	}
	if _, err := x.prepare(dfd, name, base, false); err != nil {
		return err
	}
	if err := unix.Linkat(tfd, tbase, dfd, base, 0); err != nil {
		return fmt.Errorf("extract %s: link: %w", name, err)
	}
	return nil
}

// whiteout applies an OCI whiteout entry to a layer being unpacked for overlayfs.
func (x *extractor) whiteout(hdr *tar.Header, name, dir, base string) error {
	if base == whiteoutOpaque {
		fd, err := x.openDir(dir, true)
		if err != nil {
			return invalidEntry(hdr.Name, "%v", err)
		}
		defer unix.Close(fd)
		if err := unix.Setxattr(procFd(fd), overlayOpaqueXattr, []byte("y"), 0); err != nil {
			return fmt.Errorf("extract %s: mark directory opaque: %w", name, err)
		}
		return nil
	}
	if strings.HasPrefix(base, whiteoutMetaPrefix) {
		return nil // AUFS metadata (.wh..wh.plnk, .wh..wh.aufs): not content
	}
	target := strings.TrimPrefix(base, whiteoutPrefix)
	if target == "" || target == "." || target == ".." {
		return invalidEntry(hdr.Name, "invalid whiteout")
	}
	fd, err := x.openDir(dir, true)
	if err != nil {
		return invalidEntry(hdr.Name, "%v", err)
	}
	defer unix.Close(fd)
	rel := path.Join(dir, target)
	if _, err := x.prepare(fd, rel, target, false); err != nil {
		return err
	}
	if err := unix.Mknodat(fd, target, unix.S_IFCHR, 0); err != nil {
		return fmt.Errorf("extract %s: create overlay whiteout: %w", name, err)
	}
	return x.chownAt(fd, target, hdr)
}

func procFd(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

func (x *extractor) owner(hdr *tar.Header) (uid, gid int, ok bool) {
	if x.opts.Chown != nil {
		return x.opts.Chown.UID, x.opts.Chown.GID, true
	}
	if x.opts.NoLchown {
		return 0, 0, false
	}
	return hdr.Uid, hdr.Gid, true
}

func (x *extractor) chownAt(dfd int, base string, hdr *tar.Header) error {
	uid, gid, ok := x.owner(hdr)
	if !ok {
		return nil
	}
	err := unix.Fchownat(dfd, base, uid, gid, unix.AT_SYMLINK_NOFOLLOW)
	if err == unix.EPERM && x.euid != 0 {
		return nil // unprivileged: keep our own ownership
	}
	return err
}

// metaFd applies ownership, mode and xattrs to an open regular file or directory.
func (x *extractor) metaFd(fd int, hdr *tar.Header, name string, mode uint32) error {
	if uid, gid, ok := x.owner(hdr); ok {
		if err := unix.Fchown(fd, uid, gid); err != nil && !(err == unix.EPERM && x.euid != 0) {
			return fmt.Errorf("extract %s: chown: %w", name, err)
		}
	}
	if err := unix.Fchmod(fd, mode); err != nil { // after chown, which clears setuid bits
		return fmt.Errorf("extract %s: chmod: %w", name, err)
	}
	keys := make([]string, 0, len(hdr.PAXRecords))
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, paxXattrPrefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		attr := strings.TrimPrefix(k, paxXattrPrefix)
		// Overlay's own attributes would change how the layer is merged: only whiteout entries set them.
		if strings.HasPrefix(attr, "trusted.overlay.") || strings.HasPrefix(attr, "user.overlay.") {
			continue
		}
		err := unix.Fsetxattr(fd, attr, []byte(hdr.PAXRecords[k]), 0)
		if err != nil && err != unix.ENOTSUP && err != unix.EPERM && err != unix.EOPNOTSUPP {
			return fmt.Errorf("extract %s: set xattr %s: %w", name, attr, err)
		}
	}
	return nil
}

// chmodAt changes the mode of a just-created node without following a symlink at base.
func chmodAt(dfd int, base string, mode uint32) error {
	fd, err := unix.Openat(dfd, base, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return nil
	}
	return unix.Chmod(procFd(fd), mode)
}

func atimeOf(hdr *tar.Header) time.Time {
	if hdr.AccessTime.IsZero() {
		return hdr.ModTime
	}
	return hdr.AccessTime
}

func timespecs(atime, mtime time.Time) []unix.Timespec {
	return []unix.Timespec{{Sec: atime.Unix(), Nsec: int64(atime.Nanosecond())}, {Sec: mtime.Unix(), Nsec: int64(mtime.Nanosecond())}}
}

func (x *extractor) times(dfd int, base, name string, hdr *tar.Header) error {
	err := unix.UtimesNanoAt(dfd, base, timespecs(atimeOf(hdr), hdr.ModTime), unix.AT_SYMLINK_NOFOLLOW)
	if err != nil && err != unix.EINVAL {
		return fmt.Errorf("extract %s: set times: %w", name, err)
	}
	return nil
}
