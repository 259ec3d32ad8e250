package build

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	goruntime "runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/distribution/reference"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	"github.com/moby/moby/api/types/container"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/wharfhq/wharf/internal/engine"
	"github.com/wharfhq/wharf/internal/image"
	"github.com/wharfhq/wharf/internal/snapshot"
)

func normalizeTag(t string) (string, error) {
	n, err := reference.ParseNormalizedNamed(t)
	if err != nil {
		return "", err
	}
	if _, ok := n.(reference.Digested); ok {
		return "", fmt.Errorf("refusing to create a tag with a digest reference")
	}
	return reference.FamiliarString(reference.TagNameOnly(n)), nil
}

var defaultShell = []string{"/bin/sh", "-c"}

// stage is the state of one build stage.
type stage struct {
	name   string
	img    *image.Image // nil: FROM scratch and nothing made yet
	cfg    image.Config
	shell  []string
	cmdSet bool
}

func (st *stage) parentID() digest.Digest {
	if st.img == nil {
		return ""
	}
	return st.img.ID
}

type buildState struct {
	b      *Builder
	o      Options
	s      *stream
	ctx    context.Context
	ctxDir string
	// ctxIndex has the digests of the context's files, from the tar as it was extracted.
	ctxIndex contentIndex
	tmpRoot  string
	df       *Dockerfile
	args     *argScope
	stages   []*stage
	step     int
	total    int
	// containers this build made that are not removed yet.
	containers []string
	// host directories (downloads) removed when the build ends.
	tmpDirs []string
}

func (bs *buildState) cleanup() {
	for _, d := range bs.tmpDirs {
		os.RemoveAll(d)
	}
	for _, id := range bs.containers {
		bs.b.removeContainer(id)
	}
}

func (bs *buildState) forget(id string) {
	for i, c := range bs.containers {
		if c == id {
			bs.containers = append(bs.containers[:i], bs.containers[i+1:]...)
			return
		}
	}
}

// keep leaves a failed step's container in place (Docker keeps it without --force-rm).
func (bs *buildState) keep(id string) {
	if !bs.o.ForceRemove && bs.ctx.Err() == nil {
		bs.forget(id)
	}
}

