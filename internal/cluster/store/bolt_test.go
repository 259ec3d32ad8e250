package store_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/wharfhq/wharf/internal/cluster/store"
	"github.com/wharfhq/wharf/internal/cluster/store/storetest"
)

func TestBoltConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Interface {
		s, err := store.OpenBolt(filepath.Join(t.TempDir(), "state.db"), store.BoltOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestBoltHistoryBounded(t *testing.T) {
	s, err := store.OpenBolt(filepath.Join(t.TempDir(), "state.db"), store.BoltOptions{HistoryMaxEvents: 100, CompactInterval: time.Hour, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	for i := 0; i < 1000; i++ {
		if _, err := s.Create(ctx, fmt.Sprintf("/k/%d", i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	// size-triggered compaction runs in the background; wait for it
	deadline := time.Now().Add(20 * time.Second)
	for s.HistoryLen() > 300 {
		if time.Now().After(deadline) {
			t.Fatalf("history not compacted: %d events kept", s.HistoryLen())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cr, _ := s.CompactedRevision(ctx)
	if cr == 0 {
		t.Fatal("compacted revision not advanced")
	}
}

func TestBoltHistoryAge(t *testing.T) {
	s, err := store.OpenBolt(filepath.Join(t.TempDir(), "state.db"), store.BoltOptions{HistoryMaxAge: time.Millisecond, CompactInterval: 10 * time.Millisecond, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	for i := 0; i < 20; i++ {
		s.Create(ctx, fmt.Sprintf("/k/%d", i), []byte("v"))
	}
	deadline := time.Now().Add(20 * time.Second)
	for s.HistoryLen() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("old history not compacted: %d", s.HistoryLen())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// data itself is kept
	if l, _ := s.List(ctx, "/k/", store.ListOptions{}); len(l.KVs) != 20 {
		t.Fatalf("data lost: %d", len(l.KVs))
	}
}

func TestBoltReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := store.OpenBolt(path, store.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	kv, _ := s.Create(ctx, "/a", []byte("1"))
	s.Close()
	s, err = store.OpenBolt(path, store.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if r, _ := s.CurrentRevision(ctx); r != kv.ModRevision {
		t.Fatalf("revision after reopen %d want %d", r, kv.ModRevision)
	}
	w, err := s.Watch(ctx, "/", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	kv2, _ := s.Update(ctx, "/a", []byte("2"), kv.ModRevision)
	ev := <-w.Events()
	if ev.Revision() != kv2.ModRevision || ev.PrevKV == nil {
		t.Fatalf("event after reopen: %+v", ev)
	}
}
