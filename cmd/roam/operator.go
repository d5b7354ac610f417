package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/roam-dev/roam/internal/dist"
	"github.com/roam-dev/roam/operator/config"
)

// DefaultImageRepo is where Roam's release images are pushed.
const defaultImageRepo = "ghcr.io/roam-dev"

// newOperatorCmd is `roam operator`. The operator itself is another binary
// (cmd/roam-operator, the roam-operator image): roam is also the edge host
// shipped in the roam-edge image, and linking client-go and
// controller-runtime would more than double it. So roam only renders the
// install manifests, which it embeds; kubectl applies them.
func newOperatorCmd(stdout, stderr io.Writer) *cobra.Command {
	op := &cobra.Command{
		Use:   "operator",
		Short: "The Kubernetes operator of RoamApp resources",
		// A command of subcommands only: cobra printed its help and exited
		// 0 for a misspelt one (roam operator instal).
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return fmt.Errorf("unknown command %q for %q (see %s --help)", args[0], cmd.CommandPath(), cmd.CommandPath())
			}
			return cmd.Help()
		},
	}
	var o config.Options
	var out string
	install := &cobra.Command{
		Use:   "install",
		Short: "Print the operator's install manifests (CRD, RBAC, Deployment) for kubectl apply",
		Long: `install renders what installs the operator, in the order to apply it:

  0-namespace.yaml   the operator's namespace (Pod Security "restricted")
  1-crd.yaml         the RoamApp CustomResourceDefinition
  2-rbac.yaml        its ServiceAccount, ClusterRole and leader-election Role
  3-operator.yaml    the operator's Deployment and metrics Service

to stdout, or into the directory -o names:

  roam operator install | kubectl apply --server-side -f -
  roam operator install -o deploy/ && kubectl apply --server-side -f deploy/

The operator image is roam dist's roam-operator (roam dist --push REPO pushes
REPO/roam-operator:TAG); RoamApps in edge mode that name no host image run
--edge-host-image, by default roam-edge beside it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.Image == "" {
				o.Image = defaultImageRepo + "/roam-operator:" + dist.Tag(versionString())
			}
			if o.EdgeHostImage == "" {
				o.EdgeHostImage = config.EdgeHostImageFor(o.Image)
				if o.EdgeHostImage == "" {
					return fmt.Errorf("--image %s is not a tagged .../roam-operator image: name the edge host image with --edge-host-image", o.Image)
				}
			}
			files, err := config.Install(o)
			if err != nil {
				return err
			}
			if out == "" {
				for _, f := range files {
					if _, err := stdout.Write(f.Data); err != nil {
						return err
					}
				}
				return nil
			}
			if err := os.MkdirAll(out, 0o755); err != nil {
				return err
			}
			for _, f := range files {
				if err := os.WriteFile(filepath.Join(out, f.Name), f.Data, 0o644); err != nil {
					return err
				}
			}
			fmt.Fprintf(stderr, "wrote %d files to %s: kubectl apply --server-side -f %s\n", len(files), out, out)
			return nil
		},
	}
	f := install.Flags()
	f.StringVarP(&o.Namespace, "namespace", "n", config.DefaultNamespace, "the operator's namespace")
	f.StringVar(&o.Image, "image", "", "the operator image (default "+defaultImageRepo+"/roam-operator:VERSION)")
	f.StringVar(&o.EdgeHostImage, "edge-host-image", "", "the edge host image for RoamApps in edge mode (default: roam-edge beside --image)")
	f.StringVarP(&out, "output", "o", "", "write the files into this directory instead of stdout")
	f.StringSliceVar(&o.PullSecrets, "pull-secret", nil, "NAME[,NAME]: kubernetes.io/dockerconfigjson Secrets in the operator's namespace, to pull its image from a private registry (RoamApps name their own in spec.imagePullSecrets)")
	op.AddCommand(install)
	return op
}
