package store

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// EtcdOptions configures the etcd v3 implementation.
type EtcdOptions struct {
	Endpoints []string
	TLS       *tls.Config
	// Prefix is prepended to every key (default none); lets several Wharf
	// clusters share one etcd.
	Prefix      string
	DialTimeout time.Duration
}

// Etcd stores everything in an etcd v3 cluster.
type Etcd struct {
	cli    *clientv3.Client
	prefix string
}

// OpenEtcd connects to etcd and checks that it answers.
func OpenEtcd(ctx context.Context, opts EtcdOptions) (*Etcd, error) {
	if opts.DialTimeout == 0 {
		opts.DialTimeout = 5 * time.Second
	}
	eps := make([]string, 0, len(opts.Endpoints))
	for _, e := range opts.Endpoints {
		eps = append(eps, strings.TrimPrefix(strings.TrimPrefix(e, "https://"), "http://"))
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: eps, TLS: opts.TLS, DialTimeout: opts.DialTimeout, Context: ctx})
	if err != nil {
		return nil, fmt.Errorf("connect to etcd %v: %w", opts.Endpoints, err)
	}
	cctx, cancel := context.WithTimeout(ctx, opts.DialTimeout)
	defer cancel()
	if _, err := cli.Get(cctx, "/health-probe"); err != nil {
		cli.Close()
		return nil, fmt.Errorf("connect to etcd %v: %w", opts.Endpoints, err)
	}
	return &Etcd{cli: cli, prefix: opts.Prefix}, nil
}

func (s *Etcd) kv(k *mvccpb.KeyValue) KeyValue {
	return KeyValue{Key: strings.TrimPrefix(string(k.Key), s.prefix), Value: k.Value, CreateRevision: k.CreateRevision, ModRevision: k.ModRevision}
}

func mapEtcdErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, rpctypes.ErrCompacted):
		return ErrCompacted
	case errors.Is(err, rpctypes.ErrFutureRev):
		return ErrFutureRevision
	}
	return err
}

// Get implements Interface.
func (s *Etcd) Get(ctx context.Context, key string) (KeyValue, error) {
	resp, err := s.cli.Get(ctx, s.prefix+key)
	if err != nil {
		return KeyValue{}, mapEtcdErr(err)
	}
	if len(resp.Kvs) == 0 {
		return KeyValue{}, ErrNotFound
	}
	return s.kv(resp.Kvs[0]), nil
}

// List implements Interface.
func (s *Etcd) List(ctx context.Context, prefix string, opts ListOptions) (ListResult, error) {
	start := s.prefix + prefix
	if opts.StartAfter != "" && opts.StartAfter >= prefix {
		start = s.prefix + opts.StartAfter + "\x00"
	}
	ops := []clientv3.OpOption{clientv3.WithRange(s.prefix + PrefixEnd(prefix))}
	if prefix == "" {
		ops = []clientv3.OpOption{clientv3.WithRange(PrefixEnd(s.prefix))}
		if s.prefix == "" {
			ops = []clientv3.OpOption{clientv3.WithFromKey()}
			if start == "" {
				start = "\x00"
			}
		}
	}
	if opts.Revision > 0 {
		ops = append(ops, clientv3.WithRev(opts.Revision))
	}
	if opts.Limit > 0 {
		ops = append(ops, clientv3.WithLimit(opts.Limit))
	}
	resp, err := s.cli.Get(ctx, start, ops...)
	if err != nil {
		return ListResult{}, mapEtcdErr(err)
	}
	res := ListResult{Revision: resp.Header.Revision, More: resp.More}
	if opts.Revision > 0 {
		res.Revision = opts.Revision
	}
	for _, k := range resp.Kvs {
		res.KVs = append(res.KVs, s.kv(k))
	}
	return res, nil
}

// Create implements Interface.
func (s *Etcd) Create(ctx context.Context, key string, value []byte) (KeyValue, error) {
	k := s.prefix + key
	resp, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).Then(clientv3.OpPut(k, string(value))).Commit()
	if err != nil {
		return KeyValue{}, mapEtcdErr(err)
	}
	if !resp.Succeeded {
		return KeyValue{}, ErrExists
	}
	rev := resp.Header.Revision
	return KeyValue{Key: key, Value: value, CreateRevision: rev, ModRevision: rev}, nil
}

// Update implements Interface.
func (s *Etcd) Update(ctx context.Context, key string, value []byte, expected int64) (KeyValue, error) {
	k := s.prefix + key
	cmp := clientv3.Compare(clientv3.ModRevision(k), "=", expected)
	if expected == 0 {
		cmp = clientv3.Compare(clientv3.CreateRevision(k), ">", 0)
	}
	resp, err := s.cli.Txn(ctx).If(cmp).Then(clientv3.OpPut(k, string(value), clientv3.WithPrevKV())).Else(clientv3.OpGet(k)).Commit()
	if err != nil {
		return KeyValue{}, mapEtcdErr(err)
	}
	if !resp.Succeeded {
		kvs := resp.Responses[0].GetResponseRange().Kvs
		if len(kvs) == 0 {
			return KeyValue{}, ErrNotFound
		}
		return KeyValue{}, &ConflictError{Current: s.kv(kvs[0])}
	}
	put := resp.Responses[0].GetResponsePut()
	create := resp.Header.Revision
	if put.PrevKv != nil {
		create = put.PrevKv.CreateRevision
	}
	return KeyValue{Key: key, Value: value, CreateRevision: create, ModRevision: resp.Header.Revision}, nil
}

