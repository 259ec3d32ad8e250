package docker

import (
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/wharfhq/wharf/internal/engine"
)

func TestParseFilters(t *testing.T) {
	for _, raw := range []string{`{"label":{"a=b":true},"status":{"running":true}}`, `{"label":["a=b"],"status":["running"]}`} {
		f, err := parseFilters(raw)
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		if !reflect.DeepEqual(f["label"], []string{"a=b"}) || !reflect.DeepEqual(f["status"], []string{"running"}) {
			t.Errorf("%s: %v", raw, f)
		}
	}
	if _, err := parseFilters(`{"label":`); err == nil || engine.KindOf(err) != engine.KindInvalid {
		t.Errorf("malformed filters: want an invalid-argument error, got %v", err)
	}
}

func TestParseTimeParam(t *testing.T) {
	got, err := parseTimeParam("1700000000.5")
	if err != nil || got.Unix() != 1700000000 || got.Nanosecond() != 500000000 {
		t.Errorf("unix seconds: %v %v", got, err)
	}
	if got, err := parseTimeParam("2024-01-02T03:04:05Z"); err != nil || got.Year() != 2024 {
		t.Errorf("RFC 3339: %v %v", got, err)
	}
	if got, err := parseTimeParam("10m"); err != nil || time.Since(got) < 9*time.Minute {
		t.Errorf("duration: %v %v", got, err)
	}
	if _, err := parseTimeParam("yesterday"); err == nil {
		t.Error("want an error for a bad time")
	}
}

func TestVersionLess(t *testing.T) {
	vs := []string{"1.50", "1.9", "1.24", "1.41", "1.100"}
	sort.Slice(vs, func(i, j int) bool { return versionLess(vs[i], vs[j]) })
	if !reflect.DeepEqual(vs, []string{"1.9", "1.24", "1.41", "1.50", "1.100"}) {
		t.Errorf("sorted: %v", vs)
	}
}

func TestEventFilter(t *testing.T) {
	ev := engine.Event{Type: "container", Action: "start", ID: "abcdef", Attrs: map[string]string{"name": "web", "tier": "front"}}
	for f, want := range map[string]bool{
		`{"type":["container"]}`: true, `{"type":["image"]}`: false, `{"container":["web"]}`: true,
		`{"container":["abc"]}`: true, `{"event":["die"]}`: false, `{"label":["tier=front"]}`: true, `{"label":["tier=back"]}`: false,
	} {
		m, _ := parseFilters(f)
		if got := eventFilter(m).match(ev); got != want {
			t.Errorf("%s: match = %v, want %v", f, got, want)
		}
	}
}

func FuzzParseFilters(f *testing.F) {
	for _, s := range []string{`{"a":{"b":true}}`, `{"a":["b"]}`, `{}`, `[`, `{"a":1}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := parseFilters(s)
		if err == nil && m == nil {
			t.Fatal("nil map without an error")
		}
	})
}

func FuzzParseTimeParam(f *testing.F) {
	for _, s := range []string{"1700000000", "1700000000.123456789", "2024-01-02T03:04:05Z", "5m", "", "1.2.3", "-1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		parseTimeParam(s) // must not panic
	})
}
