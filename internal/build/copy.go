package build

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"

	"github.com/wharfhq/wharf/internal/snapshot"
)

// copySource is one resolved COPY/ADD source.
type copySource struct {
	rel  string // as named, relative to the source root ("" = the root)
	host string // host path, symlinks resolved inside the root
	fi   fs.FileInfo
	// plain: never extracted by ADD (a download, a here-document).
	plain bool
}

func hasWildcards(s string) bool { return strings.ContainsAny(s, "*?[") }

// resolveSources finds the sources of a COPY/ADD under root (the context, or another stage's
// rootfs with fromContext false). Paths are relative to root even when written absolute; in the
// context a path climbing out is refused with Docker's message.
func resolveSources(root string, srcs []string, fromContext bool) ([]copySource, error) {
	var out []copySource
	for _, src := range srcs {
		rel := path.Clean(filepath.ToSlash(src))
		if fromContext && (rel == ".." || strings.HasPrefix(rel, "../")) {
			return nil, errorf("forbidden path outside the build context: %s ()", src)
		}
		rel = strings.TrimPrefix(path.Clean("/"+rel), "/")
		if hasWildcards(rel) {
			matches, err := globInRoot(root, rel)
			if err != nil {
				return nil, err
			}
			for _, m := range matches {
				s, err := statSource(root, m)
				if err != nil {
					return nil, err
				}
				out = append(out, s)
			}
			continue
		}
		s, err := statSource(root, rel)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				if fromContext {
					return nil, errorf("file not found in build context or excluded by .dockerignore: stat %s: file does not exist", src)
				}
				return nil, errorf("stat %s: file does not exist", src)
			}
			return nil, err
		}
		out = append(out, s)
	}
	if len(out) == 0 && len(srcs) > 0 {
		return nil, errorf("no source files were specified")
	}
	return out, nil
}

func statSource(root, rel string) (copySource, error) {
	host, err := securejoin.SecureJoin(root, rel)
	if err != nil {
		return copySource{}, err
	}
	fi, err := os.Lstat(host)
	if err != nil {
		return copySource{}, err
	}
	return copySource{rel: rel, host: host, fi: fi}, nil
}

// globInRoot matches pattern (relative, slash-separated) against every path under root.
func globInRoot(root, pattern string) ([]string, error) {
	if _, err := path.Match(pattern, ""); err != nil {
		return nil, errorf("invalid pattern %q: %v", pattern, err)
	}
	var out []string
	depth := strings.Count(pattern, "/")
	err := filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		if ok, _ := path.Match(pattern, rel); ok {
			out = append(out, rel)
		}
		if de.IsDir() && strings.Count(rel, "/") >= depth {
			return filepath.SkipDir
		}
		return nil
	})
	sort.Strings(out)
	return out, err
}

// copyOptions are a COPY/ADD's flags, resolved.
type copyOptions struct {
	uid, gid int
	chown    bool // --chown given: every entry gets uid/gid
	chmod    *os.FileMode
	add      bool // ADD: local archives are extracted
}

// sourceDigest hashes what a COPY would copy (names, types, modes, link targets, contents; not
// times, as Docker's tarsum), for the cache and the history ("COPY file:<hash> in /dst").
func sourceDigest(srcs []copySource, known ...contentIndex) (string, error) {
	var idx contentIndex
	if len(known) > 0 {
		idx = known[0]
	}
	kind := "multi"
	if len(srcs) == 1 {
		kind = "file"
		if srcs[0].fi.IsDir() {
			kind = "dir"
		}
	}
	h := sha256.New()
	for _, s := range srcs {
		fmt.Fprintf(h, "src %q\n", s.rel)
		if err := hashTree(h, s.host, s.fi, idx); err != nil {
			return "", err
		}
	}
	return kind + ":" + hex.EncodeToString(h.Sum(nil)), nil
}

func hashTree(h hash.Hash, host string, top fs.FileInfo, idx contentIndex) error {
	if !top.IsDir() {
		return hashEntry(h, "", host, top, idx)
	}
	return filepath.WalkDir(host, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := de.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(host, p)
		return hashEntry(h, filepath.ToSlash(rel), p, fi, idx)
	})
}

func hashEntry(h hash.Hash, rel, p string, fi fs.FileInfo, idx contentIndex) error {
	fmt.Fprintf(h, "%q %o", rel, fi.Mode())
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		t, err := os.Readlink(p)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, " -> %q", t)
	case fi.Mode().IsRegular():
		// The content's own digest (known from the context tar, or computed now).
		sum, ok := idx.lookup(p, fi)
		if !ok {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			ch := sha256.New()
			n, err := io.Copy(ch, f)
			f.Close()
			if err != nil {
				return err
			}
			if n != fi.Size() {
				return fmt.Errorf("%s changed while it was read", p)
			}
			sum = hex.EncodeToString(ch.Sum(nil))
		}
		fmt.Fprintf(h, " %s %d", sum, fi.Size())
	}
	h.Write([]byte{'\n'})
	return nil
}

