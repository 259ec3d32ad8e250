// Package storetest is the conformance suite every store.Interface
// implementation must pass.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/wharfhq/wharf/internal/cluster/store"
)

// Opener returns a fresh, empty store whose keys are isolated from other
// subtests (a new database or a unique prefix).
type Opener func(t *testing.T) store.Interface

// Run runs the whole suite.
func Run(t *testing.T, open Opener) {
	t.Run("CreateGet", func(t *testing.T) { testCreateGet(t, open(t)) })
	t.Run("UpdateCAS", func(t *testing.T) { testUpdate(t, open(t)) })
	t.Run("Delete", func(t *testing.T) { testDelete(t, open(t)) })
	t.Run("ListPaging", func(t *testing.T) { testList(t, open(t)) })
	t.Run("ListAtRevision", func(t *testing.T) { testListAt(t, open(t)) })
	t.Run("WatchFromRevision", func(t *testing.T) { testWatch(t, open(t)) })
	t.Run("WatchLive", func(t *testing.T) { testWatchLive(t, open(t)) })
	t.Run("Compaction", func(t *testing.T) { testCompact(t, open(t)) })
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// must fails the running test (through a panic that names the error) when
// err is set.
func must[T any](v T, err error) T {
	if err != nil {
		panic(fmt.Sprintf("unexpected store error: %v", err))
	}
	return v
}

func testCreateGet(t *testing.T, s store.Interface) {
	c := ctx(t)
	r0 := must(s.CurrentRevision(c))
	kv := must(s.Create(c, "/a/1", []byte("one")))
	if kv.ModRevision <= r0 || kv.CreateRevision != kv.ModRevision {
		t.Fatalf("bad revisions %+v after %d", kv, r0)
	}
	if _, err := s.Create(c, "/a/1", []byte("again")); !errors.Is(err, store.ErrExists) {
		t.Fatalf("create existing: %v", err)
	}
	got := must(s.Get(c, "/a/1"))
	if string(got.Value) != "one" || got.ModRevision != kv.ModRevision {
		t.Fatalf("get: %+v", got)
	}
	if _, err := s.Get(c, "/a/2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get missing: %v", err)
	}
	if r := must(s.CurrentRevision(c)); r != kv.ModRevision {
		t.Fatalf("current revision %d, want %d", r, kv.ModRevision)
	}
}

func testUpdate(t *testing.T, s store.Interface) {
	c := ctx(t)
	kv := must(s.Create(c, "/u/1", []byte("v1")))
	kv2 := must(s.Update(c, "/u/1", []byte("v2"), kv.ModRevision))
	if kv2.ModRevision <= kv.ModRevision || kv2.CreateRevision != kv.CreateRevision {
		t.Fatalf("update revisions: %+v -> %+v", kv, kv2)
	}
	_, err := s.Update(c, "/u/1", []byte("stale"), kv.ModRevision)
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("stale update: %v", err)
	}
	var ce *store.ConflictError
	if !errors.As(err, &ce) || string(ce.Current.Value) != "v2" || ce.Current.ModRevision != kv2.ModRevision {
		t.Fatalf("conflict must carry current value: %#v", err)
	}
	kv3 := must(s.Update(c, "/u/1", []byte("v3"), 0))
	if string(must(s.Get(c, "/u/1")).Value) != "v3" || kv3.ModRevision <= kv2.ModRevision {
		t.Fatal("unconditional update lost")
	}
	if _, err := s.Update(c, "/u/missing", []byte("x"), 0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("update missing: %v", err)
	}
}

