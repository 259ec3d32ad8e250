package build

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/distribution/reference"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"

	"github.com/wharfhq/wharf/internal/image"
	"github.com/wharfhq/wharf/internal/registry"
)

// ---- FROM: local image or pull ----

// baseImage resolves a FROM image: the local one, unless --pull was given or it is missing, in
// which case it is pulled (dockerd's legacy builder: --pull always pulls, and a failed pull fails
// the build even when the image is present locally).
func (bs *buildState) baseImage(ref string) (*image.Image, error) {
	if !bs.o.Pull || isImageID(ref) {
		img, err := bs.b.e.Images.Resolve(ref)
		if err == nil {
			return img, nil
		}
		if !image.IsNotFound(err) {
			return nil, err
		}
		if isImageID(ref) {
			return nil, errorf("No such image: %s", ref)
		}
	}
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return nil, errorf("invalid reference format: %s", ref)
	}
	if _, ok := named.(reference.Digested); !ok {
		named = reference.TagNameOnly(named)
	}
	var prog *registry.Progress
	if !bs.s.quiet {
		prog = registry.NewProgress(streamWriter{bs.s}, func() {}, func() {})
	}
	img, err := bs.b.registry().Pull(bs.ctx, bs.b.e.Images, named.String(), registry.PullOptions{Progress: prog})
	if err != nil {
		if bs.ctx.Err() != nil {
			return nil, bs.ctx.Err()
		}
		return nil, &Error{Msg: err.Error()}
	}
	return img, nil
}

