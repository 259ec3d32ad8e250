package build

import (
	"archive/tar"
	"errors"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	securejoin "github.com/cyphar/filepath-securejoin"
)

// COPY and ADD write their layer directly: the tar writeCopyTar produces (final paths) becomes the
// layer, with each entry's parent directories resolved inside the image's rootfs and the parents
// the image already has recorded with their metadata, as an overlay copy-up would record them.
// Nothing is written into a container, so a COPY of many files creates (and later deletes) no
// files besides the layer blob. Entries that need the extraction semantics (hard links, names
// that look like whiteouts, special files) make it fall back to extracting into a container.

var errNeedExtract = errors.New("copy needs extraction")

// layerWriter turns a COPY tar into a layer for the image whose rootfs is mounted at rootfs.
type layerWriter struct {
	rootfs  string
	tw      *tar.Writer
	resolve map[string]string // lexical directory (in-root, no leading "/") → real path
	present map[string]bool   // real directories the layer has an entry for
}

func writeLayer(r io.Reader, w io.Writer, rootfs string) error {
	lw := &layerWriter{rootfs: rootfs, tw: tar.NewWriter(w), resolve: map[string]string{"": ""}, present: map[string]bool{}}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return lw.tw.Close()
		}
		if err != nil {
			return err
		}
		switch h.Typeflag {
		case tar.TypeReg, tar.TypeDir, tar.TypeSymlink:
		default:
			return errNeedExtract
		}
		name := strings.Trim(path.Clean("/"+h.Name), "/")
		if name == "" {
			continue
		}
		base := path.Base(name)
		if strings.HasPrefix(base, ".wh.") {
			return errNeedExtract
		}
		dir, err := lw.dir(path.Dir(name))
		if err != nil {
			return err
		}
		real := path.Join(dir, base)
		h.Name = real
		if h.Typeflag == tar.TypeDir {
			h.Name += "/"
			lw.present[real] = true
			lw.resolve[name] = real
		}
		if err := lw.tw.WriteHeader(h); err != nil {
			return err
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := io.Copy(lw.tw, tr); err != nil {
				return err
			}
		}
	}
}

// dir resolves a lexical directory path to its real path in the image (symlinks followed inside
// the rootfs), adding entries for the directories on the way that the image has.
func (lw *layerWriter) dir(lex string) (string, error) {
	if lex == "." || lex == "/" {
		lex = ""
	}
	if r, ok := lw.resolve[lex]; ok {
		return r, nil
	}
	parent, err := lw.dir(path.Dir(lex))
	if err != nil {
		return "", err
	}
	cand := path.Join(parent, path.Base(lex))
	real := cand
	if !lw.present[cand] {
		fi, err := os.Lstat(filepath.Join(lw.rootfs, cand))
		switch {
		case errors.Is(err, os.ErrNotExist):
			// Made by a later entry of this COPY (writeCopyTar emits missing directories first).
		case err != nil:
			return "", err
		case fi.Mode()&os.ModeSymlink != 0:
			host, err := securejoin.SecureJoin(lw.rootfs, cand)
			if err != nil {
				return "", err
			}
			rel, err := filepath.Rel(lw.rootfs, host)
			if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
				return "", errNeedExtract
			}
			if rel == "." {
				rel = ""
			}
			real = filepath.ToSlash(rel)
			if err := lw.ensure(real); err != nil {
				return "", err
			}
		case fi.IsDir():
			if err := lw.copyUp(cand, fi); err != nil {
				return "", err
			}
		default:
			return "", errNeedExtract // a file where a directory is needed
		}
	}
	lw.resolve[lex] = real
	return real, nil
}

// ensure adds entries for the existing directories of a real path (no symlinks on it).
func (lw *layerWriter) ensure(real string) error {
	if real == "" || real == "." || lw.present[real] {
		return nil
	}
	if err := lw.ensure(path.Dir(real)); err != nil {
		return err
	}
	fi, err := os.Lstat(filepath.Join(lw.rootfs, real))
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return err
	case !fi.IsDir():
		return errNeedExtract
	}
	return lw.copyUp(real, fi)
}

// copyUp records an existing directory of the image with its metadata.
func (lw *layerWriter) copyUp(real string, fi os.FileInfo) error {
	if real == "" || real == "." || lw.present[real] {
		return nil
	}
	h, err := tar.FileInfoHeader(fi, "")
	if err != nil {
		return err
	}
	h.Name = real + "/"
	h.Uname, h.Gname = "", ""
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		h.Uid, h.Gid = int(st.Uid), int(st.Gid)
	}
	h.AccessTime, h.ChangeTime = h.ModTime, h.ModTime
	h.Format = tar.FormatPAX
	lw.present[real] = true
	return lw.tw.WriteHeader(h)
}
