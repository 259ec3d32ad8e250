package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/distribution/reference"
	units "github.com/docker/go-units"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"
)

const (
	defaultImageTableFormat           = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{if .CreatedSince }}{{.CreatedSince}}{{else}}N/A{{end}}\t{{.Size}}"
	defaultImageTableFormatWithDigest = "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{if .CreatedSince }}{{.CreatedSince}}{{else}}N/A{{end}}\t{{.Size}}"
)

type imagesOptions struct {
	matchName   string
	quiet       bool
	all         bool
	noTrunc     bool
	showDigests bool
	format      string
	filter      filterOpt
	calledAs    string
}

func (c *cli) newImagesCommand() *cobra.Command {
	var o imagesOptions
	cmd := &cobra.Command{
		Use:   "images [OPTIONS] [REPOSITORY[:TAG]]",
		Short: "List images",
		Args:  requiresMaxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				o.matchName = args[0]
			}
			o.calledAs = cmd.CalledAs()
			return c.runImages(&o)
		},
	}
	flags := cmd.Flags()
	flags.BoolVarP(&o.quiet, "quiet", "q", false, "Only show image IDs")
	flags.BoolVarP(&o.all, "all", "a", false, "Show all images (default hides intermediate images)")
	flags.BoolVar(&o.noTrunc, "no-trunc", false, "Don't truncate output")
	flags.BoolVar(&o.showDigests, "digests", false, "Show digests")
	flags.StringVar(&o.format, "format", "", formatHelp)
	flags.VarP(&o.filter, "filter", "f", "Filter output based on conditions provided")
	return cmd
}

func (o *imagesOptions) listOptions() client.ImageListOptions {
	f := o.filter.Value()
	if o.matchName != "" {
		f.Add("reference", o.matchName)
	}
	return client.ImageListOptions{All: o.all, Filters: f}
}

func (c *cli) runImages(o *imagesOptions) error {
	api, err := c.client()
	if err != nil {
		return err
	}
	res, err := api.ImageList(context.Background(), o.listOptions())
	if err != nil {
		return err
	}
	format := o.format
	if format == "" {
		format = tableFormatKey
	}
	if err := writeImages(c.out, imageFormat(format, o.quiet, o.showDigests), !o.noTrunc, o.showDigests, res.Items); err != nil {
		return err
	}
	if o.matchName != "" && len(res.Items) == 0 && o.calledAs == "images" {
		switch o.matchName {
		case "build", "history", "import", "inspect", "list", "load", "ls", "prune", "pull", "push", "rm", "save", "tag":
			fmt.Fprintf(c.err, "\nNo images found matching %q: did you mean \"wharf image %[1]s\"?\n", o.matchName)
		}
	}
	return nil
}

// imageFormat picks the template for images.
func imageFormat(source string, quiet, digest bool) string {
	switch source {
	case tableFormatKey:
		switch {
		case quiet:
			return quietFormat
		case digest:
			return defaultImageTableFormatWithDigest
		default:
			return defaultImageTableFormat
		}
	case "raw":
		switch {
		case quiet:
			return `image_id: {{.ID}}`
		case digest:
			return "repository: {{ .Repository }}\ntag: {{.Tag}}\ndigest: {{.Digest}}\nimage_id: {{.ID}}\ncreated_at: {{.CreatedAt}}\nvirtual_size: {{.Size}}\n"
		default:
			return "repository: {{ .Repository }}\ntag: {{.Tag}}\nimage_id: {{.ID}}\ncreated_at: {{.CreatedAt}}\nvirtual_size: {{.Size}}\n"
		}
	}
	if isTableFormat(source) && digest && !strings.Contains(source, "{{.Digest}}") {
		source += "\t{{.Digest}}"
	}
	return source
}

var imageHeader = map[string]string{
	"ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST", "CreatedSince": "CREATED",
	"CreatedAt": "CREATED AT", "Size": "SIZE", "Containers": "CONTAINERS", "VirtualSize": "SIZE",
	"SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE",
}