func isImageID(ref string) bool {
	r := strings.TrimPrefix(ref, "sha256:")
	if len(r) != 64 {
		return false
	}
	for _, c := range r {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// streamWriter writes already-encoded JSON messages (pull progress) into the build stream.
type streamWriter struct{ s *stream }

func (w streamWriter) Write(p []byte) (int, error) {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	n, err := w.s.w.Write(p)
	if f, ok := w.s.w.(http.Flusher); ok {
		f.Flush()
	}
	return n, err
}

// registry is the client FROM pulls with (the daemon's, when it set one).
func (b *Builder) registry() *registry.Client {
	if b.Registry != nil {
		return b.Registry
	}
	return defaultRegistry
}

var defaultRegistry = &registry.Client{UserAgent: "wharf"}

// ---- ONBUILD ----

// parseTrigger parses one ONBUILD trigger ("RUN echo hi") into its instruction.
func parseTrigger(t string) (instructions.Command, error) {
	res, err := parser.Parse(strings.NewReader(t))
	if err != nil {
		return nil, parseErr(err)
	}
	if len(res.AST.Children) != 1 {
		return nil, errorf("onbuild trigger should be a single expression")
	}
	cmd, err := instructions.ParseCommand(res.AST.Children[0])
	if err != nil {
		return nil, parseErr(err)
	}
	return cmd, nil
}

// ---- here-documents ----

// pipesDir is where a RUN here-document with a shebang is mounted (as BuildKit does).
const pipesDir = "/dev/pipes"

// inlineScript is a RUN here-document run as a program of its own.
type inlineScript struct{ name, data string }

// write puts the script in a new host directory (to bind-mount read-only at pipesDir).
func (sc *inlineScript) write(tmpRoot string) (string, error) {
	dir, err := os.MkdirTemp(tmpRoot, "pipes-")
	if err != nil {
		return "", err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, sc.name), []byte(sc.data), 0o755); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

// runArgv is a RUN's argv, here-documents included, as BuildKit builds it: "RUN <<EOF" alone runs
// the document with the shell (or, when it starts with "#!", as a program mounted at
// /dev/pipes/<name>); a command with here-documents ("RUN cat <<EOF > f") goes to the shell with
// the documents appended, so the shell reads them.
func (bs *buildState) runArgv(st *stage, c *instructions.RunCommand) ([]string, *inlineScript, error) {
	if len(c.Files) == 0 {
		return bs.cmdline(st, c.ShellDependantCmdLine), nil, nil
	}
	args := c.CmdLine
	if len(args) != 1 || !c.PrependShell {
		return nil, nil, errorf("parsing produced an invalid run command: %v", args)
	}
	var script *inlineScript
	if hd := parser.MustParseHeredoc(args[0]); hd != nil {
		data := c.Files[0].Data
		if c.Files[0].Chomp {
			data = parser.ChompHeredocContent(data)
		}
		if strings.HasPrefix(data, "#!") {
			script = &inlineScript{name: c.Files[0].Name, data: data}
			args = []string{path.Join(pipesDir, c.Files[0].Name)}
		} else {
			args = []string{data}
		}
	} else {
		var b strings.Builder
		b.WriteString(args[0])
		for _, f := range c.Files {
			b.WriteByte('\n')
			b.WriteString(f.Data)
			b.WriteString(f.Name)
		}
		args = []string{b.String()}
	}
	return append(append([]string(nil), st.shell...), args...), script, nil
}

// inlineSources writes COPY/ADD here-documents ("COPY <<EOF /dst") as files (mode 0644, named
// after the document, as BuildKit does) and returns them as sources; done removes them.
func (bs *buildState) inlineSources(docs []instructions.SourceContent) ([]copySource, func(), error) {
	if len(docs) == 0 {
		return nil, func() {}, nil
	}
	dir, err := os.MkdirTemp(bs.tmpRoot, "heredoc-")
	if err != nil {
		return nil, nil, err
	}
	done := func() { os.RemoveAll(dir) }
	var out []copySource
	for i, d := range docs {
		name := path.Base("/" + d.Path)
		if name == "/" || name == "." {
			done()
			return nil, nil, errorf("invalid here-document name %q", d.Path)
		}
		sub := filepath.Join(dir, fmt.Sprint(i))
		if err := os.Mkdir(sub, 0o700); err != nil {
			done()
			return nil, nil, err
		}
		host := filepath.Join(sub, name)
		if err := os.WriteFile(host, []byte(d.Data), 0o644); err != nil {
			done()
			return nil, nil, err
		}
		if err := os.Chmod(host, 0o644); err != nil { // whatever the umask
			done()
			return nil, nil, err
		}
		fi, err := os.Lstat(host)
		if err != nil {
			done()
			return nil, nil, err
		}
		out = append(out, copySource{rel: name, host: host, fi: fi, plain: true})
	}
	return out, done, nil
}

// ---- ADD <url> ----

func isURL(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")
}

func isGitURL(s string) bool {
	return strings.HasPrefix(s, "git@") || strings.HasPrefix(s, "git://") || strings.HasSuffix(s, ".git") && strings.Contains(s, "://")
}

// httpClient fetches ADD's URLs (proxies from the daemon's environment, as dockerd).
var httpClient = &http.Client{Timeout: 10 * time.Minute}

// download fetches an ADD <url> source as dockerd's legacy builder does: the file is named after
// the URL's last path element, has mode 0600 and the Last-Modified time (else the zero time), and
// is never extracted. Errors are dockerd's ("Get \"http://…\": dial tcp …: connection refused",
// "failed to GET … with status 404 Not Found: …"). The file lives until the build ends.
func (bs *buildState) download(src string) (copySource, error) {
	u, err := url.Parse(src)
	if err != nil {
		return copySource{}, err
	}
	name := path.Base(u.Path)
	if name == "" || name == "/" || name == "." {
		return copySource{}, errorf("cannot determine filename from url: %s", u)
	}
	req, err := http.NewRequestWithContext(bs.ctx, http.MethodGet, src, nil)
	if err != nil {
		return copySource{}, err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			return copySource{}, errorf("%s", ue.Error())
		}
		return copySource{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return copySource{}, errorf("failed to GET %s with status %s: %s", src, resp.Status, bytes.TrimSpace(body))
	}
	dir, err := os.MkdirTemp(bs.tmpRoot, "download-")
	if err != nil {
		return copySource{}, err
	}
	bs.tmpDirs = append(bs.tmpDirs, dir)
	host := filepath.Join(dir, name)
	f, err := os.OpenFile(host, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return copySource{}, err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return copySource{}, err
	}
	if err := f.Close(); err != nil {
		return copySource{}, err
	}
	if !bs.s.quiet {
		bs.s.print("\n")
	}
	var mt time.Time
	if lm := resp.Header.Get("Last-Modified"); lm != "" {
		if t, err := http.ParseTime(lm); err == nil {
			mt = t
		}
	}
	if err := os.Chtimes(host, mt, mt); err != nil {
		return copySource{}, err
	}
	fi, err := os.Lstat(host)
	if err != nil {
		return copySource{}, err
	}
	if !fi.Mode().IsRegular() {
		return copySource{}, &fs.PathError{Op: "download", Path: src, Err: fs.ErrInvalid}
	}
	return copySource{rel: name, host: host, fi: fi, plain: true}, nil
}
