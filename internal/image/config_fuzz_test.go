package image

import (
	"encoding/json"
	"testing"
)

// FuzzParseConfig: any config blob either fails to parse or survives marshal → parse → marshal unchanged
// (the Docker-only fields and unknown keys round-trip), and never panics.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(`{"architecture":"amd64","os":"linux","config":{"Env":["A=1"],"Healthcheck":{"Test":["CMD","true"],"Interval":1000},"OnBuild":["RUN x"],"Shell":["/bin/bash","-c"]},"rootfs":{"type":"layers","diff_ids":[]}}`))
	f.Add([]byte(`{"os":"linux","config":{},"extra":{"k":[1,2]},"history":[{"empty_layer":true}]}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"config":null}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		c, err := ParseConfig(raw)
		if err != nil {
			return
		}
		b1, err := json.Marshal(c)
		if err != nil {
			t.Fatalf("marshal of a parsed config: %v", err)
		}
		c2, err := ParseConfig(b1)
		if err != nil {
			t.Fatalf("re-parse of %s: %v", b1, err)
		}
		b2, err := json.Marshal(c2)
		if err != nil || string(b1) != string(b2) {
			t.Fatalf("not stable:\n%s\n%s (%v)", b1, b2, err)
		}
	})
}
