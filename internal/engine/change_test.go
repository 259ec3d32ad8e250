package engine

import (
	containertypes "github.com/moby/moby/api/types/container"
	"reflect"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestApplyChange(t *testing.T) {
	var c ocispec.ImageConfig
	for _, ch := range []string{
		`CMD ["nginx", "-g", "daemon off;"]`, `ENTRYPOINT /docker-entrypoint.sh`, `ENV PATH=/usr/bin:/bin A="b c"`,
		`ENV LEGACY some value`, `EXPOSE 80 53/udp`, `LABEL a=b "c d"=e`, `USER nobody`, `WORKDIR /srv`,
		`STOPSIGNAL SIGQUIT`, `VOLUME ["/data"]`,
	} {
		if err := applyChange(&c, ch); err != nil {
			t.Fatalf("%s: %v", ch, err)
		}
	}
	if !reflect.DeepEqual(c.Cmd, []string{"nginx", "-g", "daemon off;"}) {
		t.Errorf("Cmd = %q", c.Cmd)
	}
	if !reflect.DeepEqual(c.Entrypoint, []string{"/bin/sh", "-c", "/docker-entrypoint.sh"}) {
		t.Errorf("Entrypoint = %q", c.Entrypoint)
	}
	if !reflect.DeepEqual(c.Env, []string{"PATH=/usr/bin:/bin", "A=b c", "LEGACY=some value"}) {
		t.Errorf("Env = %q", c.Env)
	}
	if _, ok := c.ExposedPorts["80/tcp"]; !ok {
		t.Errorf("ExposedPorts = %v", c.ExposedPorts)
	}
	if _, ok := c.ExposedPorts["53/udp"]; !ok {
		t.Errorf("ExposedPorts = %v", c.ExposedPorts)
	}
	if c.Labels["c d"] != "e" || c.Labels["a"] != "b" {
		t.Errorf("Labels = %v", c.Labels)
	}
	if c.User != "nobody" || c.WorkingDir != "/srv" || c.StopSignal != "SIGQUIT" {
		t.Errorf("User/WorkingDir/StopSignal = %q %q %q", c.User, c.WorkingDir, c.StopSignal)
	}
	for _, bad := range []string{"FROB x", "CMD", `LABEL a="b`, "STOPSIGNAL NOPE", "LABEL =x"} {
		if err := applyChange(&c, bad); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}

func TestMergeImageConfigDockerRules(t *testing.T) {
	img := &ocispec.ImageConfig{Entrypoint: []string{"/ep"}, Cmd: []string{"default"}, Env: []string{"PATH=/bin", "A=1"}, WorkingDir: "/w", User: "u"}
	// Cmd given: image Entrypoint kept, image Cmd replaced.
	m := mergeImageConfig(&containertypes.Config{Cmd: []string{"x"}, Env: []string{"A=2", "B=3"}}, img)
	if !reflect.DeepEqual(m.Entrypoint, []string{"/ep"}) || !reflect.DeepEqual(m.Cmd, []string{"x"}) {
		t.Errorf("entrypoint/cmd = %q %q", m.Entrypoint, m.Cmd)
	}
	if !reflect.DeepEqual(m.Env, []string{"PATH=/bin", "A=2", "B=3"}) || m.WorkingDir != "/w" || m.User != "u" {
		t.Errorf("env/wd/user = %q %q %q", m.Env, m.WorkingDir, m.User)
	}
	// Entrypoint given: image Cmd dropped.
	m = mergeImageConfig(&containertypes.Config{Entrypoint: []string{"/other"}}, img)
	if !reflect.DeepEqual(m.Entrypoint, []string{"/other"}) || len(m.Cmd) != 0 {
		t.Errorf("entrypoint override: %q %q", m.Entrypoint, m.Cmd)
	}
	// Neither: both from the image.
	m = mergeImageConfig(&containertypes.Config{}, img)
	if !reflect.DeepEqual(m.Entrypoint, []string{"/ep"}) || !reflect.DeepEqual(m.Cmd, []string{"default"}) {
		t.Errorf("defaults: %q %q", m.Entrypoint, m.Cmd)
	}
	// --entrypoint "" resets the image entrypoint.
	m = mergeImageConfig(&containertypes.Config{Entrypoint: []string{""}, Cmd: []string{"sh"}}, img)
	if len(m.Entrypoint) != 0 || !reflect.DeepEqual(m.Cmd, []string{"sh"}) {
		t.Errorf("reset: %q %q", m.Entrypoint, m.Cmd)
	}
}

func FuzzApplyChange(f *testing.F) {
	for _, s := range []string{`CMD ["a"]`, `ENV a=b c="d e"`, `LABEL 'x'=y`, `EXPOSE 80/udp`, `VOLUME ["/a"`, `ENV a`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var c ocispec.ImageConfig
		applyChange(&c, s) // must not panic
	})
}