func testDelete(t *testing.T, s store.Interface) {
	c := ctx(t)
	kv := must(s.Create(c, "/d/1", []byte("v1")))
	if _, _, err := s.Delete(c, "/d/1", kv.ModRevision+100); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("delete with wrong precondition: %v", err)
	}
	prev, rev, err := s.Delete(c, "/d/1", kv.ModRevision)
	if err != nil || string(prev.Value) != "v1" || rev <= kv.ModRevision {
		t.Fatalf("delete: %+v %d %v", prev, rev, err)
	}
	if _, _, err := s.Delete(c, "/d/1", 0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
	if _, err := s.Get(c, "/d/1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get deleted: %v", err)
	}
	must(s.Create(c, "/d/1", []byte("again")))
}

func testList(t *testing.T, s store.Interface) {
	c := ctx(t)
	for i := 0; i < 7; i++ {
		must(s.Create(c, fmt.Sprintf("/l/%02d", i), []byte{byte('a' + i)}))
	}
	must(s.Create(c, "/lx/other", []byte("x")))
	must(s.Create(c, "/k/before", []byte("x")))
	all := must(s.List(c, "/l/", store.ListOptions{}))
	if len(all.KVs) != 7 || all.More {
		t.Fatalf("list all: %d more=%v", len(all.KVs), all.More)
	}
	for i, kv := range all.KVs {
		if kv.Key != fmt.Sprintf("/l/%02d", i) {
			t.Fatalf("order: %d %s", i, kv.Key)
		}
	}
	var keys []string
	rev := int64(0)
	after := ""
	for page := 0; ; page++ {
		r := must(s.List(c, "/l/", store.ListOptions{Limit: 3, StartAfter: after, Revision: rev}))
		if rev == 0 {
			rev = r.Revision
			// a write between pages must not show up
			must(s.Create(c, "/l/03a", []byte("late")))
		}
		for _, kv := range r.KVs {
			keys = append(keys, kv.Key)
		}
		if !r.More {
			break
		}
		after = r.KVs[len(r.KVs)-1].Key
		if page > 5 {
			t.Fatal("paging does not end")
		}
	}
	if len(keys) != 7 {
		t.Fatalf("paged keys: %v", keys)
	}
}

func testListAt(t *testing.T, s store.Interface) {
	c := ctx(t)
	a := must(s.Create(c, "/h/a", []byte("a1")))
	must(s.Create(c, "/h/b", []byte("b1")))
	snap := must(s.CurrentRevision(c))
	must(s.Update(c, "/h/a", []byte("a2"), a.ModRevision))
	if _, _, err := s.Delete(c, "/h/b", 0); err != nil {
		t.Fatal(err)
	}
	must(s.Create(c, "/h/c", []byte("c1")))
	old := must(s.List(c, "/h/", store.ListOptions{Revision: snap}))
	got := map[string]string{}
	for _, kv := range old.KVs {
		got[kv.Key] = string(kv.Value)
	}
	if len(got) != 2 || got["/h/a"] != "a1" || got["/h/b"] != "b1" || old.Revision != snap {
		t.Fatalf("list at %d: %v (rev %d)", snap, got, old.Revision)
	}
	now := must(s.List(c, "/h/", store.ListOptions{}))
	got = map[string]string{}
	for _, kv := range now.KVs {
		got[kv.Key] = string(kv.Value)
	}
	if len(got) != 2 || got["/h/a"] != "a2" || got["/h/c"] != "c1" {
		t.Fatalf("list now: %v", got)
	}
}

func recv(t *testing.T, w store.Watcher, n int) []store.Event {
	t.Helper()
	var evs []store.Event
	timeout := time.After(20 * time.Second)
	for len(evs) < n {
		select {
		case ev, ok := <-w.Events():
			if !ok {
				t.Fatalf("watch closed after %d events: %v", len(evs), w.Err())
			}
			evs = append(evs, ev)
		case <-timeout:
			t.Fatalf("got %d of %d events", len(evs), n)
		}
	}
	return evs
}

