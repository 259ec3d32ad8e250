package build

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The build context is spooled to one file, then unpacked into a tmpfs of the build's own when it
// is an uncompressed tar of reasonable size: creating and removing thousands of small files on
// the data root's filesystem (twice per build) is what a rebuild of a large context spent its
// time on, while a tmpfs does it at memory speed. Large or compressed contexts go to disk as before.

// maxTmpfsContext bounds the contexts kept in memory (tar bytes).
const maxTmpfsContext = 512 << 20

// prepareContext reads the context tar from r into a new directory under tmpRoot and returns it
// with a release function that removes it (and unmounts its tmpfs).
func prepareContext(r io.Reader, tmpRoot string) (string, contentIndex, func(), error) {
	dir, err := os.MkdirTemp(tmpRoot, "context-")
	if err != nil {
		return "", nil, nil, err
	}
	release := func() { os.RemoveAll(dir) }
	spool, err := os.CreateTemp(tmpRoot, "context-*.tar")
	if err != nil {
		release()
		return "", nil, nil, err
	}
	defer func() {
		spool.Close()
		os.Remove(spool.Name())
	}()
	n, err := io.Copy(spool, r)
	if err != nil {
		release()
		return "", nil, nil, fmt.Errorf("error reading build context: %w", err)
	}
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		release()
		return "", nil, nil, err
	}
	br := bufio.NewReaderSize(spool, 1<<20)
	head, _ := br.Peek(3)
	compressed := bytes.HasPrefix(head, []byte{0x1F, 0x8B}) || bytes.HasPrefix(head, []byte("BZh")) ||
		bytes.HasPrefix(head, []byte{0x28, 0xB5, 0x2F}) || bytes.HasPrefix(head, []byte{0xFD, '7', 'z'})
	if !compressed && n <= maxTmpfsContext && memAvailable() > 4*n {
		// Small files take a page each in a tmpfs: leave room (only what is used is allocated).
		size := 4*n + 64<<20
		if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0700,size="+strconv.FormatInt(size, 10)); err == nil {
			release = func() {
				if err := unix.Unmount(dir, unix.MNT_DETACH); err == nil {
					os.Remove(dir)
				} else {
					os.RemoveAll(dir)
				}
			}
		}
	}
	// The contents' digests are taken from the stream as it is extracted (the cache key of a COPY
	// then needs no file read again).
	var src io.Reader = br
	var idxDone chan contentIndex
	if !compressed {
		pr, pw := io.Pipe()
		idxDone = make(chan contentIndex, 1)
		go func() {
			idx := indexTar(pr, dir)
			io.Copy(io.Discard, pr)
			idxDone <- idx
		}()
		src = io.TeeReader(br, pw)
		defer pw.Close()
		err := extractContext(src, dir)
		io.Copy(pw, br) // whatever the extraction did not read (tar padding)
		pw.Close()
		idx := <-idxDone
		if err != nil {
			release()
			return "", nil, nil, err
		}
		return dir, idx, release, nil
	}
	if err := extractContext(src, dir); err != nil {
		release()
		return "", nil, nil, err
	}
	return dir, nil, release, nil
}

// contentIndex maps a context file's host path to the sha256 of its content, with the size and
// modification time it was extracted with (a file changed since is hashed again).
type contentIndex map[string]indexedFile

type indexedFile struct {
	size  int64
	mtime time.Time
	sum   string
}

func (idx contentIndex) lookup(p string, fi fs.FileInfo) (string, bool) {
	if idx == nil {
		return "", false
	}
	e, ok := idx[p]
	if !ok || e.size != fi.Size() || !e.mtime.Equal(fi.ModTime()) {
		return "", false
	}
	return e.sum, true
}

// indexTar reads a context tar and digests its regular files (names as extraction cleans them).
// Names seen twice, hard links and anything odd are left out: those are read from disk.
func indexTar(r io.Reader, dir string) contentIndex {
	idx := contentIndex{}
	drop := map[string]bool{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		name := path.Clean("/" + h.Name)
		if name == "/" || strings.Contains(h.Name, "..") {
			continue
		}
		p := filepath.Join(dir, filepath.FromSlash(name))
		if _, seen := idx[p]; seen || drop[p] || (h.Typeflag != tar.TypeReg && h.Typeflag != tar.TypeRegA) {
			delete(idx, p)
			drop[p] = true
			continue
		}
		sh := sha256.New()
		n, err := io.Copy(sh, tr)
		if err != nil || n != h.Size {
			break
		}
		idx[p] = indexedFile{size: h.Size, mtime: h.ModTime, sum: hex.EncodeToString(sh.Sum(nil))}
	}
	return idx
}

// memAvailable is MemAvailable from /proc/meminfo in bytes (0 when unknown).
func memAvailable() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if f := bytes.Fields(line); len(f) >= 2 && string(f[0]) == "MemAvailable:" {
			kb, _ := strconv.ParseInt(string(f[1]), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// cleanTmp removes what builds interrupted by a crash left under tmpRoot (context tmpfs mounts
// included).
func cleanTmp(tmpRoot string) {
	ents, err := os.ReadDir(tmpRoot)
	if err != nil {
		return
	}
	for _, e := range ents {
		p := filepath.Join(tmpRoot, e.Name())
		unix.Unmount(p, unix.MNT_DETACH)
		os.RemoveAll(p)
	}
}
