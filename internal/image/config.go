package image

import (
	"bytes"
	"encoding/json"
	"sort"
	"strings"
	"time"

	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// DockerConfig holds the fields of Docker's image config ("config" object) that OCI's ImageConfig
// lacks: Healthcheck, OnBuild and Shell, with Docker's JSON names.
type DockerConfig = dockerspec.DockerOCIImageConfigExt

// HealthConfig is Docker's HEALTHCHECK settings (durations in nanoseconds in JSON).
type HealthConfig = dockerspec.HealthcheckConfig

// Config is an image config as Docker writes it: the OCI fields, Docker's extra container-config
// fields, and every other field the JSON held (Docker's "container_config", "docker_version",
// "Hostname"…), kept so that reading and writing a config loses nothing. A Config with no Docker
// field and nothing unknown marshals exactly as the plain ocispec.Image does.
type Config struct {
	ocispec.Image
	Docker DockerConfig

	extra       map[string]json.RawMessage // top-level fields neither OCI nor Docker-known
	configExtra map[string]json.RawMessage // fields of "config" that are neither OCI's nor in Docker
}

// ParseConfig reads an image config blob.
func ParseConfig(raw []byte) (Config, error) {
	var c Config
	if err := json.Unmarshal(raw, &c); err != nil {
		return Config{}, invalidf("invalid image config: %v", err)
	}
	return c, nil
}

var ociTopKeys = []string{"created", "author", "architecture", "os", "os.version", "os.features", "variant", "config", "rootfs", "history"}

var ociConfigKeys = []string{"User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Volumes", "WorkingDir", "Labels", "StopSignal", "ArgsEscaped",
	"Healthcheck", "OnBuild", "Shell"}

func knownKey(keys []string, k string) bool {
	for _, kk := range keys {
		if strings.EqualFold(kk, k) { // encoding/json matches field names case-insensitively
			return true
		}
	}
	return false
}

// UnmarshalJSON implements json.Unmarshaler.
func (c *Config) UnmarshalJSON(b []byte) error {
	*c = Config{}
	if err := json.Unmarshal(b, &c.Image); err != nil {
		return err
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		return err
	}
	for k, v := range top {
		if !knownKey(ociTopKeys, k) {
			if c.extra == nil {
				c.extra = map[string]json.RawMessage{}
			}
			c.extra[k] = v
		}
	}
	raw, ok := top["config"]
	if !ok || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return nil
	}
	if err := json.Unmarshal(raw, &c.Docker); err != nil {
		return err
	}
	var cm map[string]json.RawMessage
	if err := json.Unmarshal(raw, &cm); err != nil {
		return err
	}
	for k, v := range cm {
		if !knownKey(ociConfigKeys, k) {
			if c.configExtra == nil {
				c.configExtra = map[string]json.RawMessage{}
			}
			c.configExtra[k] = v
		}
	}
	return nil
}

// wireImage is ocispec.Image with the config object already encoded (same field order and names).
type wireImage struct {
	Created *time.Time `json:"created,omitempty"`
	Author  string     `json:"author,omitempty"`
	ocispec.Platform
	Config  json.RawMessage   `json:"config,omitempty"`
	RootFS  ocispec.RootFS    `json:"rootfs"`
	History []ocispec.History `json:"history,omitempty"`
}

// MarshalJSON implements json.Marshaler.
func (c Config) MarshalJSON() ([]byte, error) {
	hasDocker := c.Docker.Healthcheck != nil || c.Docker.OnBuild != nil || c.Docker.Shell != nil
	if !hasDocker && len(c.extra) == 0 && len(c.configExtra) == 0 {
		return json.Marshal(c.Image)
	}
	cfgJSON, err := json.Marshal(c.Image.Config)
	if err != nil {
		return nil, err
	}
	add := map[string]json.RawMessage{}
	for k, v := range c.configExtra {
		add[k] = v
	}
	if hasDocker {
		d, err := json.Marshal(c.Docker)
		if err != nil {
			return nil, err
		}
		var dm map[string]json.RawMessage
		if err := json.Unmarshal(d, &dm); err != nil {
			return nil, err
		}
		for k, v := range dm {
			add[k] = v
		}
	}
	if cfgJSON, err = spliceFields(cfgJSON, add); err != nil {
		return nil, err
	}
	out, err := json.Marshal(wireImage{Created: c.Created, Author: c.Author, Platform: c.Platform, Config: cfgJSON, RootFS: c.RootFS, History: c.History})
	if err != nil {
		return nil, err
	}
	return spliceFields(out, c.extra)
}

// spliceFields adds fields (sorted by name) at the end of an encoded JSON object.
func spliceFields(obj []byte, fields map[string]json.RawMessage) ([]byte, error) {
	if len(fields) == 0 {
		return obj, nil
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	body := bytes.TrimSpace(obj)
	b.Write(body[:len(body)-1])
	empty := bytes.Equal(bytes.TrimSpace(body[1:len(body)-1]), nil)
	for _, k := range keys {
		if !empty {
			b.WriteByte(',')
		}
		empty = false
		kj, _ := json.Marshal(k)
		b.Write(kj)
		b.WriteByte(':')
		var v bytes.Buffer
		if err := json.Compact(&v, fields[k]); err != nil {
			return nil, err
		}
		b.Write(v.Bytes())
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// Derive returns a copy of c for a new image made from it (build step, commit): the config object
// with its Docker and unknown fields is kept, slices and maps are copied, and the top-level fields
// that describe how this one image was made (Docker's "container", "container_config",
// "docker_version"…) are dropped.
func (c Config) Derive() Config {
	out := Config{Image: c.Image}
	ic := &out.Image.Config
	ic.Env = append([]string(nil), c.Config.Env...)
	ic.Cmd = cloneNil(c.Config.Cmd)
	ic.Entrypoint = cloneNil(c.Config.Entrypoint)
	ic.Labels = cloneMap(c.Config.Labels)
	ic.ExposedPorts = cloneSet(c.Config.ExposedPorts)
	ic.Volumes = cloneSet(c.Config.Volumes)
	out.History = append([]ocispec.History(nil), c.History...)
	out.RootFS = ocispec.RootFS{}
	out.Docker.OnBuild = cloneNil(c.Docker.OnBuild)
	out.Docker.Shell = cloneNil(c.Docker.Shell)
	if h := c.Docker.Healthcheck; h != nil {
		hc := *h
		hc.Test = cloneNil(h.Test)
		out.Docker.Healthcheck = &hc
	}
	if len(c.configExtra) > 0 {
		out.configExtra = map[string]json.RawMessage{}
		for k, v := range c.configExtra {
			out.configExtra[k] = v
		}
	}
	return out
}

func cloneNil(s []string) []string {
	if s == nil {
		return nil
	}
	return append([]string{}, s...)
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func cloneSet(m map[string]struct{}) map[string]struct{} {
	if m == nil {
		return nil
	}
	out := make(map[string]struct{}, len(m))
	for k := range m {
		out[k] = struct{}{}
	}
	return out
}

// FullConfig returns the image's config with its Docker-only and unknown fields (parsed from
// RawConfig).
func (i *Image) FullConfig() (Config, error) {
	if len(i.RawConfig) == 0 {
		return Config{Image: i.Config, Docker: i.Docker}, nil
	}
	return ParseConfig(i.RawConfig)
}
