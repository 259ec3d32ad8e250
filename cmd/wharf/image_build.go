package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/distribution/reference"
	units "github.com/docker/go-units"
	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/api/types/registry"
	"github.com/moby/moby/client"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
	"github.com/spf13/cobra"
)

// buildOptions are `wharf build`'s flags; the build goes through the legacy POST /build API.
type buildOptions struct {
	context    string
	tags       []string
	dockerfile string
	buildArgs  []string
	target     string
	noCache    bool
	quiet      bool
	iidFile    string
	labels     []string
	pull       bool
	rm         bool
	forceRm    bool
	network    string
	platform   string
	shmSize    memBytes
	memory     memBytes
	extraHosts []string
	cacheFrom  []string
}

func (c *cli) newBuildCommand() *cobra.Command {
	var o buildOptions
	cmd := &cobra.Command{
		Use:   "build [OPTIONS] PATH | URL | -",
		Short: "Build an image from a Dockerfile",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.context = args[0]
			return c.runBuild(&o)
		},
	}
	flags := cmd.Flags()
	listVarP(flags, &o.tags, "tag", "t", `Name and optionally a tag in the "name:tag" format`)
	flags.StringVarP(&o.dockerfile, "file", "f", "", `Name of the Dockerfile (Default is "PATH/Dockerfile")`)
	listVarP(flags, &o.buildArgs, "build-arg", "", "Set build-time variables")
	flags.StringVar(&o.target, "target", "", "Set the target build stage to build.")
	flags.BoolVar(&o.noCache, "no-cache", false, "Do not use cache when building the image")
	flags.BoolVarP(&o.quiet, "quiet", "q", false, "Suppress the build output and print image ID on success")
	flags.StringVar(&o.iidFile, "iidfile", "", "Write the image ID to the file")
	listVarP(flags, &o.labels, "label", "", "Set metadata for an image")
	flags.BoolVar(&o.pull, "pull", false, "Always attempt to pull a newer version of the image")
	flags.BoolVar(&o.rm, "rm", true, "Remove intermediate containers after a successful build")
	flags.BoolVar(&o.forceRm, "force-rm", false, "Always remove intermediate containers")
	flags.StringVar(&o.network, "network", "default", "Set the networking mode for the RUN instructions during build")
	flags.StringVar(&o.platform, "platform", "", "Set platform if server is multi-platform capable")
	flags.Var(&o.shmSize, "shm-size", "Size of \"/dev/shm\"")
	flags.VarP(&o.memory, "memory", "m", "Memory limit")
	listVarP(flags, &o.extraHosts, "add-host", "", "Add a custom host-to-IP mapping (\"host:ip\")")
	listVarP(flags, &o.cacheFrom, "cache-from", "", "Images to consider as cache sources")
	return cmd
}

// buildArgsMap turns --build-arg values into the API map: "K=V" → V, a bare "K" takes this process's $K
// (left out when unset).
func buildArgsMap(args []string) map[string]*string {
	m := map[string]*string{}
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if ok {
			val := v
			m[k] = &val
			continue
		}
		if env, found := os.LookupEnv(k); found {
			val := env
			m[k] = &val
		} else {
			m[k] = nil
		}
	}
	return m
}

// request converts the flags to the API options (Dockerfile is the name inside the context).
func (o *buildOptions) request(dockerfileInContext string) client.ImageBuildOptions {
	req := client.ImageBuildOptions{
		Tags:           o.tags,
		SuppressOutput: o.quiet,
		NoCache:        o.noCache,
		Remove:         o.rm,
		ForceRemove:    o.forceRm,
		PullParent:     o.pull,
		Dockerfile:     dockerfileInContext,
		BuildArgs:      buildArgsMap(o.buildArgs),
		Labels:         kvStringsToMap(o.labels),
		Target:         o.target,
		NetworkMode:    o.network,
		ShmSize:        o.shmSize.Value(),
		Memory:         o.memory.Value(),
		ExtraHosts:     o.extraHosts,
		CacheFrom:      o.cacheFrom,
		AuthConfigs:    map[string]registry.AuthConfig{},
		Version:        build.BuilderV1,
	}
	if o.platform != "" {
		if p, err := parsePlatform(o.platform); err == nil {
			req.Platforms = append(req.Platforms, p)
		}
	}
	return req
}

