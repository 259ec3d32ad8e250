package build

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
)

// OptionsFromQuery reads POST /build's query parameters.
func OptionsFromQuery(r *http.Request) (Options, error) {
	q := r.URL.Query()
	flag := func(k string, def bool) bool {
		v := q.Get(k)
		if v == "" {
			return def
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			return def
		}
		return b
	}
	o := Options{
		Dockerfile:  q.Get("dockerfile"),
		Tags:        q["t"],
		Target:      q.Get("target"),
		NoCache:     flag("nocache", false),
		Quiet:       flag("q", false),
		Remove:      flag("rm", true),
		ForceRemove: flag("forcerm", false),
		NetworkMode: q.Get("networkmode"),
		Pull:        flag("pull", false),
	}
	if v := q.Get("buildargs"); v != "" {
		if err := json.Unmarshal([]byte(v), &o.BuildArgs); err != nil {
			return o, errorf("error reading build args: %v", err)
		}
	}
	if v := q.Get("labels"); v != "" {
		if err := json.Unmarshal([]byte(v), &o.Labels); err != nil {
			return o, errorf("error reading labels: %v", err)
		}
	}
	if q.Get("remote") != "" {
		return o, errorf("remote build contexts (%s) are not supported by this daemon yet", q.Get("remote"))
	}
	switch q.Get("version") {
	case "", "1":
	default:
		return o, errorf("BuildKit builds (version=%s) are not supported by this daemon: set DOCKER_BUILDKIT=0", q.Get("version"))
	}
	return o, nil
}

// ServeBuild is the Docker API's BuildFunc: the context tar is the request body; the build's
// JSON stream (errors included) goes to out. A client disconnect cancels the build.
func (b *Builder) ServeBuild(r *http.Request, out io.Writer) error {
	o, err := OptionsFromQuery(r)
	if err != nil {
		(&stream{w: out}).fail(err.Error(), 1)
		return nil
	}
	b.Build(r.Context(), r.Body, o, out)
	return nil
}
