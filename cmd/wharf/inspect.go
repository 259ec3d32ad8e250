package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/template"

	"github.com/moby/moby/client"
	"github.com/spf13/cobra"
)

// inspector prints inspected objects: an indented JSON array by default, compact JSON for "json", else a
// template executed per object (on the typed value, falling back to the raw JSON when a field is missing).
type inspector struct {
	out  io.Writer
	tmpl *template.Template
	json bool
	raw  [][]byte
	buf  bytes.Buffer
}

func newInspector(out io.Writer, format string) (*inspector, error) {
	in := &inspector{out: out}
	switch format {
	case "":
	case jsonFormatKey:
		in.json = true
	default:
		t, err := parseTemplate(format)
		if err != nil {
			return nil, statusError{Status: err.Error(), Code: 64}
		}
		in.tmpl = t
	}
	return in, nil
}

func (in *inspector) add(typed any, raw []byte) error {
	if in.tmpl == nil {
		in.raw = append(in.raw, raw)
		return nil
	}
	var b bytes.Buffer
	if err := in.tmpl.Execute(&b, typed); err != nil {
		if raw == nil {
			return fmt.Errorf("template parsing error: %w", err)
		}
		var generic any
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(&generic); err != nil {
			return fmt.Errorf("unable to read inspect data: %w", err)
		}
		b.Reset()
		if err := in.tmpl.Option("missingkey=error").Execute(&b, generic); err != nil {
			return fmt.Errorf("template parsing error: %w", err)
		}
	}
	in.buf.Write(b.Bytes())
	in.buf.WriteByte('\n')
	return nil
}

func (in *inspector) flush() error {
	if in.tmpl != nil {
		if in.buf.Len() == 0 {
			_, err := io.WriteString(in.out, "\n")
			return err
		}
		_, err := in.buf.WriteTo(in.out)
		return err
	}
	if len(in.raw) == 0 {
		_, err := io.WriteString(in.out, "[]\n")
		return err
	}
	joined := append([]byte("["), bytes.Join(in.raw, []byte(","))...)
	joined = append(joined, ']')
	var out bytes.Buffer
	var err error
	if in.json {
		err = json.Compact(&out, joined)
	} else {
		err = json.Indent(&out, joined, "", "    ")
	}
	if err != nil {
		return err
	}
	out.WriteByte('\n')
	_, err = out.WriteTo(in.out)
	return err
}

type getRefFunc func(ctx context.Context, ref string) (typed any, raw []byte, err error)

// runInspect inspects every ref; errors are collected and returned together (exit 1) after printing the rest.
func runInspect(out io.Writer, refs []string, format string, get getRefFunc) error {
	in, err := newInspector(out, format)
	if err != nil {
		return err
	}
	ctx := context.Background()
	var errs []error
	for _, ref := range refs {
		typed, raw, err := get(ctx, ref)
		if err != nil {
			errs = append(errs, errors.New(daemonErrorText(err)))
			continue
		}
		if err := in.add(typed, raw); err != nil {
			errs = append(errs, err)
		}
	}
	_ = in.flush()
	if err := errors.Join(errs...); err != nil {
		return statusError{Status: err.Error(), Code: 1}
	}
	return nil
}

func inspectContainerFunc(api *client.Client, size bool) getRefFunc {
	return func(ctx context.Context, ref string) (any, []byte, error) {
		res, err := api.ContainerInspect(ctx, ref, client.ContainerInspectOptions{Size: size})
		return res.Container, res.Raw, err
	}
}

func inspectImageFunc(api *client.Client) getRefFunc {
	return func(ctx context.Context, ref string) (any, []byte, error) {
		var buf bytes.Buffer
		res, err := api.ImageInspect(ctx, ref, client.ImageInspectWithRawResponse(&buf))
		if err != nil {
			return nil, nil, err
		}
		return res.InspectResponse, buf.Bytes(), nil
	}
}

func inspectVolumeFunc(api *client.Client) getRefFunc {
	return func(ctx context.Context, ref string) (any, []byte, error) {
		res, err := api.VolumeInspect(ctx, ref, client.VolumeInspectOptions{})
		return res.Volume, res.Raw, err
	}
}

