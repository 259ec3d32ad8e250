package image

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// A config as dockerd 20.10 writes it for a built image: Docker-only fields in "config", and
// top-level fields OCI does not know.
const dockerConfigJSON = `{"architecture":"amd64","config":{"Hostname":"","Domainname":"","User":"65534","AttachStdin":false,
"Env":["PATH=/bin"],"Cmd":["echo hi"],"Healthcheck":{"Test":["CMD","true"],"Interval":30000000000,"Retries":3},
"ArgsEscaped":true,"Image":"sha256:0123","WorkingDir":"/srv","Entrypoint":["/bin/sh","-c"],
"OnBuild":["RUN echo child"],"Labels":{"a":"b"},"Shell":["/bin/sh","-ec"],"StopSignal":"SIGTERM"},
"container":"abc","container_config":{"Hostname":"abc","Cmd":["/bin/sh","-c","#(nop) CMD"]},
"created":"2024-01-02T03:04:05.123456789Z","docker_version":"20.10.24","history":[{"created":"2024-01-02T03:04:05Z","created_by":"x","empty_layer":true}],
"os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`

func TestConfigRoundTripsDockerFields(t *testing.T) {
	c, err := ParseConfig([]byte(dockerConfigJSON))
	if err != nil {
		t.Fatal(err)
	}
	if c.Docker.Healthcheck == nil || !reflect.DeepEqual(c.Docker.Healthcheck.Test, []string{"CMD", "true"}) ||
		c.Docker.Healthcheck.Interval != 30*time.Second || c.Docker.Healthcheck.Retries != 3 {
		t.Fatalf("healthcheck: %+v", c.Docker.Healthcheck)
	}
	if !reflect.DeepEqual(c.Docker.OnBuild, []string{"RUN echo child"}) || !reflect.DeepEqual(c.Docker.Shell, []string{"/bin/sh", "-ec"}) {
		t.Fatalf("onbuild %q shell %q", c.Docker.OnBuild, c.Docker.Shell)
	}
	if c.Config.User != "65534" || c.Config.WorkingDir != "/srv" || c.Config.StopSignal != "SIGTERM" {
		t.Fatalf("oci fields: %+v", c.Config)
	}
	out, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	// Every field of the original survives, with the same value.
	var want, got map[string]any
	if err := json.Unmarshal([]byte(dockerConfigJSON), &want); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(want, got) {
		t.Fatalf("round trip changed the config:\nwant %v\ngot  %v", want, got)
	}
	// Marshalling is deterministic (image IDs are digests of it).
	out2, _ := json.Marshal(c)
	if !bytes.Equal(out, out2) {
		t.Fatal("two marshallings differ")
	}

	// Derive keeps the config object (Docker fields and unknown ones) but drops what described the
	// one image: container, container_config, docker_version.
	d := c.Derive()
	d.Config.Env = append(d.Config.Env, "X=1")
	d.Docker.OnBuild[0] = "changed"
	if len(c.Config.Env) != 1 || c.Docker.OnBuild[0] != "RUN echo child" {
		t.Fatal("Derive shares slices with its source")
	}
	dj, _ := json.Marshal(d)
	var dm map[string]any
	json.Unmarshal(dj, &dm)
	for _, k := range []string{"container", "container_config", "docker_version"} {
		if _, ok := dm[k]; ok {
			t.Errorf("derived config kept %s", k)
		}
	}
	cfg := dm["config"].(map[string]any)
	for _, k := range []string{"Healthcheck", "Shell", "Hostname", "Image", "ArgsEscaped"} {
		if _, ok := cfg[k]; !ok {
			t.Errorf("derived config lost config.%s", k)
		}
	}
}

func TestConfigPlainMarshalsAsOCI(t *testing.T) {
	ts := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	oci := ocispec.Image{Created: &ts, Author: `a "config":{`, Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"},
		Config: ocispec.ImageConfig{Env: []string{"A=1"}, Cmd: []string{"sh"}}, RootFS: ocispec.RootFS{Type: "layers"}}
	a, _ := json.Marshal(oci)
	b, err := json.Marshal(Config{Image: oci})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatalf("plain config differs from OCI's encoding:\n%s\n%s", a, b)
	}
	// With Docker fields the OCI part keeps its encoding and the fields are added to "config".
	c := Config{Image: oci, Docker: DockerConfig{Shell: []string{"/bin/bash", "-c"}, Healthcheck: &HealthConfig{Test: []string{"NONE"}}}}
	raw, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseConfig(raw)
	if err != nil {
		t.Fatalf("%v: %s", err, raw)
	}
	if !reflect.DeepEqual(back.Docker, c.Docker) || !reflect.DeepEqual(back.Image, oci) {
		t.Fatalf("round trip: %+v", back)
	}
	// An empty config object gets the fields without a stray comma.
	raw, err = json.Marshal(Config{Docker: DockerConfig{OnBuild: []string{"RUN x"}}})
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(raw) || !bytes.Contains(raw, []byte(`"config":{"OnBuild":["RUN x"]}`)) {
		t.Fatalf("%s", raw)
	}
}

func TestCreateImageKeepsDockerFields(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	hc := &HealthConfig{Test: []string{"CMD-SHELL", "true"}, Interval: time.Second, Retries: 2}
	img, err := s.CreateImage(CreateOptions{Config: Config{Docker: DockerConfig{Healthcheck: hc, OnBuild: []string{"RUN a"}, Shell: []string{"/bin/ash", "-c"}}}, Ref: "hc:1"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Resolve("hc:1")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != img.ID || !reflect.DeepEqual(got.Docker.Healthcheck, hc) || !reflect.DeepEqual(got.Docker.OnBuild, []string{"RUN a"}) ||
		!reflect.DeepEqual(got.Docker.Shell, []string{"/bin/ash", "-c"}) {
		t.Fatalf("%+v", got.Docker)
	}
	if !bytes.Contains(got.RawConfig, []byte(`"Healthcheck":{"Test":["CMD-SHELL","true"],"Interval":1000000000,"Retries":2}`)) {
		t.Fatalf("raw config: %s", got.RawConfig)
	}
	// docker save writes the config blob as stored: the fields are in the archive.
	var buf bytes.Buffer
	if err := s.Save(&buf, []string{"hc:1"}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(buf.Bytes(), []byte(`"OnBuild":["RUN a"]`)) {
		t.Fatal("saved archive lost OnBuild")
	}
	// …and loading it into another store keeps them.
	s2, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if _, err := s2.Load(&buf); err != nil {
		t.Fatal(err)
	}
	l, err := s2.Resolve("hc:1")
	if err != nil {
		t.Fatal(err)
	}
	if l.ID != img.ID || !reflect.DeepEqual(l.Docker.Shell, []string{"/bin/ash", "-c"}) {
		t.Fatalf("loaded: %s %+v", l.ID, l.Docker)
	}
	full, err := l.FullConfig()
	if err != nil || full.Docker.Healthcheck == nil {
		t.Fatalf("FullConfig: %v %+v", err, full.Docker)
	}
}
