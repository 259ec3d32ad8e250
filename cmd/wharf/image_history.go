package main

import (
	"context"
	"strconv"
	"strings"
	"time"

	units "github.com/docker/go-units"
	"github.com/moby/moby/api/types/image"
	"github.com/spf13/cobra"
)

const (
	defaultHistoryTableFormat  = "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
	nonHumanHistoryTableFormat = "table {{.ID}}\t{{.CreatedAt}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
)

type historyOptions struct {
	human   bool
	quiet   bool
	noTrunc bool
	format  string
}

func (c *cli) newHistoryCommand() *cobra.Command {
	var o historyOptions
	cmd := &cobra.Command{
		Use:   "history [OPTIONS] IMAGE",
		Short: "Show the history of an image",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.client()
			if err != nil {
				return err
			}
			res, err := api.ImageHistory(context.Background(), args[0])
			if err != nil {
				return err
			}
			return writeHistory(c.out, historyFormat(o.format, o.quiet, o.human), !o.noTrunc, o.human, res.Items)
		},
	}
	flags := cmd.Flags()
	flags.BoolVarP(&o.human, "human", "H", true, "Print sizes and dates in human readable format")
	flags.BoolVarP(&o.quiet, "quiet", "q", false, "Only show image IDs")
	flags.BoolVar(&o.noTrunc, "no-trunc", false, "Don't truncate output")
	flags.StringVar(&o.format, "format", "", formatHelp)
	return cmd
}

func historyFormat(source string, quiet, human bool) string {
	if source == "" {
		source = tableFormatKey
	}
	if source == tableFormatKey {
		switch {
		case quiet:
			return quietFormat
		case !human:
			return nonHumanHistoryTableFormat
		default:
			return defaultHistoryTableFormat
		}
	}
	return source
}

var historyHeader = map[string]string{
	"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "CreatedBy": "CREATED BY",
	"Size": "SIZE", "Comment": "COMMENT",
}

func writeHistory(out interface{ Write([]byte) (int, error) }, format string, trunc, human bool, items []image.HistoryResponseItem) error {
	list := make([]any, 0, len(items))
	for _, h := range items {
		list = append(list, &historyContext{trunc: trunc, human: human, h: h})
	}
	return writeFormatted(out, format, historyHeader, list)
}

type historyContext struct {
	trunc, human bool
	h            image.HistoryResponseItem
}

func (c *historyContext) MarshalJSON() ([]byte, error) { return marshalContext(c) }
func (c *historyContext) ID() string {
	if c.trunc {
		return truncateID(c.h.ID)
	}
	return c.h.ID
}
func (c *historyContext) CreatedAt() string { return time.Unix(c.h.Created, 0).Format(time.RFC3339) }
func (c *historyContext) CreatedSince() string {
	if !c.human {
		return c.CreatedAt()
	}
	if c.h.Created <= time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).Unix() {
		return "N/A"
	}
	return units.HumanDuration(time.Now().UTC().Sub(time.Unix(c.h.Created, 0))) + " ago"
}
func (c *historyContext) CreatedBy() string {
	s := strings.ReplaceAll(c.h.CreatedBy, "\t", " ")
	if c.trunc {
		return ellipsis(s, 45)
	}
	return s
}
func (c *historyContext) Size() string {
	if c.human {
		return units.HumanSizeWithPrecision(float64(c.h.Size), 3)
	}
	return strconv.FormatInt(c.h.Size, 10)
}
func (c *historyContext) Comment() string { return c.h.Comment }