func isDangling(img image.Summary) bool {
	if len(img.RepoTags) == 0 && len(img.RepoDigests) == 0 {
		return true
	}
	return len(img.RepoTags) == 1 && img.RepoTags[0] == "<none>:<none>" && len(img.RepoDigests) == 1 && img.RepoDigests[0] == "<none>@<none>"
}

// writeImages renders images: one row per repository:tag (and digest with --digests), "<none>" for dangling.
func writeImages(out io.Writer, format string, trunc, digest bool, images []image.Summary) error {
	needDigest := digest || strings.Contains(format, "{{.Digest}}")
	var items []any
	for _, img := range images {
		if isDangling(img) {
			items = append(items, &imageContext{trunc: trunc, i: img, repo: "<none>", tag: "<none>", digest: "<none>"})
			continue
		}
		repoTags := map[string][]string{}
		repoDigests := map[string][]string{}
		var repos []string
		for _, rt := range img.RepoTags {
			ref, err := reference.ParseNormalizedNamed(rt)
			if err != nil {
				continue
			}
			if nt, ok := ref.(reference.NamedTagged); ok {
				name := reference.FamiliarName(ref)
				if _, seen := repoTags[name]; !seen {
					repos = append(repos, name)
				}
				repoTags[name] = append(repoTags[name], nt.Tag())
			}
		}
		for _, rd := range img.RepoDigests {
			ref, err := reference.ParseNormalizedNamed(rd)
			if err != nil {
				continue
			}
			if cn, ok := ref.(reference.Canonical); ok {
				name := reference.FamiliarName(ref)
				repoDigests[name] = append(repoDigests[name], cn.Digest().String())
			}
		}
		add := func(repo, tag, dgst string) {
			items = append(items, &imageContext{trunc: trunc, i: img, repo: repo, tag: tag, digest: dgst})
		}
		for _, repo := range repos {
			digests := repoDigests[repo]
			delete(repoDigests, repo)
			if !needDigest {
				digests = nil
			}
			for _, tag := range repoTags[repo] {
				if len(digests) == 0 {
					add(repo, tag, "<none>")
					continue
				}
				for _, d := range digests {
					add(repo, tag, d)
				}
			}
		}
		var rest []string
		for repo := range repoDigests {
			rest = append(rest, repo)
		}
		sort.Strings(rest)
		for _, repo := range rest {
			if digest {
				for _, d := range repoDigests[repo] {
					add(repo, "<none>", d)
				}
			} else {
				add(repo, "<none>", "")
			}
		}
	}
	return writeFormatted(out, format, imageHeader, items)
}

type imageContext struct {
	trunc  bool
	i      image.Summary
	repo   string
	tag    string
	digest string
}

func (c *imageContext) MarshalJSON() ([]byte, error) { return marshalContext(c) }

func (c *imageContext) ID() string {
	if c.trunc {
		return truncateID(c.i.ID)
	}
	return c.i.ID
}
func (c *imageContext) Repository() string { return c.repo }
func (c *imageContext) Tag() string        { return c.tag }
func (c *imageContext) Digest() string     { return c.digest }
func (c *imageContext) CreatedSince() string {
	created := time.Unix(c.i.Created, 0)
	if created.IsZero() {
		return ""
	}
	return units.HumanDuration(time.Now().UTC().Sub(created)) + " ago"
}
func (c *imageContext) CreatedAt() string { return time.Unix(c.i.Created, 0).String() }
func (c *imageContext) Size() string      { return units.HumanSizeWithPrecision(float64(c.i.Size), 3) }
func (c *imageContext) Containers() string {
	if c.i.Containers == -1 {
		return "N/A"
	}
	return strconv.FormatInt(c.i.Containers, 10)
}
func (c *imageContext) VirtualSize() string { return units.HumanSize(float64(c.i.Size)) }
func (c *imageContext) SharedSize() string {
	if c.i.SharedSize == -1 {
		return "N/A"
	}
	return units.HumanSize(float64(c.i.SharedSize))
}
func (c *imageContext) UniqueSize() string {
	if c.i.Size == -1 || c.i.SharedSize == -1 {
		return "N/A"
	}
	return units.HumanSize(float64(c.i.Size - c.i.SharedSize))
}
