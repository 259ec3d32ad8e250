package engine

import (
	"os"
	"strings"
	"time"

	"github.com/moby/moby/api/types/mount"
)

// RemoveOptions are docker rm's flags.
type RemoveOptions struct {
	Force   bool // kill a running container first
	Volumes bool // remove its anonymous volumes
}

// Remove deletes a container. A running one needs Force.
func (e *Engine) Remove(ref string, opts RemoveOptions) error {
	c, err := e.Container(ref)
	if err != nil {
		return err
	}
	c.mu.Lock()
	if c.State.Status == StateRemoving {
		c.mu.Unlock()
		return Conflict("removal of container %s is already in progress", ref)
	}
	if c.Running() || c.State.Status == StateRestarting {
		if !opts.Force {
			c.mu.Unlock()
			state := "running"
			if c.State.Status == StatePaused {
				state = "paused"
			}
			return Conflict("cannot remove container %q: container is %s: stop the container before removing or force remove", c.Name, state)
		}
		c.State.StoppedByUser = true
		c.stopping = true
		task, exited, paused := c.task, c.exited, c.State.Status == StatePaused
		if c.State.Status == StateRestarting {
			c.State.Status = StateExited
		}
		c.mu.Unlock()
		if task != nil {
			if paused {
				task.Resume()
			}
			task.Kill(9)
			select {
			case <-exited:
			case <-time.After(30 * time.Second):
				return Conflict("could not kill running container %s, cannot remove", c.ID)
			}
		}
		c.mu.Lock()
	}
	c.State.Status = StateRemoving
	c.mu.Unlock()
	if err := e.saveContainer(c); err != nil {
		return err
	}
	e.removeLocked(c, opts.Volumes, true)
	return nil
}

// removeLocked removes a container marked removing (its record may still say
// otherwise: see monitor) and, with volumes, its anonymous volumes. stopped
// teardown says whether its task and network may still need tearing down.
func (e *Engine) removeLocked(c *Container, volumes, teardown bool) {
	e.finishRemove(c, teardown)
	e.afterRemove(c, volumes)
}

// afterRemove removes a removed container's anonymous volumes (with volumes) and says it is gone.
func (e *Engine) afterRemove(c *Container, volumes bool) {
	if volumes {
		for _, m := range c.Mounts {
			if m.Type == mount.TypeVolume {
				if v, err := e.Volume(m.Name); err == nil && v.Anonymous {
					e.RemoveVolume(m.Name, true)
				}
			}
		}
	}
	e.containerEvent(c, "destroy", nil)
}

// finishRemove deletes everything of a container marked removing; safe to
// repeat after a crash. teardown=false skips the task and network, which the
// caller has just torn down itself.
func (e *Engine) finishRemove(c *Container, teardown bool) {
	e.awaitTeardown(c.ID)
	if teardown {
		if t, err := e.rt.Load(c.ID); err == nil {
			t.Kill(9)
			t.Delete()
		}
		e.net.Detach(c.ID)
	}
	e.removeStorage(c)
	e.forget(c)
}

// removeStorage deletes the container's writable layer and folder.
func (e *Engine) removeStorage(c *Container) {
	if err := e.snaps.Remove(c.ID); err != nil {
		e.log.Warn("remove rootfs", "id", c.ShortID(), "err", err)
	}
	os.RemoveAll(c.Dir)
}

// forget deletes the container's record and its name, and wakes those waiting for its removal. They
// are woken first: should the daemon die before the record's deletion is on disk, the record says
// "removing" (rm) or is a --rm container whose run is over, and restore removes it before serving.
func (e *Engine) forget(c *Container) {
	defer func() {
		if err := e.deleteContainerRecord(c.ID); err != nil {
			e.log.Error("delete container record", "id", c.ShortID(), "err", err)
		}
	}()
	e.mu.Lock()
	delete(e.containers, c.ID)
	if e.names[c.Name] == c.ID {
		delete(e.names, c.Name)
	}
	e.mu.Unlock()
	c.mu.Lock()
	select {
	case <-c.removed:
	default:
		close(c.removed)
	}
	c.mu.Unlock()
}

// Rename gives a container a new name.
func (e *Engine) Rename(ref, newName string) error {
	c, err := e.Container(ref)
	if err != nil {
		return err
	}
	if newName == "" || !validName.MatchString(newName) {
		return Invalid("Invalid container name (%s), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", newName)
	}
	if !strings.HasPrefix(newName, "/") {
		newName = "/" + newName
	}
	e.mu.Lock()
	if c.Name == newName {
		e.mu.Unlock()
		return Invalid("Renaming a container with the same name as its current name")
	}
	if other, taken := e.names[newName]; taken {
		e.mu.Unlock()
		return Conflict("Conflict. The container name %q is already in use by container %q. You have to remove (or rename) that container to be able to reuse that name.", newName, other)
	}
	c.mu.Lock()
	old := c.Name
	c.Name = newName
	c.mu.Unlock()
	delete(e.names, old)
	e.names[newName] = c.ID
	e.mu.Unlock()
	if err := e.saveContainer(c); err != nil {
		return err
	}
	e.containerEvent(c, "rename", map[string]string{"oldName": old})
	return nil
}

// PruneContainers removes all stopped containers.
func (e *Engine) PruneContainers() ([]string, uint64) {
	var ids []string
	var space uint64
	for _, c := range e.Containers() {
		c.mu.Lock()
		stopped := c.State.Status == StateExited || c.State.Status == StateCreated || c.State.Status == StateDead
		c.mu.Unlock()
		if !stopped {
			continue
		}
		sz := e.SizeRw(c)
		if e.Remove(c.ID, RemoveOptions{}) == nil {
			ids = append(ids, c.ID)
			space += uint64(sz)
		}
	}
	return ids, space
}

// SizeRw is the size of the container's writable layer.
func (e *Engine) SizeRw(c *Container) int64 { return dirSize(e.snaps.UpperDir(c.ID)) }