func testWatch(t *testing.T, s store.Interface) {
	c := ctx(t)
	start := must(s.CurrentRevision(c))
	a := must(s.Create(c, "/w/a", []byte("1")))
	must(s.Create(c, "/wx/ignored", []byte("x")))
	must(s.Update(c, "/w/a", []byte("2"), a.ModRevision))
	if _, _, err := s.Delete(c, "/w/a", 0); err != nil {
		t.Fatal(err)
	}
	w := must(s.Watch(c, "/w/", start))
	defer w.Stop()
	evs := recv(t, w, 3)
	if evs[0].Type != store.EventPut || evs[0].PrevKV != nil || string(evs[0].KV.Value) != "1" {
		t.Fatalf("event 0: %+v", evs[0])
	}
	if evs[1].Type != store.EventPut || evs[1].PrevKV == nil || string(evs[1].PrevKV.Value) != "1" || string(evs[1].KV.Value) != "2" {
		t.Fatalf("event 1: %+v", evs[1])
	}
	if evs[2].Type != store.EventDelete || evs[2].PrevKV == nil || string(evs[2].PrevKV.Value) != "2" {
		t.Fatalf("event 2: %+v", evs[2])
	}
	for i := 1; i < 3; i++ {
		if evs[i].Revision() <= evs[i-1].Revision() {
			t.Fatal("events out of order")
		}
	}
	// live events follow the backlog without a gap
	must(s.Create(c, "/w/b", []byte("3")))
	ev := recv(t, w, 1)[0]
	if ev.KV.Key != "/w/b" {
		t.Fatalf("live event: %+v", ev)
	}
	// watching from a revision in the middle skips what came before
	w2 := must(s.Watch(c, "/w/", evs[1].Revision()))
	defer w2.Stop()
	e2 := recv(t, w2, 2)
	if e2[0].Type != store.EventDelete || e2[1].KV.Key != "/w/b" {
		t.Fatalf("mid watch: %+v", e2)
	}
}

func testWatchLive(t *testing.T, s store.Interface) {
	c := ctx(t)
	must(s.Create(c, "/live/old", []byte("x")))
	w := must(s.Watch(c, "/live/", 0))
	const n = 200
	done := make(chan error, 1)
	go func() {
		for i := 0; i < n; i++ {
			if _, err := s.Create(c, fmt.Sprintf("/live/%03d", i), []byte("v")); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	evs := recv(t, w, n)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for i, ev := range evs {
		if ev.KV.Key != fmt.Sprintf("/live/%03d", i) {
			t.Fatalf("event %d: %s", i, ev.KV.Key)
		}
	}
	w.Stop()
	// the channel closes after Stop
	deadline := time.After(10 * time.Second)
	for {
		select {
		case _, ok := <-w.Events():
			if !ok {
				return
			}
		case <-deadline:
			t.Fatal("watch channel not closed after Stop")
		}
	}
}

func testCompact(t *testing.T, s store.Interface) {
	c := ctx(t)
	first := must(s.Create(c, "/c/a", []byte("1")))
	var last store.KeyValue
	for i := 0; i < 10; i++ {
		last = must(s.Update(c, "/c/a", []byte(fmt.Sprint(i)), 0))
	}
	if err := s.Compact(c, last.ModRevision-2); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Watch(c, "/c/", first.ModRevision); !errors.Is(err, store.ErrCompacted) {
		t.Fatalf("watch from compacted revision: %v", err)
	}
	if _, err := s.List(c, "/c/", store.ListOptions{Revision: first.ModRevision}); !errors.Is(err, store.ErrCompacted) {
		t.Fatalf("list at compacted revision: %v", err)
	}
	w := must(s.Watch(c, "/c/", last.ModRevision-2))
	defer w.Stop()
	evs := recv(t, w, 2)
	if evs[1].Revision() != last.ModRevision {
		t.Fatalf("watch after compaction: %+v", evs)
	}
	if cr := must(s.CompactedRevision(c)); cr != last.ModRevision-2 {
		t.Fatalf("compacted revision %d, want %d", cr, last.ModRevision-2)
	}
}