// destPath resolves a COPY destination against the working directory; dirSyntax says it names a
// directory ("dst/", ".", "dst/.").
func destPath(dest, workdir string) (p string, dirSyntax bool) {
	dirSyntax = strings.HasSuffix(dest, "/") || dest == "." || strings.HasSuffix(dest, "/.")
	if !path.IsAbs(dest) {
		if workdir == "" {
			workdir = "/"
		}
		dest = path.Join(workdir, dest)
	}
	return path.Clean(dest), dirSyntax
}

// writeCopyTar writes the tar stream that, extracted at the root of the target filesystem, does
// the COPY/ADD: names are the final paths (relative to "/"). isDir says whether a path already is
// a directory in the target.
func writeCopyTar(w io.Writer, srcs []copySource, dest string, dirSyntax bool, isDir func(string) bool, o copyOptions) error {
	if len(srcs) > 1 && !dirSyntax {
		return errorf("When using COPY with more than one source file, the destination must be a directory and end with a /")
	}
	tw := tar.NewWriter(w)
	madeDirs := map[string]bool{}
	now := time.Now()
	// mkdirs emits entries for the missing directories down to dir (Docker creates them 0755,
	// owned by the --chown user).
	mkdirs := func(dir string) error {
		dir = path.Clean(dir)
		if dir == "/" || madeDirs[dir] {
			return nil
		}
		var chain []string
		for d := dir; d != "/" && !madeDirs[d]; d = path.Dir(d) {
			if isDir(d) {
				break
			}
			chain = append(chain, d)
		}
		for i := len(chain) - 1; i >= 0; i-- {
			h := &tar.Header{Name: strings.TrimPrefix(chain[i], "/") + "/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: now}
			if o.chown {
				h.Uid, h.Gid = o.uid, o.gid
			}
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
			madeDirs[chain[i]] = true
		}
		madeDirs[dir] = true
		return nil
	}
	for _, s := range srcs {
		switch {
		case s.fi.IsDir():
			if err := mkdirs(dest); err != nil {
				return err
			}
			if err := copyDir(tw, s.host, dest, o); err != nil {
				return err
			}
		case o.add && !s.plain && s.fi.Mode().IsRegular() && isLocalArchive(s.host):
			if err := mkdirs(dest); err != nil {
				return err
			}
			if err := copyArchive(tw, s.host, dest, o); err != nil {
				return err
			}
		default:
			target := dest
			if dirSyntax || isDir(dest) {
				target = path.Join(dest, path.Base("/"+s.rel))
				if s.rel == "" {
					target = path.Join(dest, filepath.Base(s.host))
				}
			}
			if err := mkdirs(path.Dir(target)); err != nil {
				return err
			}
			if err := copyEntry(tw, s.host, target, s.fi, o); err != nil {
				return err
			}
		}
	}
	return tw.Close()
}

// copyDir copies the contents of a directory into dest (not the directory itself).
func copyDir(tw *tar.Writer, src, dest string, o copyOptions) error {
	return filepath.WalkDir(src, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if rel == "." {
			return nil
		}
		fi, err := de.Info()
		if err != nil {
			return err
		}
		return copyEntry(tw, p, path.Join(dest, filepath.ToSlash(rel)), fi, o)
	})
}

// copyEntry writes one file, directory or symlink at target. Other file types are skipped.
func copyEntry(tw *tar.Writer, host, target string, fi fs.FileInfo, o copyOptions) error {
	link := ""
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		var err error
		if link, err = os.Readlink(host); err != nil {
			return err
		}
	case fi.Mode().IsRegular(), fi.IsDir():
	default:
		return nil
	}
	h, err := tar.FileInfoHeader(fi, link)
	if err != nil {
		return err
	}
	h.Name = strings.TrimPrefix(path.Clean(target), "/")
	if fi.IsDir() {
		h.Name += "/"
	}
	h.Uname, h.Gname = "", ""
	h.Uid, h.Gid = 0, 0
	if o.chown {
		h.Uid, h.Gid = o.uid, o.gid
	}
	if o.chmod != nil && fi.Mode()&fs.ModeSymlink == 0 {
		h.Mode = int64(*o.chmod & 0o7777)
	}
	h.AccessTime, h.ChangeTime = h.ModTime, h.ModTime
	h.Format = tar.FormatPAX
	if err := tw.WriteHeader(h); err != nil {
		return err
	}
	if fi.Mode().IsRegular() {
		f, err := os.Open(host)
		if err != nil {
			return err
		}
		defer f.Close()
		if _, err := io.CopyN(tw, f, h.Size); err != nil {
			return fmt.Errorf("copy %s: %w", target, err)
		}
	}
	return nil
}

