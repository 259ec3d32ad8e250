package docker

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/distribution/reference"

	"github.com/wharfhq/wharf/internal/engine"
	"github.com/wharfhq/wharf/internal/image"
	"github.com/wharfhq/wharf/internal/registry"
)

func (s *Server) routeImages(r *request, p string) error {
	m := r.Method
	rest := strings.TrimPrefix(p, "/images/")
	switch {
	case p == "/images/json" && m == http.MethodGet:
		return s.imageList(r)
	case p == "/images/create" && m == http.MethodPost:
		return s.imageCreate(r)
	case p == "/images/load" && m == http.MethodPost:
		return s.imageLoad(r)
	case p == "/images/get" && m == http.MethodGet:
		return s.imageSave(r, r.URL.Query()["names"])
	case p == "/images/prune" && m == http.MethodPost:
		return s.imagePrune(r)
	case p == "/images/search" && m == http.MethodGet:
		return engine.Invalid("Error response from registry: search is not available: no registry is reachable")
	case strings.HasSuffix(rest, "/json") && m == http.MethodGet:
		return s.imageInspect(r, strings.TrimSuffix(rest, "/json"))
	case strings.HasSuffix(rest, "/history") && m == http.MethodGet:
		return s.imageHistory(r, strings.TrimSuffix(rest, "/history"))
	case strings.HasSuffix(rest, "/tag") && m == http.MethodPost:
		return s.imageTag(r, strings.TrimSuffix(rest, "/tag"))
	case strings.HasSuffix(rest, "/get") && m == http.MethodGet:
		return s.imageSave(r, []string{strings.TrimSuffix(rest, "/get")})
	case strings.HasSuffix(rest, "/push") && m == http.MethodPost:
		return s.imagePush(r, strings.TrimSuffix(rest, "/push"))
	case m == http.MethodDelete:
		items, err := s.e.ImageRemove(rest, r.bool("force"))
		if err != nil {
			return err
		}
		return writeJSON(r.w, http.StatusOK, items)
	}
	return engine.NotFound("page not found")
}

func imageSummary(e *engine.Engine, img *image.Image) map[string]any {
	tags, digests := img.RepoTags, img.RepoDigests
	if tags == nil {
		tags = []string{}
	}
	if digests == nil {
		digests = []string{}
	}
	labels := img.Config.Config.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	return map[string]any{"Id": img.ID.String(), "ParentId": img.Parent.String(), "RepoTags": tags, "RepoDigests": digests,
		"Created": img.Created.Unix(), "Size": img.Size, "SharedSize": -1, "VirtualSize": img.Size, "Labels": labels,
		"Containers": e.ImageInUse(img.ID)}
}

func (s *Server) imageList(r *request) error {
	f, err := parseFilters(r.query("filters"))
	if err != nil {
		return err
	}
	imgs, err := s.e.Images.List()
	if err != nil {
		return err
	}
	parents := map[string]bool{} // untagged parents of other images are hidden without -a
	for _, img := range imgs {
		if img.Parent != "" {
			parents[img.Parent.String()] = true
		}
	}
	out := []any{}
	for _, img := range imgs {
		if !r.bool("all") && len(img.RepoTags) == 0 && len(f["dangling"]) == 0 && parents[img.ID.String()] {
			continue
		}
		if !matchImage(img, f) {
			continue
		}
		sum := imageSummary(s.e, img)
		if refs := f["reference"]; len(refs) > 0 {
			// As dockerd: only the tags that matched the reference filter are listed.
			var tags []string
			for _, tag := range img.RepoTags {
				for _, ref := range refs {
					if ok, _ := matchRef(ref, tag); ok {
						tags = append(tags, tag)
						break
					}
				}
			}
			if tags == nil {
				tags = []string{}
			}
			sum["RepoTags"] = tags
		}
		out = append(out, sum)
	}
	return writeJSON(r.w, http.StatusOK, out)
}

