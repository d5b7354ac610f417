// Command roam-jsongen writes reflection-free JSON codecs for struct types of
// a Go package: AppendJSON, DecodeJSON and DecodeJSONValue methods that the
// Roam SDK uses instead of encoding/json's reflection, and that encode and
// decode exactly as encoding/json does. Put a line like this in the package
// and run go generate:
//
//	//go:generate go run github.com/roam-dev/roam/cmd/roam-jsongen -type Order,OrderReply
//
// The output (zz_json.go by default) is source: commit it. Struct types that
// the listed ones reach get helpers too; struct types of other packages are
// reached through their own generated methods when they have them.
//
// Usage:
//
//	roam-jsongen -type A,B,C [-o zz_json.go] [dir]
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/roam-dev/roam/internal/jsongen"
)

func main() {
	typeList := flag.String("type", "", "comma-separated struct types to generate codecs for (required)")
	output := flag.String("o", jsongen.DefaultOutput, "output file, in the package's directory")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: roam-jsongen -type A,B,C [-o %s] [dir]\n", jsongen.DefaultOutput)
		flag.PrintDefaults()
	}
	flag.Parse()
	dir := "."
	switch flag.NArg() {
	case 0:
	case 1:
		dir = flag.Arg(0)
	default:
		flag.Usage()
		os.Exit(2)
	}
	if *typeList == "" || strings.ContainsRune(*output, os.PathSeparator) {
		flag.Usage()
		os.Exit(2)
	}
	src, err := jsongen.Generate(dir, strings.Split(*typeList, ","), *output)
	if err != nil {
		fmt.Fprintln(os.Stderr, "roam-jsongen:", err)
		os.Exit(1)
	}
	if err := os.WriteFile(filepath.Join(dir, *output), src, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "roam-jsongen:", err)
		os.Exit(1)
	}
}
