package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	units "github.com/docker/go-units"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"
)

const defaultStatsTableFormat = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}"

type statsOptions struct {
	all        bool
	noStream   bool
	noTrunc    bool
	format     string
	containers []string
}

func (c *cli) newStatsCommand() *cobra.Command {
	var o statsOptions
	cmd := &cobra.Command{
		Use:   "stats [OPTIONS] [CONTAINER...]",
		Short: "Display a live stream of container(s) resource usage statistics",
		RunE: func(cmd *cobra.Command, args []string) error {
			o.containers = args
			return c.runStats(&o)
		},
	}
	flags := cmd.Flags()
	flags.BoolVarP(&o.all, "all", "a", false, "Show all containers (default shows just running)")
	flags.BoolVar(&o.noStream, "no-stream", false, "Disable streaming stats and only pull the first result")
	flags.BoolVar(&o.noTrunc, "no-trunc", false, "Do not truncate output")
	flags.StringVar(&o.format, "format", "", formatHelp)
	return cmd
}

// statsEntry is one container's computed usage.
type statsEntry struct {
	Container        string
	Name             string
	ID               string
	CPUPercentage    float64
	Memory           float64
	MemoryLimit      float64
	MemoryPercentage float64
	NetworkRx        float64
	NetworkTx        float64
	BlockRead        float64
	BlockWrite       float64
	PidsCurrent      uint64
	IsInvalid        bool
}

// computeStats turns a raw stats sample into the numbers docker shows.
func computeStats(s *container.StatsResponse) statsEntry {
	e := statsEntry{ID: s.ID, Name: strings.TrimPrefix(s.Name, "/")}
	cpuDelta := float64(s.CPUStats.CPUUsage.TotalUsage) - float64(s.PreCPUStats.CPUUsage.TotalUsage)
	sysDelta := float64(s.CPUStats.SystemUsage) - float64(s.PreCPUStats.SystemUsage)
	online := float64(s.CPUStats.OnlineCPUs)
	if online == 0 {
		online = float64(len(s.CPUStats.CPUUsage.PercpuUsage))
	}
	if sysDelta > 0 && cpuDelta > 0 {
		e.CPUPercentage = cpuDelta / sysDelta * online * 100
	}
	used := float64(s.MemoryStats.Usage)
	if v, ok := s.MemoryStats.Stats["total_inactive_file"]; ok && float64(v) < used {
		used -= float64(v)
	} else if v, ok := s.MemoryStats.Stats["inactive_file"]; ok && float64(v) < used {
		used -= float64(v)
	}
	e.Memory = used
	e.MemoryLimit = float64(s.MemoryStats.Limit)
	if e.MemoryLimit != 0 {
		e.MemoryPercentage = used / e.MemoryLimit * 100
	}
	for _, n := range s.Networks {
		e.NetworkRx += float64(n.RxBytes)
		e.NetworkTx += float64(n.TxBytes)
	}
	for _, b := range s.BlkioStats.IoServiceBytesRecursive {
		switch strings.ToLower(b.Op) {
		case "read":
			e.BlockRead += float64(b.Value)
		case "write":
			e.BlockWrite += float64(b.Value)
		}
	}
	e.PidsCurrent = s.PidsStats.Current
	return e
}

var statsHeader = map[string]string{
	"Container": "CONTAINER", "ID": "CONTAINER ID", "Name": "NAME", "CPUPerc": "CPU %", "MemUsage": "MEM USAGE / LIMIT",
	"MemPerc": "MEM %", "NetIO": "NET I/O", "BlockIO": "BLOCK I/O", "PIDs": "PIDS",
}

type statsContext struct {
	s     statsEntry
	trunc bool
}

