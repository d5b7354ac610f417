package oci

import (
	"bytes"
	"encoding/pem"
	"errors"

	"golang.org/x/crypto/x509roots/fallback/bundle"
)

// CACertificates returns the PEM bundle written to
// /etc/ssl/certs/ca-certificates.crt in every image (where Go's crypto/x509
// looks on Linux).
//
// The roots come from golang.org/x/crypto/x509roots/fallback: Mozilla's NSS
// trust store, maintained by the Go team, pinned in go.mod and verified by
// go.sum. Copying the build machine's /etc/ssl/certs instead would make an
// image depend on whichever ca-certificates package that machine has, and
// two machines would build different images from one tree.
//
// Roots that NSS distrusts after a date are left out: a PEM file cannot
// carry that constraint, and trusting them without it would accept
// certificates NSS refuses.
func CACertificates() ([]byte, error) {
	var b bytes.Buffer
	n := 0
	for r := range bundle.Roots() {
		if r.Constraint != nil {
			continue
		}
		if err := pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: r.Certificate}); err != nil {
			return nil, err
		}
		n++
	}
	if n == 0 {
		return nil, errors.New("no CA certificates in golang.org/x/crypto/x509roots/fallback/bundle")
	}
	return b.Bytes(), nil
}
