package engine

import (
	"encoding/json"
	goruntime "runtime"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func goarch() string { return goruntime.GOARCH }

// applyChange applies one Dockerfile instruction given to `docker import --change` / `commit --change`.
func applyChange(c *ocispec.ImageConfig, change string) error {
	change = strings.TrimSpace(change)
	i := strings.IndexAny(change, " \t")
	if i < 0 {
		return Invalid("%s is not a valid change command", change)
	}
	cmd, rest := strings.ToUpper(change[:i]), strings.TrimSpace(change[i+1:])
	switch cmd {
	case "CMD":
		c.Cmd = parseCmdForm(rest)
	case "ENTRYPOINT":
		c.Entrypoint = parseCmdForm(rest)
	case "ENV":
		kvs, err := parseKeyValues(rest, true)
		if err != nil {
			return err
		}
		c.Env = mergeEnv(c.Env, kvs)
	case "LABEL":
		kvs, err := parseKeyValues(rest, false)
		if err != nil {
			return err
		}
		if c.Labels == nil {
			c.Labels = map[string]string{}
		}
		for _, kv := range kvs {
			k, v, _ := strings.Cut(kv, "=")
			c.Labels[k] = v
		}
	case "EXPOSE":
		if c.ExposedPorts == nil {
			c.ExposedPorts = map[string]struct{}{}
		}
		for _, p := range strings.Fields(rest) {
			if !strings.Contains(p, "/") {
				p += "/tcp"
			}
			c.ExposedPorts[p] = struct{}{}
		}
	case "USER":
		c.User = rest
	case "WORKDIR":
		c.WorkingDir = rest
	case "STOPSIGNAL":
		if _, err := ParseSignal(rest); err != nil {
			return err
		}
		c.StopSignal = rest
	case "VOLUME":
		var vols []string
		if strings.HasPrefix(rest, "[") {
			if err := json.Unmarshal([]byte(rest), &vols); err != nil {
				return Invalid("VOLUME: %v", err)
			}
		} else {
			vols = strings.Fields(rest)
		}
		if c.Volumes == nil {
			c.Volumes = map[string]struct{}{}
		}
		for _, v := range vols {
			c.Volumes[v] = struct{}{}
		}
	case "ONBUILD":
	default:
		return Invalid("%s is not a valid change command", cmd)
	}
	return nil
}

// parseCmdForm parses exec form (JSON array) or shell form (wrapped in /bin/sh -c).
func parseCmdForm(s string) []string {
	if strings.HasPrefix(s, "[") {
		var a []string
		if json.Unmarshal([]byte(s), &a) == nil {
			return a
		}
	}
	return []string{"/bin/sh", "-c", s}
}

// parseKeyValues parses `k=v k2="v 2"` or the legacy `k v` form (ENV only).
func parseKeyValues(s string, legacy bool) ([]string, error) {
	if legacy && !strings.Contains(strings.Fields(s + " x")[0], "=") {
		f := strings.SplitN(s, " ", 2)
		if len(f) != 2 {
			return nil, Invalid("ENV must have two arguments")
		}
		return []string{f[0] + "=" + strings.TrimSpace(f[1])}, nil
	}
	var out []string
	for len(s) > 0 {
		s = strings.TrimLeft(s, " \t")
		if s == "" {
			break
		}
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return nil, Invalid("Syntax error - can't find = in %q. Must be of the form: name=value", strings.Fields(s)[0])
		}
		key := unquote(s[:eq])
		s = s[eq+1:]
		var val strings.Builder
		quote := byte(0)
		j := 0
		for ; j < len(s); j++ {
			ch := s[j]
			if quote != 0 {
				if ch == quote {
					quote = 0
					continue
				}
				if ch == '\\' && quote == '"' && j+1 < len(s) {
					j++
					val.WriteByte(s[j])
					continue
				}
				val.WriteByte(ch)
				continue
			}
			if ch == '"' || ch == '\'' {
				quote = ch
				continue
			}
			if ch == ' ' || ch == '\t' {
				break
			}
			if ch == '\\' && j+1 < len(s) {
				j++
				val.WriteByte(s[j])
				continue
			}
			val.WriteByte(ch)
		}
		if quote != 0 {
			return nil, Invalid("unexpected end of statement while looking for matching %c", quote)
		}
		out = append(out, key+"="+val.String())
		s = s[j:]
	}
	return out, nil
}

func unquote(s string) string {
	if len(s) >= 2 && (s[0] == '"' && s[len(s)-1] == '"' || s[0] == '\'' && s[len(s)-1] == '\'') {
		return s[1 : len(s)-1]
	}
	return s
}