func (bs *buildState) run() (digest.Digest, error) {
	stages := bs.df.Stages
	last := len(stages) - 1
	if bs.o.Target != "" {
		i, ok := instructions.HasStage(stages, bs.o.Target)
		if !ok {
			return "", errorf("failed to reach build target %s in Dockerfile", bs.o.Target)
		}
		last = i
	}
	stages = stages[:last+1]
	bs.total = len(bs.df.MetaArgs)
	for _, st := range stages {
		bs.total += 1 + len(st.Commands)
	}
	if len(bs.o.Labels) > 0 {
		bs.total++
	}
	for i := range bs.df.MetaArgs {
		a := &bs.df.MetaArgs[i]
		bs.stepHeader(a.String())
		for _, kv := range a.Args {
			var def *string
			if kv.Value != nil {
				v, err := Expand(*kv.Value, bs.args.metaEnv(), bs.df.Escape)
				if err != nil {
					return "", err
				}
				def = &v
			}
			bs.args.declare(kv.Key, def, true)
		}
	}
	var cur *stage
	for i := range stages {
		var err error
		if cur, err = bs.from(&stages[i]); err != nil {
			return "", err
		}
		bs.stages = append(bs.stages, cur)
		for _, cmd := range stages[i].Commands {
			if err := bs.ctx.Err(); err != nil {
				return "", err
			}
			bs.stepHeader(commandText(cmd))
			if err := bs.dispatch(cur, cmd); err != nil {
				return "", err
			}
			bs.printID(cur)
		}
		if i == last && len(bs.o.Labels) > 0 {
			keys := make([]string, 0, len(bs.o.Labels))
			for k := range bs.o.Labels {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			var parts []string
			for _, k := range keys {
				parts = append(parts, strconv.Quote(k)+"="+strconv.Quote(bs.o.Labels[k]))
			}
			bs.stepHeader("LABEL " + strings.Join(parts, " "))
			cfg := bs.nextConfig(cur)
			if cfg.Config.Labels == nil {
				cfg.Config.Labels = map[string]string{}
			}
			for _, k := range keys {
				cfg.Config.Labels[k] = bs.o.Labels[k]
			}
			if err := bs.metaStep(cur, cfg, "LABEL "+strings.Join(parts, " "), true); err != nil {
				return "", err
			}
			bs.printID(cur)
		}
	}
	if cur.img == nil {
		// FROM scratch with only metadata or nothing: still an image.
		img, err := bs.b.e.Images.CreateImage(image.CreateOptions{Config: cur.cfg})
		if err != nil {
			return "", err
		}
		cur.img = img
	}
	return cur.img.ID, nil
}

func commandText(cmd instructions.Command) string {
	if s, ok := cmd.(fmt.Stringer); ok {
		return s.String()
	}
	return cmd.Name()
}

func (bs *buildState) stepHeader(text string) {
	bs.step++
	bs.s.print(fmt.Sprintf("Step %d/%d : %s\n", bs.step, bs.total, text))
}

func (bs *buildState) printID(st *stage) {
	if st.img != nil {
		bs.s.print(fmt.Sprintf(" ---> %s\n", st.img.ID.Encoded()[:12]))
	}
}

// from starts a stage: a previous stage, scratch, or a local image.
func (bs *buildState) from(s *instructions.Stage) (*stage, error) {
	bs.stepHeader(s.SourceCode)
	bs.args.newStage()
	base, err := Expand(s.BaseName, bs.args.metaEnv(), bs.df.Escape)
	if err != nil {
		return nil, err
	}
	if base == "" {
		return nil, errorf("base name (%s) should not be blank", s.BaseName)
	}
	st := &stage{name: s.Name, shell: defaultShell}
	for i := len(bs.stages) - 1; i >= 0; i-- {
		if prev := bs.stages[i]; prev.name != "" && strings.EqualFold(prev.name, base) {
			if prev.img == nil {
				st.cfg = prev.cfg.Derive()
				st.shell = shellOf(st.cfg)
				return st, nil
			}
			if err := st.use(prev.img); err != nil {
				return nil, err
			}
			return st, bs.onBuild(st)
		}
	}
	if strings.EqualFold(base, "scratch") {
		st.cfg = image.Config{Image: ocispec.Image{Platform: ocispec.Platform{OS: "linux", Architecture: goruntime.GOARCH}}}
		return st, nil
	}
	img, err := bs.baseImage(base)
	if err != nil {
		return nil, err
	}
	if err := st.use(img); err != nil {
		return nil, err
	}
	return st, bs.onBuild(st)
}

// use moves the stage to img (its full config: Docker's Healthcheck, OnBuild, Shell included).
func (st *stage) use(img *image.Image) error {
	cfg, err := img.FullConfig()
	if err != nil {
		return err
	}
	st.img, st.cfg = img, cfg
	st.shell = shellOf(cfg)
	return nil
}

// shellOf is the shell for shell forms: the config's SHELL, else /bin/sh -c.
func shellOf(cfg image.Config) []string {
	if len(cfg.Docker.Shell) > 0 {
		return append([]string(nil), cfg.Docker.Shell...)
	}
	return defaultShell
}

// onBuild runs the base image's ONBUILD triggers right after FROM, as Docker does ("# Executing N
// build triggers"); the stage's config then has no triggers left. It prints the FROM step's result.
func (bs *buildState) onBuild(st *stage) error {
	triggers := st.cfg.Docker.OnBuild
	st.cfg.Docker.OnBuild = nil
	if len(triggers) > 0 {
		plural := ""
		if len(triggers) > 1 {
			plural = "s"
		}
		bs.s.print(fmt.Sprintf("# Executing %d build trigger%s\n", len(triggers), plural))
		for _, t := range triggers {
			cmd, err := parseTrigger(t)
			if err != nil {
				return err
			}
			if err := bs.ctx.Err(); err != nil {
				return err
			}
			if err := bs.dispatch(st, cmd); err != nil {
				return err
			}
		}
	}
	bs.printID(st)
	return nil
}

// env is the expansion environment: ARGs in scope, then the image's ENV (which wins).
func (bs *buildState) env(st *stage) []string {
	return append(bs.args.env(), st.cfg.Config.Env...)
}

// nextConfig copies the stage's config for the next step.
func (bs *buildState) nextConfig(st *stage) image.Config { return st.cfg.Derive() }

func withHistory(cfg image.Config, createdBy string, empty bool) image.Config {
	now := time.Now().UTC()
	cfg.Created = &now
	cfg.History = append(cfg.History, ocispec.History{Created: &now, CreatedBy: createdBy, EmptyLayer: empty})
	return cfg
}

// configJSON is what a cache key takes from a config: the container config and Docker's fields.
func configJSON(c image.Config) string {
	b, _ := json.Marshal(struct {
		C ocispec.ImageConfig
		D image.DockerConfig
	}{c.Config, c.Docker})
	return string(b)
}

// cached looks a step up in the cache; on a hit the stage moves to the cached image.
func (bs *buildState) cached(st *stage, key []byte) bool {
	if bs.o.NoCache {
		return false
	}
	id := bs.b.cache.get(key)
	if id == "" {
		return false
	}
	img, err := bs.b.e.Images.Resolve(id.String())
	if err != nil || img.Parent != st.parentID() {
		return false
	}
	if st.use(img) != nil {
		return false
	}
	bs.s.print(" ---> Using cache\n")
	return true
}

func (bs *buildState) remember(key []byte, img *image.Image) {
	if err := bs.b.cache.put(key, img.ID); err != nil {
		bs.b.log.Warn("build cache", "err", err)
	}
}

// metaStep records a config-only step ("/bin/sh -c #(nop)  ENV …").
func (bs *buildState) metaStep(st *stage, cfg image.Config, comment string, twoSpaces bool) error {
	sep := " "
	if twoSpaces {
		sep = "  "
	}
	createdBy := bs.nop(st) + sep + comment
	key := cacheKey(st.parentID(), "meta", createdBy, configJSON(cfg), cfg.Author)
	if bs.cached(st, key) {
		return nil
	}
	cfg = withHistory(cfg, createdBy, true)
	img, err := bs.b.e.Images.CreateImage(image.CreateOptions{Config: cfg, Parent: st.parentID()})
	if err != nil {
		return err
	}
	bs.remember(key, img)
	return st.use(img)
}

// nop is the start of a metadata step's history entry: the current shell and "#(nop)", as
// Docker writes it ("/bin/sh -c #(nop) ").
func (bs *buildState) nop(st *stage) string {
	return strings.Join(st.shell, " ") + " #(nop)"
}

func (bs *buildState) dispatch(st *stage, cmd instructions.Command) error {
	if ex, ok := cmd.(instructions.SupportsSingleWordExpansion); ok {
		if _, isRun := cmd.(*instructions.RunCommand); !isRun {
			env := bs.env(st)
			if err := ex.Expand(func(w string) (string, error) { return Expand(w, env, bs.df.Escape) }); err != nil {
				return err
			}
		}
	}
	if ex, ok := cmd.(instructions.SupportsSingleWordExpansionRaw); ok {
		// Here-document contents (COPY <<EOF): variables expanded, quotes and escapes kept.
		env := bs.env(st)
		err := ex.ExpandRaw(func(w string) (string, error) {
			lex := shell.NewLex('\\')
			lex.SkipProcessQuotes = true
			out, _, err := lex.ProcessWord(w, shell.EnvsFromSlice(dedupEnv(env)))
			return out, err
		})
		if err != nil {
			return err
		}
	}
	switch c := cmd.(type) {
	case *instructions.EnvCommand:
		cfg := bs.nextConfig(st)
		var parts []string
		for _, kv := range c.Env {
			cfg.Config.Env = setEnv(cfg.Config.Env, kv.Key, kv.Value)
			parts = append(parts, kv.Key+"="+kv.Value)
		}
		return bs.metaStep(st, cfg, "ENV "+strings.Join(parts, " "), true)
	case *instructions.LabelCommand:
		cfg := bs.nextConfig(st)
		if cfg.Config.Labels == nil {
			cfg.Config.Labels = map[string]string{}
		}
		var parts []string
		for _, kv := range c.Labels {
			cfg.Config.Labels[kv.Key] = kv.Value
			parts = append(parts, kv.Key+"="+kv.Value)
		}
		return bs.metaStep(st, cfg, "LABEL "+strings.Join(parts, " "), true)
	case *instructions.MaintainerCommand:
		cfg := bs.nextConfig(st)
		cfg.Author = c.Maintainer
		return bs.metaStep(st, cfg, "MAINTAINER "+c.Maintainer, true)
	case *instructions.UserCommand:
		cfg := bs.nextConfig(st)
		cfg.Config.User = c.User
		return bs.metaStep(st, cfg, "USER "+c.User, true)
	case *instructions.ExposeCommand:
		cfg := bs.nextConfig(st)
		if cfg.Config.ExposedPorts == nil {
			cfg.Config.ExposedPorts = map[string]struct{}{}
		}
		var ports []string
		for _, p := range c.Ports {
			env := bs.env(st)
			ex, err := Expand(p, env, bs.df.Escape)
			if err != nil {
				return err
			}
			for _, one := range strings.Fields(ex) {
				ps, err := parsePort(one)
				if err != nil {
					return err
				}
				for _, q := range ps {
					cfg.Config.ExposedPorts[q] = struct{}{}
					ports = append(ports, q)
				}
			}
		}
		return bs.metaStep(st, cfg, "EXPOSE "+strings.Join(ports, " "), true)
	case *instructions.VolumeCommand:
		cfg := bs.nextConfig(st)
		if cfg.Config.Volumes == nil {
			cfg.Config.Volumes = map[string]struct{}{}
		}
		for _, v := range c.Volumes {
			if strings.TrimSpace(v) == "" {
				return errorf("VOLUME specified can not be an empty string")
			}
			cfg.Config.Volumes[v] = struct{}{}
		}
		return bs.metaStep(st, cfg, "VOLUME "+fmt.Sprint(c.Volumes), true)
	case *instructions.StopSignalCommand:
		cfg := bs.nextConfig(st)
		cfg.Config.StopSignal = c.Signal
		return bs.metaStep(st, cfg, "STOPSIGNAL "+c.Signal, true)
	case *instructions.CmdCommand:
		cfg := bs.nextConfig(st)
		cfg.Config.Cmd = bs.cmdline(st, c.ShellDependantCmdLine)
		st.cmdSet = true
		return bs.metaStep(st, cfg, "CMD "+quoteList(cfg.Config.Cmd), true)
	case *instructions.EntrypointCommand:
		cfg := bs.nextConfig(st)
		cfg.Config.Entrypoint = bs.cmdline(st, c.ShellDependantCmdLine)
		if !st.cmdSet {
			cfg.Config.Cmd = nil
		}
		return bs.metaStep(st, cfg, "ENTRYPOINT "+quoteList(cfg.Config.Entrypoint), true)
	case *instructions.ShellCommand:
		st.shell = append([]string(nil), c.Shell...)
		cfg := bs.nextConfig(st)
		cfg.Docker.Shell = append([]string(nil), c.Shell...)
		return bs.metaStep(st, cfg, fmt.Sprintf("SHELL %v", c.Shell), true)
	case *instructions.HealthCheckCommand:
		cfg := bs.nextConfig(st)
		if old := cfg.Docker.Healthcheck; old != nil && len(old.Test) > 0 && old.Test[0] != "NONE" {
			bs.s.print(fmt.Sprintf("Note: overriding previous HEALTHCHECK: %v\n", old.Test))
		}
		h := *c.Health
		h.Test = append([]string(nil), c.Health.Test...)
		cfg.Docker.Healthcheck = &h
		// Docker's history text: fmt's %q of its HealthConfig (the fields of API 1.41).
		return bs.metaStep(st, cfg, fmt.Sprintf("HEALTHCHECK &{%q %q %q %q %s}", h.Test, h.Interval, h.Timeout, h.StartPeriod, strconv.QuoteRune(rune(h.Retries))), true)
	case *instructions.OnbuildCommand:
		cfg := bs.nextConfig(st)
		cfg.Docker.OnBuild = append(cfg.Docker.OnBuild, c.Expression)
		return bs.metaStep(st, cfg, "ONBUILD "+c.Expression, true)
	case *instructions.ArgCommand:
		var parts []string
		for _, kv := range c.Args {
			bs.args.declare(kv.Key, kv.Value, false)
			parts = append(parts, kv.String())
			if kv.Value == nil {
				parts[len(parts)-1] = kv.Key
			}
		}
		cfg := bs.nextConfig(st)
		return bs.metaStep(st, cfg, "ARG "+strings.Join(parts, " "), true)
	case *instructions.WorkdirCommand:
		return bs.workdir(st, c)
	case *instructions.RunCommand:
		return bs.runStep(st, c)
	case *instructions.CopyCommand:
		if c.Parents || len(c.ExcludePatterns) > 0 {
			return errorf("the --parents and --exclude flags of COPY need BuildKit")
		}
		extra, done, err := bs.inlineSources(c.SourceContents)
		if err != nil {
			return withPrefix("COPY", err)
		}
		defer done()
		return bs.copyStep(st, "COPY", c.SourcePaths, extra, c.DestPath, c.From, c.Chown, c.Chmod, false)
	case *instructions.AddCommand:
		extra, done, err := bs.inlineSources(c.SourceContents)
		if err != nil {
			return withPrefix("ADD", err)
		}
		defer done()
		var local []string
		for _, s := range c.SourcePaths {
			switch {
			case isURL(s):
				f, err := bs.download(s)
				if err != nil {
					return withPrefix("ADD", err)
				}
				extra = append(extra, f)
			case isGitURL(s):
				return errorf("ADD of a git repository (%s) needs BuildKit", s)
			default:
				local = append(local, s)
			}
		}
		return bs.copyStep(st, "ADD", local, extra, c.DestPath, "", c.Chown, c.Chmod, true)
	}
	return errorf("unknown instruction: %s", strings.ToUpper(cmd.Name()))
}

func quoteList(l []string) string {
	q := make([]string, len(l))
	for i, s := range l {
		q[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(q, " ") + "]"
}

// cmdline is the argv of a shell- or exec-form CMD/ENTRYPOINT/RUN.
func (bs *buildState) cmdline(st *stage, c instructions.ShellDependantCmdLine) []string {
	if c.PrependShell {
		return append(append([]string(nil), st.shell...), strings.Join(c.CmdLine, " "))
	}
	return append([]string(nil), c.CmdLine...)
}

func parsePort(p string) ([]string, error) {
	proto := "tcp"
	if i := strings.IndexByte(p, '/'); i >= 0 {
		p, proto = p[:i], strings.ToLower(p[i+1:])
	}
	if i := strings.LastIndexByte(p, ':'); i >= 0 {
		p = p[i+1:]
	}
	lo, hi, isRange := strings.Cut(p, "-")
	a, err := strconv.ParseUint(lo, 10, 16)
	if err != nil || (proto != "tcp" && proto != "udp" && proto != "sctp") {
		return nil, errorf("Invalid containerPort: %s", p)
	}
	b := a
	if isRange {
		if b, err = strconv.ParseUint(hi, 10, 16); err != nil || b < a {
			return nil, errorf("Invalid containerPort: %s", p)
		}
	}
	var out []string
	for n := a; n <= b; n++ {
		out = append(out, fmt.Sprintf("%d/%s", n, proto))
	}
	return out, nil
}

// newContainer creates a (not started) container of the stage's image for a step.
func (bs *buildState) newContainer(st *stage, cmd []string, env []string, binds ...string) (string, error) {
	if st.img == nil {
		return "", errorf("Please provide a source image with `from` prior to commit")
	}
	nm := bs.o.NetworkMode
	if nm == "" || nm == "default" {
		nm = "bridge"
	}
	cfg := &container.Config{Image: st.img.ID.String(), Cmd: cmd, Entrypoint: []string{}, Env: env,
		User: st.cfg.Config.User, WorkingDir: st.cfg.Config.WorkingDir}
	c, _, err := bs.b.e.Create(bs.ctx, engine.CreateOptions{Config: cfg, HostConfig: &container.HostConfig{NetworkMode: container.NetworkMode(nm), Binds: binds}})
	if err != nil {
		return "", err
	}
	bs.containers = append(bs.containers, c.ID)
	return c.ID, nil
}

// runtimeArtifact says whether a diff entry is something the runtime made for running the step
// rather than the step itself: empty mount targets for /etc/hosts, /etc/hostname,
// /etc/resolv.conf and the directories of the kernel filesystems.
func runtimeArtifact(h *tar.Header) bool {
	name := strings.TrimSuffix(strings.TrimPrefix(path.Clean("/"+h.Name), "/"), "/")
	switch h.Typeflag {
	case tar.TypeReg:
		return h.Size == 0 && (name == "etc/hosts" || name == "etc/hostname" || name == "etc/resolv.conf" || name == ".dockerenv")
	case tar.TypeDir:
		switch name {
		case "etc", "dev", "proc", "sys", "dev/shm", "dev/pts", "dev/mqueue":
			return true
		}
	}
	return false
}

// commitContainer turns a step's container into the stage's next image.
func (bs *buildState) commitContainer(st *stage, id string, cfg image.Config, createdBy string) (*image.Image, error) {
	cfg = withHistory(cfg, createdBy, false)
	return bs.b.e.BuildCommit(id, engine.BuildCommitOptions{Config: cfg, Skip: runtimeArtifact})
}

func (bs *buildState) runStep(st *stage, c *instructions.RunCommand) error {
	if len(c.FlagsUsed) > 0 {
		return errorf("the --%s flag of RUN needs BuildKit", c.FlagsUsed[0])
	}
	argv, script, err := bs.runArgv(st, c)
	if err != nil {
		return err
	}
	hist := bs.args.historyArgs()
	createdBy := strings.Join(argv, " ")
	if len(hist) > 0 {
		createdBy = fmt.Sprintf("|%d %s %s", len(hist), strings.Join(hist, " "), createdBy)
	}
	cfg := bs.nextConfig(st)
	argEnv := bs.args.env()
	keyParts := []string{"run", createdBy, strings.Join(argEnv, "\x00"), configJSON(cfg)}
	if script != nil {
		keyParts = append(keyParts, "script", script.name, script.data)
	}
	key := cacheKey(st.parentID(), keyParts...)
	if bs.cached(st, key) {
		return nil
	}
	var binds []string
	if script != nil {
		dir, err := script.write(bs.tmpRoot)
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		binds = []string{dir + ":" + pipesDir + ":ro"}
	}
	id, err := bs.newContainer(st, argv, argEnv, binds...)
	if err != nil {
		return err
	}
	bs.s.print(fmt.Sprintf(" ---> Running in %s\n", id[:12]))
	code, err := bs.runContainer(id)
	if err != nil {
		return err
	}
	if code != 0 {
		bs.keep(id)
		return &Error{Msg: fmt.Sprintf("The command '%s' returned a non-zero code: %d", strings.Join(argv, " "), code), Code: code}
	}
	img, err := bs.commitContainer(st, id, cfg, createdBy)
	if err != nil {
		return err
	}
	bs.remember(key, img)
	if err := st.use(img); err != nil {
		return err
	}
	if bs.o.Remove || bs.o.ForceRemove {
		bs.s.print(fmt.Sprintf("Removing intermediate container %s\n", id[:12]))
		bs.b.removeContainer(id)
		bs.forget(id)
	}
	return nil
}

// runContainer starts a step's container with its output streamed into the build and waits for it.
func (bs *buildState) runContainer(id string) (int, error) {
	ctx, cancel := context.WithCancel(bs.ctx)
	defer cancel()
	e := bs.b.e
	attachReady := make(chan struct{})
	attachDone := make(chan error, 1)
	go func() {
		attachDone <- e.Attach(ctx, id, engine.AttachOptions{Stdout: outWriter{s: bs.s}, Stderr: outWriter{s: bs.s, err: true},
			Stream: true, Ready: func() { close(attachReady) }})
	}()
	select {
	case <-attachReady:
	case err := <-attachDone:
		return -1, err
	}
	waitReady := make(chan struct{})
	type res struct {
		code int
		err  error
	}
	waitDone := make(chan res, 1)
	go func() {
		code, err := e.Wait(ctx, id, "next-exit", func() { close(waitReady) })
		waitDone <- res{code, err}
	}()
	select {
	case <-waitReady:
	case r := <-waitDone:
		return -1, r.err
	}
	if err := e.Start(ctx, id); err != nil {
		return -1, err
	}
	var r res
	select {
	case r = <-waitDone:
	case <-bs.ctx.Done():
		e.Kill(id, "KILL")
		return -1, bs.ctx.Err()
	}
	if r.err != nil {
		return -1, r.err
	}
	select {
	case <-attachDone:
	case <-time.After(10 * time.Second):
	}
	return r.code, nil
}

func (bs *buildState) workdir(st *stage, c *instructions.WorkdirCommand) error {
	cfg := bs.nextConfig(st)
	wd := c.Path
	if !path.IsAbs(wd) {
		base := cfg.Config.WorkingDir
		if base == "" {
			base = "/"
		}
		wd = path.Join(base, wd)
	}
	wd = path.Clean(wd)
	cfg.Config.WorkingDir = wd
	createdBy := bs.nop(st) + " WORKDIR " + wd
	key := cacheKey(st.parentID(), "workdir", createdBy, configJSON(cfg))
	if bs.cached(st, key) {
		return nil
	}
	if st.img == nil {
		// scratch: the directory goes in a layer of its own.
		img, err := bs.layerFromTar(st, cfg, createdBy, func(w io.Writer) error {
			tw := tar.NewWriter(w)
			cur := ""
			for _, p := range strings.Split(strings.TrimPrefix(wd, "/"), "/") {
				if p == "" {
					continue
				}
				cur = path.Join(cur, p)
				if err := tw.WriteHeader(&tar.Header{Name: cur + "/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: time.Now()}); err != nil {
					return err
				}
			}
			return tw.Close()
		})
		if err != nil {
			return err
		}
		bs.remember(key, img)
		return st.use(img)
	}
	id, err := bs.newContainer(st, []string{"/bin/sh", "-c", "#(nop) WORKDIR " + wd}, nil)
	if err != nil {
		return err
	}
	err = bs.b.e.WithContainerRootfs(id, func(rootfs string) error {
		if rootIsDir(rootfs)(wd) {
			return nil
		}
		pr, pw := io.Pipe()
		go func() {
			tw := tar.NewWriter(pw)
			err := tw.WriteHeader(&tar.Header{Name: strings.TrimPrefix(wd, "/") + "/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: time.Now()})
			if err == nil {
				err = tw.Close()
			}
			pw.CloseWithError(err)
		}()
		return snapshot.ExtractTar(pr, rootfs, snapshot.ExtractOptions{Root: rootfs})
	})
	if err != nil {
		return err
	}
	img, err := bs.commitContainer(st, id, cfg, createdBy)
	if err != nil {
		return err
	}
	bs.b.removeContainer(id)
	bs.forget(id)
	bs.remember(key, img)
	return st.use(img)
}

// layerFromTar makes the stage's next image from a layer tar written by write (FROM scratch, no
// image yet).
func (bs *buildState) layerFromTar(st *stage, cfg image.Config, createdBy string, write func(io.Writer) error) (*image.Image, error) {
	cfg = withHistory(cfg, createdBy, false)
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(write(pw)) }()
	img, err := bs.b.e.Images.CreateImage(image.CreateOptions{Config: cfg, Layers: []io.Reader{pr}})
	pr.CloseWithError(io.ErrClosedPipe)
	return img, err
}

// copyStep runs a COPY/ADD: srcs are paths in the context (or in --from's image), extra are files
// already on the host (here-documents, downloads), copied after them.
func (bs *buildState) copyStep(st *stage, name string, srcs []string, extra []copySource, dest, from, chown, chmod string, add bool) error {
	srcRoot := bs.ctxDir
	fromContext := true
	var fromID string
	if from != "" {
		fromContext = false
		img, err := bs.fromImage(from)
		if err != nil {
			return err
		}
		id, _, err := bs.b.e.Create(bs.ctx, engine.CreateOptions{Config: &container.Config{Image: img.ID.String(), Cmd: []string{"/bin/sh", "-c", "#(nop) COPY --from"}, Entrypoint: []string{}},
			HostConfig: &container.HostConfig{NetworkMode: "none"}})
		if err != nil {
			return err
		}
		bs.containers = append(bs.containers, id.ID)
		fromID = id.ID
		defer func() { bs.b.removeContainer(fromID); bs.forget(fromID) }()
	}
	mode, err := parseChmod(chmod)
	if err != nil {
		return err
	}
	withSrc := func(fn func(root string) error) error {
		if fromID == "" {
			return fn(srcRoot)
		}
		return bs.b.e.WithContainerRootfs(fromID, fn)
	}
	var sum string
	resolve := func(root string) ([]copySource, error) {
		res, err := resolveSources(root, srcs, fromContext)
		if err != nil {
			return nil, err
		}
		res = append(res, extra...)
		if len(res) == 0 {
			return nil, errorf("no source files were specified")
		}
		return res, nil
	}
	err = withSrc(func(root string) error {
		srcsResolved, err := resolve(root)
		if err != nil {
			return err
		}
		if fromContext {
			sum, err = sourceDigest(srcsResolved, bs.ctxIndex)
		} else {
			sum, err = sourceDigest(srcsResolved)
		}
		return err
	})
	if err != nil {
		return withPrefix(name, err)
	}
	cfg := bs.nextConfig(st)
	destAbs, dirSyntax := destPath(dest, cfg.Config.WorkingDir)
	createdBy := fmt.Sprintf("%s %s %s in %s ", bs.nop(st), name, sum, dest)
	key := cacheKey(st.parentID(), strings.ToLower(name), createdBy, destAbs, strconv.FormatBool(dirSyntax), chown, chmod, from, configJSON(cfg))
	if bs.cached(st, key) {
		return nil
	}
	// options are the copy's owner and mode (--chown names resolve in the image being built).
	options := func(rootfs string) (copyOptions, error) {
		o := copyOptions{chmod: mode, add: add}
		if chown != "" {
			var err error
			if o.uid, o.gid, err = parseChown(chown, rootfs); err != nil {
				return o, err
			}
			o.chown = true
		}
		return o, nil
	}
	// copyTar streams the instruction's files, from the sources under root, as a tar for rootfs.
	copyTar := func(root, rootfs string) (*io.PipeReader, error) {
		res, err := resolve(root)
		if err != nil {
			return nil, err
		}
		o, err := options(rootfs)
		if err != nil {
			return nil, err
		}
		isDir := rootIsDir(rootfs)
		r, w := io.Pipe()
		go func() { w.CloseWithError(writeCopyTar(w, res, destAbs, dirSyntax, isDir, o)) }()
		return r, nil
	}
	apply := func(rootfs string) error {
		return withSrc(func(root string) error {
			pr, err := copyTar(root, rootfs)
			if err != nil {
				return err
			}
			err = snapshot.ExtractTar(pr, rootfs, snapshot.ExtractOptions{Root: rootfs})
			pr.CloseWithError(io.ErrClosedPipe)
			return err
		})
	}
	// The layer is written directly from the sources (see layer.go); the rootfs is only read.
	direct := func(rootfs string) (*image.Image, error) {
		var img *image.Image
		err := withSrc(func(root string) error {
			cr, err := copyTar(root, rootfs)
			if err != nil {
				return err
			}
			lr, lw := io.Pipe()
			go func() {
				err := writeLayer(cr, lw, rootfs)
				cr.CloseWithError(io.ErrClosedPipe)
				lw.CloseWithError(err)
			}()
			img, err = bs.b.e.Images.CreateImage(image.CreateOptions{Config: withHistory(cfg, createdBy, false), Layers: []io.Reader{lr}, Parent: st.parentID()})
			lr.CloseWithError(io.ErrClosedPipe)
			return err
		})
		return img, err
	}
	var img *image.Image
	if st.img == nil {
		tmp, err := os.MkdirTemp(bs.tmpRoot, "scratch-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		if img, err = direct(tmp); errors.Is(err, errNeedExtract) {
			if err := apply(tmp); err != nil {
				return withPrefix(name, err)
			}
			img, err = bs.layerFromTar(st, cfg, createdBy, func(w io.Writer) error { return snapshot.ArchivePath(tmp, w, ".") })
		}
		if err != nil {
			return withPrefix(name, err)
		}
	} else {
		id, err := bs.newContainer(st, []string{"/bin/sh", "-c", fmt.Sprintf("#(nop) %s %s in %s ", name, sum, dest)}, nil)
		if err != nil {
			return err
		}
		err = bs.b.e.WithContainerRootfs(id, func(rootfs string) (err error) {
			img, err = direct(rootfs)
			return err
		})
		if errors.Is(err, errNeedExtract) {
			if err := bs.b.e.WithContainerRootfs(id, apply); err != nil {
				return withPrefix(name, err)
			}
			img, err = bs.commitContainer(st, id, cfg, createdBy)
		}
		if err != nil {
			return withPrefix(name, err)
		}
		bs.b.removeContainer(id)
		bs.forget(id)
	}
	bs.remember(key, img)
	return st.use(img)
}

func withPrefix(name string, err error) error {
	var be *Error
	if errors.As(err, &be) {
		return &Error{Msg: name + " failed: " + be.Msg, Code: be.Code}
	}
	return &Error{Msg: name + " failed: " + err.Error()}
}

// fromImage resolves COPY --from: a stage name or index, else an image.
func (bs *buildState) fromImage(from string) (*image.Image, error) {
	for _, s := range bs.stages {
		if s.name != "" && strings.EqualFold(s.name, from) {
			if s.img == nil {
				return nil, errorf("COPY --from=%s: the stage has no files", from)
			}
			return s.img, nil
		}
	}
	if n, err := strconv.Atoi(from); err == nil {
		if n < 0 || n >= len(bs.stages)-1 {
			return nil, errorf("invalid from flag value %s: refers to current build stage", from)
		}
		if bs.stages[n].img == nil {
			return nil, errorf("COPY --from=%s: the stage has no files", from)
		}
		return bs.stages[n].img, nil
	}
	img, err := bs.b.e.Images.Resolve(from)
	if err != nil {
		return nil, errorf("invalid from flag value %s: No such image: %s", from, from)
	}
	return img, nil
}