func (c *cli) runBuild(o *buildOptions) error {
	for _, t := range o.tags {
		if err := validateTag(t); err != nil {
			return err
		}
	}
	if o.iidFile != "" {
		if err := os.Remove(o.iidFile); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("Removing image ID file: %w", err)
		}
	}
	var (
		body       io.Reader
		dockerfile string
		remote     string
		err        error
	)
	switch {
	case o.context == "-":
		if o.dockerfile == "-" {
			return errors.New("invalid argument: can't use stdin for both build context and dockerfile")
		}
		body, dockerfile, err = stdinContext(c.in, o.dockerfile)
	case strings.HasPrefix(o.context, "http://") || strings.HasPrefix(o.context, "https://") ||
		strings.HasPrefix(o.context, "git://") || strings.HasPrefix(o.context, "github.com/") || strings.HasSuffix(o.context, ".git"):
		remote = o.context
		dockerfile = o.dockerfile
	default:
		var pr io.ReadCloser
		pr, dockerfile, err = dirContext(o.context, o.dockerfile, c.in)
		if pr != nil {
			defer pr.Close()
		}
		body = pr
	}
	if err != nil {
		return err
	}
	// With -q, the upload line is shown only on failure and the stream (just the ID) only on success.
	var progress, sending io.Writer = c.out, c.out
	var quietBuf, sendBuf bytes.Buffer
	if o.quiet {
		progress, sending = &quietBuf, &sendBuf
	}
	req := o.request(dockerfile)
	req.RemoteContext = remote
	if remote != "" {
		body = nil
	}
	if body != nil {
		counter := &sendCounter{r: body, out: sending}
		body = counter
	}
	api, err := c.client()
	if err != nil {
		return err
	}
	ctx, cancel := c.signalContext()
	defer cancel()
	res, err := api.ImageBuild(ctx, body, req)
	if err != nil {
		if o.quiet {
			fmt.Fprint(c.err, sendBuf.String())
		}
		return err
	}
	defer res.Body.Close()
	var imageID string
	aux := func(raw json.RawMessage) {
		var r struct{ ID string }
		if json.Unmarshal(raw, &r) == nil && r.ID != "" {
			imageID = r.ID
		}
	}
	_, isTerm := isTerminal(c.out)
	if err := displayJSONStream(res.Body, progress, isTerm && !o.quiet, aux); err != nil {
		var se streamError
		if errors.As(err, &se) {
			if o.quiet {
				fmt.Fprint(c.err, sendBuf.String()+quietBuf.String())
			}
			code := se.Code
			if code == 0 {
				code = 1
			}
			return statusError{Status: se.Message, Code: code}
		}
		return err
	}
	if o.quiet {
		fmt.Fprint(c.out, quietBuf.String())
	}
	if o.iidFile != "" {
		if imageID == "" {
			return errors.New("Server did not provide an image ID. Cannot write image ID file")
		}
		if err := writeFileAtomic(o.iidFile, []byte(imageID), 0o666); err != nil {
			return fmt.Errorf("Failed to write image ID to file: %w", err)
		}
	}
	return nil
}

func validateTag(t string) error {
	if _, err := reference.ParseNormalizedNamed(t); err != nil {
		return statusError{Status: fmt.Sprintf("invalid argument %q for \"-t, --tag\" flag: %v\n\nUsage:  wharf build [OPTIONS] PATH | URL | -\n\nRun 'wharf build --help' for more information", t, err), Code: 125}
	}
	return nil
}

// sendCounter counts the context bytes and prints docker's "Sending build context" line when it is all sent.
type sendCounter struct {
	r    io.Reader
	out  io.Writer
	n    int64
	done bool
}

func (s *sendCounter) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	s.n += int64(n)
	if errors.Is(err, io.EOF) && !s.done {
		s.done = true
		fmt.Fprintf(s.out, "Sending build context to Docker daemon  %s\r\r\n", units.HumanSize(float64(s.n)))
	}
	return n, err
}

// stdinContext reads a build context from stdin: a tar archive (possibly compressed) is sent as is; anything
// else is a Dockerfile, sent in a one-file context.
func stdinContext(in io.Reader, dockerfile string) (io.Reader, string, error) {
	br := bufio.NewReaderSize(in, 1024)
	head, _ := br.Peek(512)
	if isArchive(head) {
		return br, dockerfile, nil
	}
	data, err := io.ReadAll(br)
	if err != nil {
		return nil, "", err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "Dockerfile", Mode: 0o600, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
		return nil, "", err
	}
	if _, err := tw.Write(data); err != nil {
		return nil, "", err
	}
	if err := tw.Close(); err != nil {
		return nil, "", err
	}
	return &buf, "Dockerfile", nil
}

func isArchive(h []byte) bool {
	switch {
	case bytes.HasPrefix(h, []byte{0x1F, 0x8B, 0x08}), // gzip
		bytes.HasPrefix(h, []byte{0x42, 0x5A, 0x68}),                   // bzip2
		bytes.HasPrefix(h, []byte{0xFD, 0x37, 0x7A, 0x58, 0x5A, 0x00}), // xz
		bytes.HasPrefix(h, []byte{0x28, 0xB5, 0x2F, 0xFD}):             // zstd
		return true
	}
	return len(h) >= 262 && (bytes.Equal(h[257:262], []byte("ustar")))
}