func inspectNetworkFunc(api *client.Client) getRefFunc {
	return func(ctx context.Context, ref string) (any, []byte, error) {
		res, err := api.NetworkInspect(ctx, ref, client.NetworkInspectOptions{})
		return res.Network, res.Raw, err
	}
}

type inspectOptions struct {
	format     string
	objectType string
	size       bool
}

var inspectTypes = []string{"container", "image", "network", "volume"}

func (c *cli) newInspectCommand() *cobra.Command {
	var o inspectOptions
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] NAME|ID [NAME|ID...]",
		Short: "Return low-level information on Wharf objects",
		Args:  requiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("type") && o.objectType == "" {
				return fmt.Errorf(`type is empty: must be one of "%s"`, strings.Join(inspectTypes, `", "`))
			}
			return c.runSystemInspect(args, &o)
		},
	}
	flags := cmd.Flags()
	flags.StringVarP(&o.format, "format", "f", "", inspectFormatHelp)
	flags.StringVar(&o.objectType, "type", "", "Only inspect objects of the given type")
	flags.BoolVarP(&o.size, "size", "s", false, "Display total file sizes if the type is container")
	return cmd
}

const inspectFormatHelp = `Format output using a custom template:
'json':             Print in JSON format
'TEMPLATE':         Print output using the given Go template`

// runSystemInspect tries containers, then images, networks and volumes, like `docker inspect`.
func (c *cli) runSystemInspect(refs []string, o *inspectOptions) error {
	switch o.objectType {
	case "", "container", "image", "network", "volume":
	default:
		return fmt.Errorf(`unknown type: %q: must be one of "%s"`, o.objectType, strings.Join(inspectTypes, `", "`))
	}
	api, err := c.client()
	if err != nil {
		return err
	}
	type kind struct {
		name string
		get  getRefFunc
	}
	kinds := []kind{
		{"container", inspectContainerFunc(api, o.size)},
		{"image", inspectImageFunc(api)},
		{"network", inspectNetworkFunc(api)},
		{"volume", inspectVolumeFunc(api)},
	}
	return runInspect(c.out, refs, o.format, func(ctx context.Context, ref string) (any, []byte, error) {
		for _, k := range kinds {
			if o.objectType != "" && k.name != o.objectType {
				continue
			}
			typed, raw, err := k.get(ctx, ref)
			if err != nil {
				if o.objectType == "" && isSkippable(err) {
					continue
				}
				return nil, nil, err
			}
			return typed, raw, nil
		}
		if o.objectType != "" {
			return nil, nil, fmt.Errorf("Error: No such %s: %s", o.objectType, ref)
		}
		return nil, nil, fmt.Errorf("Error: No such object: %s", ref)
	})
}

func (c *cli) newContainerInspectCommand() *cobra.Command {
	var o inspectOptions
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Display detailed information on one or more containers",
		Args:  requiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.client()
			if err != nil {
				return err
			}
			return runInspect(c.out, args, o.format, inspectContainerFunc(api, o.size))
		},
	}
	cmd.Flags().StringVarP(&o.format, "format", "f", "", inspectFormatHelp)
	cmd.Flags().BoolVarP(&o.size, "size", "s", false, "Display total file sizes")
	return cmd
}

func (c *cli) newImageInspectCommand() *cobra.Command {
	var o inspectOptions
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] IMAGE [IMAGE...]",
		Short: "Display detailed information on one or more images",
		Args:  requiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.client()
			if err != nil {
				return err
			}
			return runInspect(c.out, args, o.format, inspectImageFunc(api))
		},
	}
	cmd.Flags().StringVarP(&o.format, "format", "f", "", inspectFormatHelp)
	return cmd
}

// isSkippable tells errors that mean "not this kind of object".
func isSkippable(err error) bool {
	msg := err.Error()
	return isNotFound(err) || strings.Contains(msg, "not supported") || strings.Contains(msg, "invalid reference format")
}
