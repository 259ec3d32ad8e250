package main

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	units "github.com/docker/go-units"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"
)

type cpOptions struct {
	followLink  bool
	copyUIDGID  bool
	quiet       bool
	source      string
	destination string
}

func (c *cli) newCpCommand() *cobra.Command {
	var o cpOptions
	cmd := &cobra.Command{
		Use: `cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-
	wharf cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH`,
		Short: "Copy files/folders between a container and the local filesystem",
		Long: `Copy files/folders between a container and the local filesystem

Use '-' as the source to read a tar archive from stdin
and extract it to a directory destination in a container.
Use '-' as the destination to stream a tar archive of a
container source to stdout.`,
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if args[0] == "" {
				return errors.New("source can not be empty")
			}
			if args[1] == "" {
				return errors.New("destination can not be empty")
			}
			o.source, o.destination = args[0], args[1]
			if !cmd.Flag("quiet").Changed {
				_, isTerm := isTerminal(c.out)
				o.quiet = !isTerm
			}
			return c.runCp(&o)
		},
	}
	flags := cmd.Flags()
	flags.BoolVarP(&o.followLink, "follow-link", "L", false, "Always follow symbol link in SRC_PATH")
	flags.BoolVarP(&o.copyUIDGID, "archive", "a", false, "Archive mode (copy all uid/gid information)")
	flags.BoolVarP(&o.quiet, "quiet", "q", false, "Suppress progress output during copy. Progress output is automatically suppressed if no terminal is attached")
	return cmd
}

// splitCpArg splits "container:path"; absolute paths and "./x:y" are local.
func splitCpArg(arg string) (ctr, p string) {
	if filepath.IsAbs(arg) {
		return "", arg
	}
	ctr, p, ok := strings.Cut(arg, ":")
	if !ok || strings.HasPrefix(ctr, ".") {
		return "", arg
	}
	return ctr, p
}

// preserveTrailing keeps a trailing "/" or "/." that filepath.Abs dropped (they change cp's meaning).
func preserveTrailing(cleaned, original string) string {
	switch {
	case strings.HasSuffix(original, string(filepath.Separator)+".") || original == ".":
		if !strings.HasSuffix(cleaned, string(filepath.Separator)+".") {
			if !strings.HasSuffix(cleaned, string(filepath.Separator)) {
				cleaned += string(filepath.Separator)
			}
			cleaned += "."
		}
	case strings.HasSuffix(original, string(filepath.Separator)):
		if !strings.HasSuffix(cleaned, string(filepath.Separator)) {
			cleaned += string(filepath.Separator)
		}
	}
	return cleaned
}

func (c *cli) runCp(o *cpOptions) error {
	srcCtr, srcPath := splitCpArg(o.source)
	dstCtr, dstPath := splitCpArg(o.destination)
	switch {
	case srcCtr != "" && dstCtr != "":
		return errors.New("copying between containers is not supported")
	case srcCtr != "":
		return c.copyFromContainer(srcCtr, srcPath, dstPath, o)
	case dstCtr != "":
		return c.copyToContainer(dstCtr, srcPath, dstPath, o)
	default:
		return errors.New("must specify at least one container source")
	}
}

type countingReader struct {
	r io.Reader
	n int64
}

func (cr *countingReader) Read(p []byte) (int, error) {
	n, err := cr.r.Read(p)
	cr.n += int64(n)
	return n, err
}

func (c *cli) copyFromContainer(ctr, srcPath, dstPath string, o *cpOptions) error {
	if dstPath != "-" {
		abs, err := filepath.Abs(dstPath)
		if err != nil {
			return err
		}
		dstPath = preserveTrailing(abs, dstPath)
	}
	ctx, cancel := c.signalContext()
	defer cancel()
	api, err := c.client()
	if err != nil {
		return err
	}
	rebase := ""
	if o.followLink {
		st, err := api.ContainerStatPath(ctx, ctr, client.ContainerStatPathOptions{Path: srcPath})
		if err == nil && st.Stat.Mode&os.ModeSymlink != 0 {
			target := st.Stat.LinkTarget
			if !path.IsAbs(target) {
				target = path.Join(path.Dir(srcPath), target)
			}
			rebase = path.Base(srcPath)
			srcPath = target
		}
	}
	res, err := api.CopyFromContainer(ctx, ctr, client.CopyFromContainerOptions{SourcePath: srcPath})
	if err != nil {
		return err
	}
	defer res.Content.Close()
	if dstPath == "-" {
		_, err := io.Copy(c.out, res.Content)
		return err
	}
	cr := &countingReader{r: res.Content}
	srcBase := res.Stat.Name
	if srcBase == "" {
		srcBase = path.Base(srcPath)
	}
	err = extractCopy(cr, srcBase, rebase, srcPath, res.Stat.Mode.IsDir(), dstPath, o.copyUIDGID)
	if err == nil && !o.quiet {
		fmt.Fprintln(c.err, "Successfully copied", units.HumanSizeWithPrecision(float64(cr.n), 3), "to", dstPath)
	}
	return err
}

