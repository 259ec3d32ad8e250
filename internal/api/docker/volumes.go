package docker

import (
	"net/http"
	"strings"

	"github.com/wharfhq/wharf/internal/engine"
)

func volumeJSON(v *engine.Volume) map[string]any {
	opts := v.Options
	if opts == nil {
		opts = map[string]string{}
	}
	return map[string]any{"Name": v.Name, "Driver": v.Driver, "Mountpoint": v.Mountpoint, "CreatedAt": v.CreatedAt.Format("2006-01-02T15:04:05Z07:00"),
		"Labels": v.Labels, "Options": opts, "Scope": "local"}
}

func (s *Server) routeVolumes(r *request, seg []string) error {
	switch {
	case len(seg) == 0 && r.Method == http.MethodGet:
		f, err := parseFilters(r.query("filters"))
		if err != nil {
			return err
		}
		out := []any{}
		for _, v := range s.e.Volumes() {
			if matchVolume(s.e, v, f) {
				out = append(out, volumeJSON(v))
			}
		}
		return writeJSON(r.w, http.StatusOK, map[string]any{"Volumes": out, "Warnings": []string{}})
	case len(seg) == 1 && seg[0] == "create" && r.Method == http.MethodPost:
		var req struct {
			Name       string
			Driver     string
			DriverOpts map[string]string
			Labels     map[string]string
		}
		if err := decodeJSON(r, &req); err != nil {
			return err
		}
		if req.Driver != "" && req.Driver != "local" {
			return engine.NotFound("plugin %q not found", req.Driver)
		}
		v, err := s.e.CreateVolume(req.Name, req.Labels, req.DriverOpts)
		if err != nil {
			return err
		}
		return writeJSON(r.w, http.StatusCreated, volumeJSON(v))
	case len(seg) == 1 && seg[0] == "prune" && r.Method == http.MethodPost:
		f, _ := parseFilters(r.query("filters"))
		all := len(f["all"]) > 0 && (f["all"][0] == "true" || f["all"][0] == "1")
		names, space := s.e.PruneVolumes(all)
		if names == nil {
			names = []string{}
		}
		return writeJSON(r.w, http.StatusOK, map[string]any{"VolumesDeleted": names, "SpaceReclaimed": space})
	case len(seg) == 1 && r.Method == http.MethodGet:
		v, err := s.e.Volume(seg[0])
		if err != nil {
			return err
		}
		return writeJSON(r.w, http.StatusOK, volumeJSON(v))
	case len(seg) == 1 && r.Method == http.MethodDelete:
		if err := s.e.RemoveVolume(seg[0], r.bool("force")); err != nil {
			return err
		}
		r.w.WriteHeader(http.StatusNoContent)
		return nil
	}
	return engine.NotFound("page not found")
}

func matchVolume(e *engine.Engine, v *engine.Volume, f map[string][]string) bool {
	for k, vs := range f {
		ok := false
		for _, want := range vs {
			switch k {
			case "name":
				ok = ok || strings.Contains(v.Name, want)
			case "dangling":
				inUse := len(e.VolumeInUse(v.Name)) > 0
				ok = ok || (want == "true" || want == "1") != inUse
			case "label":
				kk, vv, hasV := strings.Cut(want, "=")
				lv, has := v.Labels[kk]
				ok = ok || has && (!hasV || lv == vv)
			case "driver":
				ok = ok || v.Driver == want
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
