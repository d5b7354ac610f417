package jsonx

import "math/bits"

// Eight bytes at a time: in a wasm guest under an interruptible runtime every
// loop iteration pays for a check, so the string loops look at words, not
// bytes. The masks below flag bytes with the high bit of their byte; the
// lowest flagged byte is always a true match (borrows only corrupt the bytes
// above a match), which is all the callers use.

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// load64 reads s[i:i+8] little-endian; the compiler turns it into one load.
func load64(s []byte, i int) uint64 {
	s = s[i : i+8]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

func load64s(s string, i int) uint64 {
	s = s[i : i+8]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

func load32(s []byte, i int) uint32 {
	s = s[i : i+4]
	return uint32(s[0]) | uint32(s[1])<<8 | uint32(s[2])<<16 | uint32(s[3])<<24
}

func load32s(s string, i int) uint32 {
	s = s[i : i+4]
	return uint32(s[0]) | uint32(s[1])<<8 | uint32(s[2])<<16 | uint32(s[3])<<24
}

// eqMask flags the bytes of w equal to c.
func eqMask(w uint64, c byte) uint64 {
	x := w ^ (lsb * uint64(c))
	return (x - lsb) &^ x & msb
}

// ltMask flags the bytes of w below c (c <= 0x80).
func ltMask(w uint64, c byte) uint64 {
	return (w - lsb*uint64(c)) &^ w & msb
}

// decodeMask flags what ends the fast path of a string being decoded: a
// quote, a backslash, a control character or a non-ASCII byte.
func decodeMask(w uint64) uint64 {
	return eqMask(w, '"') | eqMask(w, '\\') | ltMask(w, 0x20) | w&msb
}

// skipMask is decodeMask for a string being skipped: non-ASCII bytes need no
// attention there.
func skipMask(w uint64) uint64 {
	return eqMask(w, '"') | eqMask(w, '\\') | ltMask(w, 0x20)
}

// encodeMask flags the bytes encoding/json does not copy verbatim into a
// string: controls, '"', '\\', '<', '>', '&' and non-ASCII bytes.
func encodeMask(w uint64) uint64 {
	return ltMask(w, 0x20) | eqMask(w, '"') | eqMask(w, '\\') | eqMask(w, '<') | eqMask(w, '>') | eqMask(w, '&') | w&msb
}

// firstFlagged returns the index of the lowest flagged byte of m (m != 0).
func firstFlagged(m uint64) int { return bits.TrailingZeros64(m) >> 3 }
