package main

import (
	"io"

	"github.com/spf13/cobra"

	"github.com/roam-dev/roam/internal/cli"
)

func newEdgeCmd(stdout, stderr io.Writer) *cobra.Command {
	return cli.EdgeCommand("edge", stdout, stderr)
}