func (c *statsContext) MarshalJSON() ([]byte, error) { return marshalContext(c) }
func (c *statsContext) Container() string            { return c.s.Container }
func (c *statsContext) Name() string {
	if c.s.Name == "" {
		return "--"
	}
	return c.s.Name
}
func (c *statsContext) ID() string {
	if c.trunc {
		return truncateID(c.s.ID)
	}
	return c.s.ID
}
func (c *statsContext) CPUPerc() string {
	if c.s.IsInvalid {
		return "--"
	}
	return fmt.Sprintf("%.2f%%", c.s.CPUPercentage)
}
func (c *statsContext) MemUsage() string {
	if c.s.IsInvalid {
		return "-- / --"
	}
	return fmt.Sprintf("%s / %s", units.BytesSize(c.s.Memory), units.BytesSize(c.s.MemoryLimit))
}
func (c *statsContext) MemPerc() string {
	if c.s.IsInvalid {
		return "--"
	}
	return fmt.Sprintf("%.2f%%", c.s.MemoryPercentage)
}
func (c *statsContext) NetIO() string {
	if c.s.IsInvalid {
		return "--"
	}
	return units.HumanSizeWithPrecision(c.s.NetworkRx, 3) + " / " + units.HumanSizeWithPrecision(c.s.NetworkTx, 3)
}
func (c *statsContext) BlockIO() string {
	if c.s.IsInvalid {
		return "--"
	}
	return units.HumanSizeWithPrecision(c.s.BlockRead, 3) + " / " + units.HumanSizeWithPrecision(c.s.BlockWrite, 3)
}
func (c *statsContext) PIDs() string {
	if c.s.IsInvalid {
		return "--"
	}
	return fmt.Sprintf("%d", c.s.PidsCurrent)
}

func writeStats(out io.Writer, format string, trunc bool, entries []statsEntry) error {
	if format == "" || format == tableFormatKey {
		format = defaultStatsTableFormat
	}
	items := make([]any, 0, len(entries))
	for _, e := range entries {
		items = append(items, &statsContext{s: e, trunc: trunc})
	}
	return writeFormatted(out, format, statsHeader, items)
}

func (c *cli) runStats(o *statsOptions) error {
	ctx, cancel := c.signalContext()
	defer cancel()
	api, err := c.client()
	if err != nil {
		return err
	}
	names := o.containers
	if len(names) == 0 {
		res, err := api.ContainerList(ctx, client.ContainerListOptions{All: o.all})
		if err != nil {
			return err
		}
		for _, ctr := range res.Items {
			names = append(names, ctr.ID)
		}
	}
	entries := make([]statsEntry, len(names))
	var mu sync.Mutex
	var wg sync.WaitGroup
	var errs []error
	for i, name := range names {
		entries[i] = statsEntry{Container: name, ID: name, IsInvalid: true}
		wg.Add(1)
		go func(i int, name string) {
			defer wg.Done()
			res, err := api.ContainerStats(ctx, name, client.ContainerStatsOptions{Stream: !o.noStream, IncludePreviousSample: o.noStream})
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				return
			}
			defer res.Body.Close()
			dec := json.NewDecoder(res.Body)
			for {
				var s container.StatsResponse
				if err := dec.Decode(&s); err != nil {
					return
				}
				e := computeStats(&s)
				e.Container = name
				if e.ID == "" {
					e.ID = name
				}
				mu.Lock()
				entries[i] = e
				mu.Unlock()
				if o.noStream {
					return
				}
			}
		}(i, name)
	}
	if o.noStream {
		wg.Wait()
		if len(errs) > 0 && len(o.containers) > 0 {
			return errors.Join(errs...)
		}
		return writeStats(c.out, o.format, !o.noTrunc, entries)
	}
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			mu.Lock()
			snapshot := append([]statsEntry(nil), entries...)
			mu.Unlock()
			var b strings.Builder
			b.WriteString("\033[2J\033[H")
			if err := writeStats(&b, o.format, !o.noTrunc, snapshot); err != nil {
				return err
			}
			io.WriteString(c.out, b.String())
		}
	}
}
