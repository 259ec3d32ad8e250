package store_test

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/embed"

	"github.com/wharfhq/wharf/internal/cluster/store"
	"github.com/wharfhq/wharf/internal/cluster/store/storetest"
)

func freeURL(t *testing.T) url.URL {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	u, _ := url.Parse("http://" + l.Addr().String())
	return *u
}

// startEtcd runs a real single-member etcd in a temp dir.
func startEtcd(t *testing.T) string {
	cfg := embed.NewConfig()
	cfg.Dir = t.TempDir()
	cfg.LogLevel = "error"
	client, peer := freeURL(t), freeURL(t)
	cfg.ListenClientUrls = []url.URL{client}
	cfg.AdvertiseClientUrls = []url.URL{client}
	cfg.ListenPeerUrls = []url.URL{peer}
	cfg.AdvertisePeerUrls = []url.URL{peer}
	cfg.InitialCluster = cfg.Name + "=" + peer.String()
	cfg.UnsafeNoFsync = true
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		t.Fatal("etcd did not start")
	}
	return client.String()
}

func TestEtcdConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real etcd")
	}
	ep := startEtcd(t)
	var n atomic.Int64
	storetest.Run(t, func(t *testing.T) store.Interface {
		// one etcd, isolated by prefix; compaction is global so the suite's
		// compaction test gets its own etcd
		if t.Name() == "TestEtcdConformance/Compaction" {
			ep := startEtcd(t)
			s, err := store.OpenEtcd(context.Background(), store.EtcdOptions{Endpoints: []string{ep}})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}
		s, err := store.OpenEtcd(context.Background(), store.EtcdOptions{Endpoints: []string{ep}, Prefix: fmt.Sprintf("/t%d", n.Add(1))})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