// Delete implements Interface.
func (s *Etcd) Delete(ctx context.Context, key string, expected int64) (KeyValue, int64, error) {
	k := s.prefix + key
	cmp := clientv3.Compare(clientv3.ModRevision(k), "=", expected)
	if expected == 0 {
		cmp = clientv3.Compare(clientv3.CreateRevision(k), ">", 0)
	}
	resp, err := s.cli.Txn(ctx).If(cmp).Then(clientv3.OpDelete(k, clientv3.WithPrevKV())).Else(clientv3.OpGet(k)).Commit()
	if err != nil {
		return KeyValue{}, 0, mapEtcdErr(err)
	}
	if !resp.Succeeded {
		kvs := resp.Responses[0].GetResponseRange().Kvs
		if len(kvs) == 0 {
			return KeyValue{}, 0, ErrNotFound
		}
		return KeyValue{}, 0, &ConflictError{Current: s.kv(kvs[0])}
	}
	del := resp.Responses[0].GetResponseDeleteRange()
	if len(del.PrevKvs) == 0 {
		return KeyValue{}, 0, ErrNotFound
	}
	return s.kv(del.PrevKvs[0]), resp.Header.Revision, nil
}

// CurrentRevision implements Interface.
func (s *Etcd) CurrentRevision(ctx context.Context) (int64, error) {
	resp, err := s.cli.Get(ctx, s.prefix+"/health-probe", clientv3.WithCountOnly())
	if err != nil {
		return 0, mapEtcdErr(err)
	}
	return resp.Header.Revision, nil
}

// CompactedRevision implements Interface. etcd does not report it directly;
// a watch from revision 1 reveals it in the compaction error.
func (s *Etcd) CompactedRevision(ctx context.Context) (int64, error) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wc := s.cli.Watch(wctx, s.prefix+"/compact-probe", clientv3.WithRev(1))
	select {
	case resp := <-wc:
		if resp.CompactRevision > 0 {
			return resp.CompactRevision, nil
		}
		return 0, nil
	case <-time.After(200 * time.Millisecond):
		return 0, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// Compact implements Interface.
func (s *Etcd) Compact(ctx context.Context, rev int64) error {
	_, err := s.cli.Compact(ctx, rev, clientv3.WithCompactPhysical())
	if err != nil && errors.Is(err, rpctypes.ErrCompacted) {
		return nil
	}
	return mapEtcdErr(err)
}

// Close implements Interface.
func (s *Etcd) Close() error { return s.cli.Close() }

type etcdWatcher struct {
	out    chan Event
	cancel context.CancelFunc
	mu     sync.Mutex
	err    error
}

func (w *etcdWatcher) Events() <-chan Event { return w.out }
func (w *etcdWatcher) Stop()                { w.cancel() }
func (w *etcdWatcher) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Watch implements Interface.
func (s *Etcd) Watch(ctx context.Context, prefix string, from int64) (Watcher, error) {
	if from == 0 {
		cur, err := s.CurrentRevision(ctx)
		if err != nil {
			return nil, err
		}
		from = cur
	}
	// A read at the start revision tells whether it was compacted.
	if _, err := s.cli.Get(ctx, s.prefix+"/compact-probe", clientv3.WithRev(from), clientv3.WithCountOnly()); err != nil {
		return nil, mapEtcdErr(err)
	}
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	ops := []clientv3.OpOption{clientv3.WithRev(from + 1), clientv3.WithPrevKV()}
	if prefix == "" && s.prefix == "" {
		ops = append(ops, clientv3.WithFromKey())
	} else {
		ops = append(ops, clientv3.WithPrefix())
	}
	key := s.prefix + prefix
	if key == "" {
		key = "\x00"
	}
	wc := s.cli.Watch(wctx, key, ops...)
	w := &etcdWatcher{out: make(chan Event, 64), cancel: cancel}
	go func() {
		defer close(w.out)
		defer cancel()
		send := func(resp clientv3.WatchResponse) bool {
			if err := resp.Err(); err != nil {
				w.mu.Lock()
				w.err = mapEtcdErr(err)
				w.mu.Unlock()
				return false
			}
			for _, e := range resp.Events {
				ev := Event{KV: s.kv(e.Kv)}
				if e.PrevKv != nil {
					p := s.kv(e.PrevKv)
					ev.PrevKV = &p
				}
				if e.Type == clientv3.EventTypeDelete {
					ev.Type = EventDelete
					ev.KV.Value = nil
				}
				select {
				case w.out <- ev:
				case <-wctx.Done():
					return false
				}
			}
			return true
		}
		for resp := range wc {
			if !send(resp) {
				return
			}
		}
	}()
	return w, nil
}

var _ Interface = (*Etcd)(nil)
