package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
)

type saveOptions struct {
	output string
	images []string
}

func (c *cli) newSaveCommand() *cobra.Command {
	var o saveOptions
	cmd := &cobra.Command{
		Use:   "save [OPTIONS] IMAGE [IMAGE...]",
		Short: "Save one or more images to a tar archive (streamed to STDOUT by default)",
		Args:  requiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.images = args
			return c.runSave(&o)
		},
	}
	cmd.Flags().StringVarP(&o.output, "output", "o", "", "Write to a file, instead of STDOUT")
	return cmd
}

func (c *cli) runSave(o *saveOptions) error {
	if o.output == "" {
		if _, ok := isTerminal(c.out); ok {
			return errors.New("cowardly refusing to save to a terminal. Use the -o flag or redirect")
		}
	} else if dir := filepath.Dir(o.output); dir != "" {
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			return fmt.Errorf("failed to save image: invalid output path: directory %q does not exist", dir)
		}
	}
	ctx, cancel := c.signalContext()
	defer cancel()
	api, err := c.client()
	if err != nil {
		return err
	}
	body, err := api.ImageSave(ctx, o.images)
	if err != nil {
		return err
	}
	defer body.Close()
	if o.output == "" {
		_, err := io.Copy(c.out, body)
		return err
	}
	return copyToFileAtomic(o.output, body)
}

// copyToFileAtomic writes r to a temp file next to path, then renames it into place.
func copyToFileAtomic(path string, r io.Reader) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".wharf_temp_")
	if err != nil {
		return err
	}
	tmp := f.Name()
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