func matchImage(img *image.Image, f map[string][]string) bool {
	for k, vs := range f {
		ok := false
		for _, v := range vs {
			switch k {
			case "dangling":
				ok = ok || (v == "true" || v == "1") == (len(img.RepoTags) == 0)
			case "reference":
				for _, t := range img.RepoTags {
					if m, _ := matchRef(v, t); m {
						ok = true
					}
				}
			case "label":
				kk, vv, hasV := strings.Cut(v, "=")
				lv, has := img.Config.Config.Labels[kk]
				ok = ok || has && (!hasV || lv == vv)
			case "before", "since":
				ok = true
			default:
				ok = true
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// matchRef matches a reference filter ("busybox", "busy*", "busybox:1*") against a familiar tag.
func matchRef(pattern, tag string) (bool, error) {
	name, _, _ := strings.Cut(tag, ":")
	if ok, _ := pathMatch(pattern, tag); ok {
		return true, nil
	}
	return pathMatch(pattern, name)
}

func (s *Server) resolveImage(ref string) (*image.Image, error) {
	img, err := s.e.Images.Resolve(ref)
	if err != nil {
		if image.IsNotFound(err) {
			return nil, engine.NotFound("No such image: %s", ref)
		}
		return nil, err
	}
	return img, nil
}

func (s *Server) imageInspect(r *request, ref string) error {
	img, err := s.resolveImage(ref)
	if err != nil {
		return err
	}
	cc := img.Config.Config
	cfg := map[string]any{"Hostname": "", "Domainname": "", "User": cc.User, "AttachStdin": false, "AttachStdout": false,
		"AttachStderr": false, "Tty": false, "OpenStdin": false, "StdinOnce": false, "Env": cc.Env, "Cmd": cc.Cmd,
		"Image": "", "Volumes": cc.Volumes, "WorkingDir": cc.WorkingDir, "Entrypoint": cc.Entrypoint, "OnBuild": nil,
		"Labels": cc.Labels}
	if len(cc.ExposedPorts) > 0 {
		cfg["ExposedPorts"] = cc.ExposedPorts
	}
	if cc.StopSignal != "" {
		cfg["StopSignal"] = cc.StopSignal
	}
	if img.Docker.OnBuild != nil {
		cfg["OnBuild"] = img.Docker.OnBuild
	}
	if img.Docker.Healthcheck != nil {
		cfg["Healthcheck"] = img.Docker.Healthcheck
	}
	if len(img.Docker.Shell) > 0 {
		cfg["Shell"] = img.Docker.Shell
	}
	var layers []string
	for _, l := range img.Layers {
		layers = append(layers, l.DiffID.String())
	}
	if layers == nil {
		layers = []string{}
	}
	tags, digests := img.RepoTags, img.RepoDigests
	if tags == nil {
		tags = []string{}
	}
	if digests == nil {
		digests = []string{}
	}
	comment := ""
	if n := len(img.Config.History); n > 0 {
		comment = img.Config.History[n-1].Comment
	}
	return writeJSON(r.w, http.StatusOK, map[string]any{
		"Id": img.ID.String(), "RepoTags": tags, "RepoDigests": digests, "Parent": img.Parent.String(), "Comment": comment,
		"Created": img.Created.UTC().Format(time.RFC3339Nano), "DockerVersion": "", "Author": img.Config.Author,
		"Config": cfg, "Architecture": img.Config.Architecture, "Os": img.Config.OS, "Size": img.Size, "VirtualSize": img.Size,
		"GraphDriver": map[string]any{"Name": "overlayfs", "Data": nil},
		"RootFS":      map[string]any{"Type": "layers", "Layers": layers},
		"Metadata":    map[string]any{"LastTagTime": "0001-01-01T00:00:00Z"},
	})
}

func (s *Server) imageHistory(r *request, ref string) error {
	img, err := s.resolveImage(ref)
	if err != nil {
		return err
	}
	// Each non-empty history entry owns the next layer, bottom up.
	h := img.Config.History
	sizes := make([]int64, len(h))
	layer := 0
	for i, e := range h {
		if !e.EmptyLayer && layer < len(img.Layers) {
			sizes[i] = img.Layers[layer].Size
			layer++
		}
	}
	var out []map[string]any
	for i := len(h) - 1; i >= 0; i-- {
		e := h[i]
		id := "<missing>"
		tags := []string{}
		if i == len(h)-1 {
			id, tags = img.ID.String(), img.RepoTags
		}
		var created int64
		if e.Created != nil {
			created = e.Created.Unix()
		}
		out = append(out, map[string]any{"Id": id, "Created": created, "CreatedBy": e.CreatedBy, "Tags": tags, "Size": sizes[i], "Comment": e.Comment})
	}
	if len(out) == 0 {
		out = append(out, map[string]any{"Id": img.ID.String(), "Created": img.Created.Unix(), "CreatedBy": "", "Tags": img.RepoTags, "Size": img.Size, "Comment": ""})
	}
	return writeJSON(r.w, http.StatusOK, out)
}

func (s *Server) imageTag(r *request, ref string) error {
	repo, tag := r.query("repo"), r.query("tag")
	if repo == "" {
		return engine.Invalid("repository name must have at least one component")
	}
	target := repo
	if tag != "" {
		target += ":" + tag
	}
	if _, err := reference.ParseNormalizedNamed(target); err != nil {
		return engine.Invalid("invalid reference format")
	}
	if err := s.e.ImageTag(ref, target); err != nil {
		return err
	}
	r.w.WriteHeader(http.StatusCreated)
	return nil
}

func (s *Server) imagePrune(r *request) error {
	f, _ := parseFilters(r.query("filters"))
	all := len(f["dangling"]) > 0 && (f["dangling"][0] == "false" || f["dangling"][0] == "0")
	items, space, err := s.e.ImagePrune(all)
	if err != nil {
		return err
	}
	if items == nil {
		items = []engine.ImageDeleteItem{}
	}
	return writeJSON(r.w, http.StatusOK, map[string]any{"ImagesDeleted": items, "SpaceReclaimed": space})
}

func (s *Server) imageLoad(r *request) error {
	res, err := s.e.Images.Load(r.Body)
	if err != nil {
		return engine.Invalid("%v", err)
	}
	r.w.Header().Set("Content-Type", "application/json")
	r.w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(r.w)
	for _, ref := range res.Refs {
		enc.Encode(map[string]string{"stream": "Loaded image: " + ref + "\n"})
	}
	for _, id := range res.IDs {
		enc.Encode(map[string]string{"stream": "Loaded image ID: " + id.String() + "\n"})
	}
	return nil
}

func (s *Server) imageSave(r *request, names []string) error {
	for _, n := range names {
		if _, err := s.resolveImage(n); err != nil {
			return err
		}
	}
	r.w.Header().Set("Content-Type", "application/x-tar")
	r.w.WriteHeader(http.StatusOK)
	if err := s.e.Images.Save(r.w, names); err != nil {
		s.log.Warn("image save", "err", err)
	}
	return errHandled
}

// imageCreate is import (fromSrc) or pull (fromImage, through package registry).
func (s *Server) imageCreate(r *request) error {
	if src := r.query("fromSrc"); src != "" {
		if src != "-" {
			return engine.Invalid("importing from a URL is not supported")
		}
		ref := r.query("repo")
		if ref != "" && r.query("tag") != "" {
			ref += ":" + r.query("tag")
		}
		img, err := s.e.Import(r.Body, engine.ImportOptions{Ref: ref, Changes: r.URL.Query()["changes"], Message: r.query("message")})
		if err != nil {
			return err
		}
		return writeJSON(r.w, http.StatusOK, map[string]string{"status": img.ID.String()})
	}
	from := r.query("fromImage")
	if tag := r.query("tag"); tag != "" && !strings.Contains(tag, ":") {
		from += ":" + tag
	} else if tag != "" {
		from += "@" + tag
	}
	named, err := reference.ParseNormalizedNamed(from)
	if err != nil {
		return engine.Invalid("invalid reference format")
	}
	platform := r.query("platform")
	if strings.HasPrefix(platform, "{") {
		// API ≥ 1.48 may send the platform as JSON (OCI platform object).
		var p struct {
			OS           string `json:"os"`
			Architecture string `json:"architecture"`
			Variant      string `json:"variant"`
		}
		if json.Unmarshal([]byte(platform), &p) == nil {
			platform = strings.TrimSuffix(p.OS+"/"+p.Architecture+"/"+p.Variant, "/")
		}
	}
	prog := streamProgress(r)
	_, err = RegistryClient.Pull(r.Context(), s.e.Images, reference.TagNameOnly(named).String(), registry.PullOptions{
		Auth: registry.DecodeAuthHeader(r.Header.Get("X-Registry-Auth")), Platform: platform, Progress: prog})
	return endStream(prog, err)
}

// RegistryClient moves images to and from registries for the API (the daemon may set its
// Insecure list from --insecure-registry).
var RegistryClient = &registry.Client{UserAgent: "wharf"}

// streamProgress makes a JSON progress stream whose headers are written with its first message,
// so that an error before any progress is answered with an HTTP status, as dockerd does.
func streamProgress(r *request) *registry.Progress {
	flush := func() {
		if f, ok := r.w.(http.Flusher); ok {
			f.Flush()
		}
	}
	return registry.NewProgress(r.w, flush, func() {
		r.w.Header().Set("Content-Type", "application/json")
		r.w.WriteHeader(http.StatusOK)
	})
}

// endStream reports err: inside the stream once it started, else as the HTTP answer.
func endStream(prog *registry.Progress, err error) error {
	if err == nil {
		if !prog.Wrote() {
			prog.Status("")
		}
		return errHandled
	}
	if prog.Wrote() {
		prog.Err(err)
		return errHandled
	}
	return registryError(err)
}

func registryError(err error) error {
	switch registry.KindOf(err) {
	case registry.KindNotFound:
		return &engine.Error{Kind: engine.KindNotFound, Msg: err.Error()}
	case registry.KindInvalid:
		return &engine.Error{Kind: engine.KindInvalid, Msg: err.Error()}
	}
	return &engine.Error{Kind: engine.KindInternal, Msg: err.Error()}
}

func (s *Server) imagePush(r *request, name string) error {
	ref := name
	if tag := r.query("tag"); tag != "" {
		ref += ":" + tag
	}
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return engine.Invalid("invalid reference format")
	}
	if _, err := s.resolveImage(reference.TagNameOnly(named).String()); err != nil && !reference.IsNameOnly(named) {
		return engine.NotFound("An image does not exist locally with the tag: %s", reference.FamiliarString(named))
	}
	prog := streamProgress(r)
	_, err = RegistryClient.Push(r.Context(), s.e.Images, named.String(), registry.PushOptions{
		Auth: registry.DecodeAuthHeader(r.Header.Get("X-Registry-Auth")), Progress: prog})
	return endStream(prog, err)
}

// login checks credentials (POST /auth) as dockerd does; the client stores them.
func (s *Server) login(r *request) error {
	var ac registry.AuthConfig
	if err := decodeJSON(r, &ac); err != nil {
		return err
	}
	status, err := RegistryClient.Login(r.Context(), &ac)
	if err != nil {
		if registry.KindOf(err) == registry.KindUnauthorized {
			r.w.Header().Set("Content-Type", "application/json")
			r.w.WriteHeader(http.StatusUnauthorized)
			json.NewEncoder(r.w).Encode(map[string]string{"message": err.Error()})
			return errHandled
		}
		return registryError(err)
	}
	return writeJSON(r.w, http.StatusOK, map[string]string{"Status": status, "IdentityToken": ""})
}

func (s *Server) build(r *request) error {
	if s.Builder == nil {
		return engine.Invalid("builds are not supported by this daemon yet")
	}
	r.w.Header().Set("Content-Type", "application/json")
	r.w.WriteHeader(http.StatusOK)
	if err := s.Builder(r.Request, r.w); err != nil {
		json.NewEncoder(r.w).Encode(map[string]any{"errorDetail": map[string]any{"message": err.Error()}, "error": err.Error()})
	}
	return errHandled
}