// extractCopy writes the archive of srcBase (a file or a directory, as `docker cp` names it) to dst with
// docker's rules: into an existing directory as dst/srcBase (or its contents for "src/."), else as dst itself.
func extractCopy(r io.Reader, srcBase, rebase, srcPath string, srcIsDir bool, dst string, keepOwner bool) error {
	contentsOnly := strings.HasSuffix(srcPath, "/.")
	dstClean := filepath.Clean(dst)
	st, err := os.Stat(dstClean)
	var root string
	switch {
	case err == nil && st.IsDir():
		if contentsOnly {
			root = dstClean
		} else {
			name := srcBase
			if rebase != "" {
				name = rebase
			}
			root = filepath.Join(dstClean, name)
		}
	case err == nil:
		if srcIsDir {
			return fmt.Errorf("cannot copy directory to file %q", dst)
		}
		root = dstClean
	case errors.Is(err, os.ErrNotExist):
		if strings.HasSuffix(dst, string(filepath.Separator)) && !srcIsDir {
			return fmt.Errorf("destination %q: no such directory", dst)
		}
		parent := filepath.Dir(dstClean)
		if pst, perr := os.Stat(parent); perr != nil || !pst.IsDir() {
			return fmt.Errorf("destination %q: no such directory", parent)
		}
		root = dstClean
	default:
		return err
	}
	return untarRebased(r, srcBase, root, keepOwner)
}

// untarRebased extracts entries "srcBase[/…]" of r to root[/…], refusing entries that would land outside root.
func untarRebased(r io.Reader, srcBase, root string, keepOwner bool) error {
	tr := tar.NewReader(r)
	type dirTime struct {
		path string
		mt   time.Time
	}
	var dirs []dirTime
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		name := strings.TrimPrefix(path.Clean("/"+hdr.Name), "/")
		rel := ""
		switch {
		case name == srcBase:
		case strings.HasPrefix(name, srcBase+"/"):
			rel = strings.TrimPrefix(name, srcBase+"/")
		case srcBase == "." || srcBase == "/":
			rel = name
		default:
			rel = name
		}
		target := root
		if rel != "" {
			target = filepath.Join(root, filepath.FromSlash(rel))
		}
		if target != root && !strings.HasPrefix(target, root+string(filepath.Separator)) {
			return fmt.Errorf("invalid archive entry %q", hdr.Name)
		}
		// Never write through a symlink that the archive itself made.
		if parent := filepath.Dir(target); parent != root && strings.HasPrefix(parent, root) {
			if fi, err := os.Lstat(parent); err == nil && fi.Mode()&os.ModeSymlink != 0 {
				return fmt.Errorf("invalid archive entry %q: parent is a symlink", hdr.Name)
			}
		}
		mode := os.FileMode(hdr.Mode & 0o7777)
		switch hdr.Typeflag {
		case tar.TypeDir:
			if fi, err := os.Lstat(target); err == nil && !fi.IsDir() {
				if err := os.Remove(target); err != nil {
					return err
				}
			}
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
			_ = os.Chmod(target, mode)
			dirs = append(dirs, dirTime{target, hdr.ModTime})
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			if fi, err := os.Lstat(target); err == nil && (fi.Mode()&os.ModeSymlink != 0 || fi.IsDir()) {
				if fi.IsDir() {
					return fmt.Errorf("cannot overwrite directory %q with non-directory", target)
				}
				_ = os.Remove(target)
			}
			f, err := os.OpenFile(target, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, mode)
			if err != nil {
				return err
			}
			if _, err := io.Copy(f, tr); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			_ = os.Chmod(target, mode)
			_ = os.Chtimes(target, hdr.ModTime, hdr.ModTime)
		case tar.TypeSymlink:
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			_ = os.Remove(target)
			if err := os.Symlink(hdr.Linkname, target); err != nil {
				return err
			}
		case tar.TypeLink:
			lname := strings.TrimPrefix(path.Clean("/"+hdr.Linkname), "/")
			lrel := strings.TrimPrefix(strings.TrimPrefix(lname, srcBase), "/")
			src := filepath.Join(root, filepath.FromSlash(lrel))
			if src != root && !strings.HasPrefix(src, root+string(filepath.Separator)) {
				return fmt.Errorf("invalid hard link %q", hdr.Linkname)
			}
			_ = os.Remove(target)
			if err := os.Link(src, target); err != nil {
				return err
			}
		default:
			// Devices, fifos and the like are not copied out.
			continue
		}
		if keepOwner {
			_ = os.Lchown(target, hdr.Uid, hdr.Gid)
		}
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		_ = os.Chtimes(dirs[i].path, dirs[i].mt, dirs[i].mt)
	}
	return nil
}

