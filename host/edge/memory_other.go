//go:build !linux

package edge

import "errors"

// Off Linux, linear memory lives on the Go heap (see linearMemory).
func reserve(uint64) ([]byte, error) { return nil, errors.ErrUnsupported }
func commit([]byte) error            { return errors.ErrUnsupported }
func unmap([]byte)                   {}