// isLocalArchive says whether ADD extracts the file: a tar, possibly gzip or bzip2 compressed.
func isLocalArchive(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	r, err := decompressed(f)
	if err != nil {
		return false
	}
	_, err = tar.NewReader(r).Next()
	return err == nil
}

func decompressed(f io.Reader) (io.Reader, error) {
	br := bufio.NewReader(f)
	head, _ := br.Peek(3)
	switch {
	case bytes.HasPrefix(head, []byte{0x1F, 0x8B}):
		return gzip.NewReader(br)
	case bytes.HasPrefix(head, []byte("BZh")):
		return bzip2.NewReader(br), nil
	}
	return br, nil
}

// copyArchive re-roots a local tar's entries under dest (ADD). Names that climb out of dest are
// refused later by the extraction; here they are dropped early.
func copyArchive(tw *tar.Writer, host, dest string, o copyOptions) error {
	f, err := os.Open(host)
	if err != nil {
		return err
	}
	defer f.Close()
	r, err := decompressed(f)
	if err != nil {
		return err
	}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return errorf("failed to extract %s: %v", filepath.Base(host), err)
		}
		name := path.Clean("/" + h.Name)
		if name == "/" {
			continue
		}
		h.Name = strings.TrimPrefix(path.Join(dest, name), "/")
		if h.Typeflag == tar.TypeDir {
			h.Name += "/"
		}
		if h.Typeflag == tar.TypeLink {
			h.Linkname = strings.TrimPrefix(path.Join(dest, path.Clean("/"+h.Linkname)), "/")
		}
		if o.chown {
			h.Uid, h.Gid = o.uid, o.gid
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
	}
}

// rootIsDir returns a function telling whether a path is a directory inside rootfs (symlinks
// resolved inside it).
func rootIsDir(rootfs string) func(string) bool {
	return func(p string) bool {
		hp, err := snapshot.ResolvePath(rootfs, p, true)
		if err != nil {
			return false
		}
		fi, err := os.Stat(hp)
		return err == nil && fi.IsDir()
	}
}

// parseChmod parses --chmod (octal).
func parseChmod(s string) (*os.FileMode, error) {
	if s == "" {
		return nil, nil
	}
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil || v > 0o7777 {
		return nil, errorf("invalid chmod parameter: '%s'. it should be octal string and between 0 and 07777", s)
	}
	m := os.FileMode(v)
	return &m, nil
}

// parseChown resolves --chown user[:group] with the target's /etc/passwd and /etc/group (rootfs
// may be "" when the target is empty: only numeric ids work then).
func parseChown(s, rootfs string) (uid, gid int, err error) {
	user, group, hasGroup := strings.Cut(s, ":")
	uid, ugid, err := lookupID(rootfs, "/etc/passwd", user, true)
	if err != nil {
		return 0, 0, errorf("unable to convert uid/gid chown string to host mapping: can't find uid for user %s: %v", user, err)
	}
	gid = ugid
	if !hasGroup {
		if _, convErr := strconv.Atoi(user); convErr == nil {
			gid = uid
		}
		return uid, gid, nil
	}
	if gid, _, err = lookupID(rootfs, "/etc/group", group, false); err != nil {
		return 0, 0, errorf("unable to convert uid/gid chown string to host mapping: can't find gid for group %s: %v", group, err)
	}
	return uid, gid, nil
}

// lookupID finds name in an /etc/passwd- or /etc/group-style file: the id, and for passwd the
// primary gid. Numeric names are ids.
func lookupID(rootfs, file, name string, passwd bool) (int, int, error) {
	if n, err := strconv.Atoi(name); err == nil {
		if n < 0 {
			return 0, 0, fmt.Errorf("invalid id %d", n)
		}
		return n, n, nil
	}
	if rootfs == "" {
		return 0, 0, fmt.Errorf("no such user: %s", name)
	}
	hp, err := snapshot.ResolvePath(rootfs, file, true)
	if err != nil {
		return 0, 0, err
	}
	data, err := os.ReadFile(hp)
	if err != nil {
		return 0, 0, fmt.Errorf("no such user: %s", name)
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Split(line, ":")
		if len(f) < 3 || f[0] != name {
			continue
		}
		id, err := strconv.Atoi(f[2])
		if err != nil {
			continue
		}
		g := id
		if passwd && len(f) > 3 {
			if v, err := strconv.Atoi(f[3]); err == nil {
				g = v
			}
		}
		return id, g, nil
	}
	if passwd {
		return 0, 0, fmt.Errorf("no such user: %s", name)
	}
	return 0, 0, fmt.Errorf("no such group: %s", name)
}
