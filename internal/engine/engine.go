// Package engine is the one place that knows what a container is. It ties
// the image store, snapshots, runtime, networks and volumes together and
// offers the operations both front doors (the Docker Engine API and the
// Kubernetes node agent) call: create, start, stop, exec, logs, images, ….
// It persists container and volume records in bbolt and reattaches to
// running containers after a daemon crash.
package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/wharfhq/wharf/internal/image"
	"github.com/wharfhq/wharf/internal/network"
	"github.com/wharfhq/wharf/internal/runtime"
	"github.com/wharfhq/wharf/internal/snapshot"
)

// Config says where the engine keeps its state.
type Config struct {
	DataRoot string // persistent: images, layers, containers, volumes
	ExecRoot string // runtime state (tmpfs-friendly): shims, netns
	Binary   string // this executable, re-exec'd as shim and container init
	Bridge   string // bridge name for the default network
	Subnet   string // optional subnet for the default bridge
	Log      *slog.Logger
}

// Engine is the container engine.
type Engine struct {
	cfg    Config
	log    *slog.Logger
	db     *bolt.DB
	Images image.API
	snaps  snapshot.API
	rt     runtime.API
	net    network.API
	ev     *events

	mu         sync.Mutex
	containers map[string]*Container
	names      map[string]string // "/name" → id
	execs      map[string]*Exec
	td         teardowns // background teardowns of ended runs (teardown.go)

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

var (
	bucketContainers = []byte("containers")
	bucketVolumes    = []byte("volumes")
)

// New opens (or creates) the engine's state and reattaches to running containers.
func New(cfg Config) (*Engine, error) {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	for _, d := range []string{cfg.DataRoot, cfg.ExecRoot, filepath.Join(cfg.DataRoot, "containers"), filepath.Join(cfg.DataRoot, "volumes")} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return nil, err
		}
	}
	db, err := bolt.Open(filepath.Join(cfg.DataRoot, "engine.db"), 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open engine database: %w", err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketContainers, bucketVolumes} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		db.Close()
		return nil, err
	}
	e := &Engine{cfg: cfg, log: cfg.Log, db: db, ev: newEvents(),
		containers: map[string]*Container{}, names: map[string]string{}, execs: map[string]*Exec{},
		td: teardowns{m: map[string]chan struct{}{}}}
	e.ctx, e.cancel = context.WithCancel(context.Background())

	imgs, err := image.Open(filepath.Join(cfg.DataRoot, "image"))
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open image store: %w", err)
	}
	e.Images = imgs
	snaps, err := snapshot.New(filepath.Join(cfg.DataRoot, "snapshots"))
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open snapshots: %w", err)
	}
	e.snaps = snaps
	rt, err := runtime.New(filepath.Join(cfg.ExecRoot, "runtime"), cfg.Binary)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("start runtime: %w", err)
	}
	e.rt = rt
	nm, err := network.New(network.Options{
		StateDir:   filepath.Join(cfg.DataRoot, "network"),
		BridgeName: cfg.Bridge,
		Subnet:     cfg.Subnet,
		NetNSDir:   filepath.Join(cfg.ExecRoot, "netns"),
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("set up networking: %w", err)
	}
	e.net = nm

	if err := e.restore(); err != nil {
		db.Close()
		return nil, err
	}
	return e, nil
}

// Close stops background work; running containers keep running.
func (e *Engine) Close() error {
	e.cancel()
	e.wg.Wait()
	if c, ok := e.net.(interface{ Close() error }); ok {
		c.Close()
	}
	if c, ok := e.rt.(interface{ Close() error }); ok {
		c.Close() // the idle shim started ahead
	}
	return e.db.Close()
}

// Networks lists the networks the engine offers.
func (e *Engine) Networks() []network.Info { return e.net.Networks() }

func (e *Engine) saveContainer(c *Container) error {
	c.mu.Lock()
	data, err := json.Marshal(c)
	c.mu.Unlock()
	if err != nil {
		return err
	}
	return e.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketContainers).Put([]byte(c.ID), data)
	})
}

func (e *Engine) deleteContainerRecord(id string) error {
	return e.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketContainers).Delete([]byte(id)) })
}

// restore loads container records and reattaches to what still runs; restart policies apply again.
func (e *Engine) restore() error {
	var recs []*Container
	err := e.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketContainers).ForEach(func(k, v []byte) error {
			c := &Container{}
			if err := json.Unmarshal(v, c); err != nil {
				e.log.Warn("skipping unreadable container record", "id", string(k), "err", err)
				return nil
			}
			recs = append(recs, c)
			return nil
		})
	})
	if err != nil {
		return err
	}
	keepNet := map[string]bool{}
	var restart, autoRemove []*Container
	for _, c := range recs {
		c.mu = &sync.Mutex{}
		c.startDone = make(chan struct{})
		c.exited = make(chan struct{})
		c.removed = make(chan struct{})
		c.execs = map[string]*Exec{}
		if c.State.Status == StateRemoving {
			// A crash during rm: finish it.
			e.finishRemove(c, true)
			continue
		}
		e.containers[c.ID] = c
		e.names[c.Name] = c.ID
		if !c.Running() && c.State.Status != StateRestarting {
			close(c.exited)
			// a crash during its background teardown may have left its task and mount (or, during a
			// start, a process the record never called running: it is ended, as the record says)
			if t, err := e.rt.Load(c.ID); err == nil {
				t.Kill(9)
				t.Delete()
			}
			e.snaps.Unmount(c.ID)
			if c.HostConfig != nil && c.HostConfig.AutoRemove && c.State.HasBeenStarted {
				c.State.Status = StateRemoving
				autoRemove = append(autoRemove, c)
			}
			continue
		}
		task, err := e.rt.Load(c.ID)
		if err == nil {
			st := task.Pid()
			_ = st
			c.task = task
			keepNet[c.ID] = true
			e.wg.Add(1)
			go e.monitor(c, task)
			continue
		}
		// Gone while we were down: record the exit, then let the restart policy decide.
		e.log.Info("container ended while the daemon was down", "id", c.ShortID(), "err", err)
		c.State.Status = StateExited
		c.State.FinishedAt = time.Now()
		c.State.Pid = 0
		close(c.exited)
		if e.shouldRestart(c, c.State.ExitCode) {
			e.saveContainer(c)
			restart = append(restart, c)
		} else if c.HostConfig != nil && c.HostConfig.AutoRemove {
			// as dockerd: a --rm container that ended while the daemon was down is removed
			c.State.Status = StateRemoving
			autoRemove = append(autoRemove, c)
		} else {
			e.saveContainer(c)
		}
	}
	known := map[string]bool{}
	for _, c := range recs {
		known[c.ID] = true
	}
	e.sweepOrphans(known)
	if err := e.net.Reconcile(keepNet); err != nil {
		e.log.Warn("network reconcile", "err", err)
	}
	for _, c := range recs {
		if !keepNet[c.ID] && c.Net != nil {
			c.Net = nil
		}
	}
	for _, c := range autoRemove {
		e.removeLocked(c, true, true)
	}
	for _, c := range restart {
		c := c
		go func() {
			if err := e.Start(context.Background(), c.ID); err != nil {
				e.log.Warn("restart after daemon restart failed", "id", c.ShortID(), "err", err)
			}
		}()
	}
	return nil
}

// DataRoot is where the engine keeps its state.
func (e *Engine) DataRoot() string { return e.cfg.DataRoot }

// UpperDir is the container's writable layer directory.
func (e *Engine) UpperDir(id string) string { return e.snaps.UpperDir(id) }