func (c *cli) copyToContainer(ctr, srcPath, dstPath string, o *cpOptions) error {
	if srcPath != "-" {
		abs, err := filepath.Abs(srcPath)
		if err != nil {
			return err
		}
		srcPath = preserveTrailing(abs, srcPath)
	}
	ctx, cancel := c.signalContext()
	defer cancel()
	api, err := c.client()
	if err != nil {
		return err
	}
	dstInfoPath := dstPath
	dstExists, dstIsDir := false, false
	st, err := api.ContainerStatPath(ctx, ctr, client.ContainerStatPathOptions{Path: dstPath})
	if err == nil && st.Stat.Mode&os.ModeSymlink != 0 {
		target := st.Stat.LinkTarget
		if !path.IsAbs(target) {
			target = path.Join(path.Dir(dstPath), target)
		}
		dstInfoPath = target
		st, err = api.ContainerStatPath(ctx, ctr, client.ContainerStatPathOptions{Path: target})
	}
	if err == nil {
		m := st.Stat.Mode
		if !m.IsDir() && !m.IsRegular() {
			return fmt.Errorf(`destination "%s:%s" must be a directory or a regular file`, ctr, dstPath)
		}
		dstExists, dstIsDir = true, m.IsDir()
	}

	var content io.Reader
	var resolved string
	cr := &countingReader{}
	if srcPath == "-" {
		if !dstIsDir {
			return fmt.Errorf("destination \"%s:%s\" must be a directory", ctr, dstPath)
		}
		content, resolved = c.in, dstInfoPath
	} else {
		fi, err := os.Lstat(strings.TrimSuffix(strings.TrimSuffix(srcPath, "/."), "/"))
		if err != nil {
			return err
		}
		if o.followLink && fi.Mode()&os.ModeSymlink != 0 {
			if fi, err = os.Stat(srcPath); err != nil {
				return err
			}
		}
		srcIsDir := fi.IsDir()
		if !dstExists && strings.HasSuffix(dstPath, "/") && !srcIsDir {
			return fmt.Errorf("destination \"%s:%s\": no such directory", ctr, dstPath)
		}
		if dstExists && !dstIsDir && srcIsDir {
			return errors.New("cannot copy a directory to a file")
		}
		name := filepath.Base(strings.TrimSuffix(strings.TrimSuffix(srcPath, "/."), "/"))
		contentsOnly := strings.HasSuffix(srcPath, "/.")
		var entryName string
		switch {
		case dstExists && dstIsDir:
			resolved = dstInfoPath
			entryName = name
			if contentsOnly {
				entryName = ""
			}
		default:
			resolved = path.Dir(strings.TrimSuffix(dstInfoPath, "/"))
			entryName = path.Base(strings.TrimSuffix(dstInfoPath, "/"))
		}
		pr, pw := io.Pipe()
		go func() {
			pw.CloseWithError(tarPath(pw, strings.TrimSuffix(srcPath, "/."), entryName, o.followLink))
		}()
		defer pr.Close()
		content = pr
	}
	cr.r = content
	_, err = api.CopyToContainer(ctx, ctr, client.CopyToContainerOptions{
		DestinationPath: resolved, Content: cr, CopyUIDGID: o.copyUIDGID,
	})
	if err == nil && !o.quiet {
		fmt.Fprintln(c.err, "Successfully copied", units.HumanSizeWithPrecision(float64(cr.n), 3), "to", ctr+":"+dstInfoPath)
	}
	return err
}

// tarPath writes src (file or directory tree) as a tar stream whose top entry is named entry ("" puts a
// directory's contents at the top).
func tarPath(w io.Writer, src, entry string, followTop bool) error {
	tw := tar.NewWriter(w)
	src = strings.TrimSuffix(src, "/")
	links := map[[2]uint64]string{}
	err := filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if p == src && followTop && fi.Mode()&os.ModeSymlink != 0 {
			if fi, err = os.Stat(p); err != nil {
				return err
			}
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		name := entry
		if rel != "." {
			name = path.Join(entry, filepath.ToSlash(rel))
		}
		if name == "" {
			return nil
		}
		link := ""
		if fi.Mode()&os.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		hdr.Name = name
		if fi.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uname, hdr.Gname = "", ""
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			hdr.Uid, hdr.Gid = int(st.Uid), int(st.Gid)
			if fi.Mode().IsRegular() && st.Nlink > 1 {
				key := [2]uint64{uint64(st.Dev), st.Ino}
				if first, ok := links[key]; ok {
					hdr.Typeflag = tar.TypeLink
					hdr.Linkname = first
					hdr.Size = 0
				} else {
					links[key] = name
				}
			}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if hdr.Typeflag == tar.TypeReg {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, f)
			f.Close()
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return tw.Close()
}