// readDockerignore returns the exclude patterns for the context: <Dockerfile>.dockerignore next to the
// Dockerfile wins over the context's .dockerignore.
func readDockerignore(contextDir, dockerfilePath string) ([]string, error) {
	candidates := []string{}
	if dockerfilePath != "" {
		candidates = append(candidates, dockerfilePath+".dockerignore")
	}
	candidates = append(candidates, filepath.Join(contextDir, ".dockerignore"))
	for _, p := range candidates {
		f, err := os.Open(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return ignorefile.ReadAll(f)
	}
	return nil, nil
}

// dirContext tars a context directory, leaving out what .dockerignore excludes (but always sending the
// Dockerfile and .dockerignore). A Dockerfile outside the context (or "-f -") is added under a random name.
// It returns the stream and the Dockerfile's name inside the context.
func dirContext(dir, dockerfile string, stdin io.Reader) (io.ReadCloser, string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, "", err
	}
	st, err := os.Stat(abs)
	if err != nil {
		return nil, "", fmt.Errorf("unable to prepare context: path %q not found", dir)
	}
	if !st.IsDir() {
		return nil, "", fmt.Errorf("unable to prepare context: context must be a directory: %s", abs)
	}
	var extraName string
	var extraData []byte
	inContext := ""
	var dfPath string
	switch {
	case dockerfile == "-":
		if extraData, err = io.ReadAll(stdin); err != nil {
			return nil, "", err
		}
		extraName = ".dockerfile." + randomHex(10)
	case dockerfile == "":
		dfPath = filepath.Join(abs, "Dockerfile")
		if _, err := os.Stat(dfPath); err != nil {
			if _, err2 := os.Stat(filepath.Join(abs, "dockerfile")); err2 == nil {
				dfPath = filepath.Join(abs, "dockerfile")
			} else {
				return nil, "", fmt.Errorf("unable to prepare context: unable to evaluate symlinks in Dockerfile path: lstat %s: no such file or directory", dfPath)
			}
		}
		inContext = filepath.Base(dfPath)
	default:
		dfPath = dockerfile
		if !filepath.IsAbs(dfPath) {
			dfPath = filepath.Join(abs, dfPath)
			if _, err := os.Stat(dfPath); err != nil {
				if wd, werr := filepath.Abs(dockerfile); werr == nil {
					if _, err2 := os.Stat(wd); err2 == nil {
						dfPath = wd
					}
				}
			}
		}
		if _, err := os.Stat(dfPath); err != nil {
			return nil, "", fmt.Errorf("unable to prepare context: unable to evaluate symlinks in Dockerfile path: lstat %s: no such file or directory", dfPath)
		}
		rel, err := filepath.Rel(abs, dfPath)
		if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			if extraData, err = os.ReadFile(dfPath); err != nil {
				return nil, "", err
			}
			extraName = ".dockerfile." + randomHex(10)
		} else {
			inContext = filepath.ToSlash(rel)
		}
	}
	excludes, err := readDockerignore(abs, dfPath)
	if err != nil {
		return nil, "", err
	}
	// The Dockerfile and .dockerignore are always sent (the daemon needs them; it ignores them itself).
	if len(excludes) > 0 {
		excludes = append(excludes, "!.dockerignore")
		if inContext != "" {
			excludes = append(excludes, "!"+inContext)
		}
	}
	pm, err := patternmatcher.New(excludes)
	if err != nil {
		return nil, "", fmt.Errorf("error checking context: %w", err)
	}
	name := inContext
	if extraName != "" {
		name = extraName
	}
	pr, pw := io.Pipe()
	go func() {
		err := writeContextTar(pw, abs, pm, extraName, extraData)
		pw.CloseWithError(err)
	}()
	return pr, name, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)[:n]
}

// contextFiles lists the context's relative paths that the matcher keeps (directories skipped whole when no
// exception could bring anything inside back).
func contextFiles(root string, pm *patternmatcher.PatternMatcher) ([]string, error) {
	var out []string
	type parentInfo = patternmatcher.MatchInfo
	infos := map[string]parentInfo{}
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			if os.IsPermission(err) {
				return fmt.Errorf("can't stat '%s'", p)
			}
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		parent := path.Dir(rel)
		matched, info, err := pm.MatchesUsingParentResults(rel, infos[parent])
		if err != nil {
			return err
		}
		if fi.IsDir() {
			infos[rel] = info
		}
		if matched {
			if fi.IsDir() && !pm.Exclusions() {
				return filepath.SkipDir
			}
			return nil
		}
		out = append(out, rel)
		return nil
	})
	return out, err
}

func writeContextTar(w io.Writer, root string, pm *patternmatcher.PatternMatcher, extraName string, extraData []byte) error {
	files, err := contextFiles(root, pm)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	seen := map[[2]uint64]string{}
	for _, rel := range files {
		p := filepath.Join(root, filepath.FromSlash(rel))
		fi, err := os.Lstat(p)
		if err != nil {
			return err
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
		hdr.Name = rel
		if fi.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && fi.Mode().IsRegular() && st.Nlink > 1 {
			key := [2]uint64{uint64(st.Dev), st.Ino}
			if first, ok := seen[key]; ok {
				hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first, 0
			} else {
				seen[key] = rel
			}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if hdr.Typeflag == tar.TypeReg && hdr.Size > 0 {
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
	}
	if extraName != "" {
		if err := tw.WriteHeader(&tar.Header{Name: extraName, Mode: 0o600, Size: int64(len(extraData)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		if _, err := tw.Write(extraData); err != nil {
			return err
		}
	}
	return tw.Close()
}
