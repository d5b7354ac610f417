package jsonx

// Valid checks that data is one JSON value, optionally surrounded by white
// space, and returns the *SyntaxError encoding/json reports for it when it is
// not.
func Valid(data []byte) error {
	var d Decoder
	d.Init(data)
	if d.begin() != 0 {
		d.skipValue()
	}
	if d.stop == nil {
		if c, ok := d.next(); ok {
			d.syntax(c, "after top-level value")
		}
	}
	return d.stop
}

// AppendCompact appends src without insignificant white space, with <, >, &,
// U+2028 and U+2029 escaped, as encoding/json does with the output of a
// MarshalJSON method. Invalid JSON is an error, with encoding/json's message.
func AppendCompact(dst, src []byte) ([]byte, error) {
	if err := Valid(src); err != nil {
		return dst, err
	}
	// Fast path: nothing to drop or escape.
	i := 0
	for ; i+8 <= len(src); i += 8 {
		if compactMask(load64(src, i)) != 0 {
			break
		}
	}
	for ; i < len(src); i++ {
		if c := src[i]; c <= ' ' || c == '<' || c == '>' || c == '&' || c == 0xE2 {
			break
		}
	}
	if i == len(src) {
		return append(dst, src...), nil
	}
	start := 0
	inString, escaped := false, false
	for i := range src {
		c := src[i]
		if c == '<' || c == '>' || c == '&' {
			dst = append(dst, src[start:i]...)
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			start = i + 1
		}
		if c == 0xE2 && i+2 < len(src) && src[i+1] == 0x80 && src[i+2]&^1 == 0xA8 {
			dst = append(dst, src[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[src[i+2]&0xF])
			start = i + 3
		}
		switch {
		case escaped:
			escaped = false
		case inString:
			switch c {
			case '\\':
				escaped = true
			case '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			if start < i {
				dst = append(dst, src[start:i]...)
			}
			start = i + 1
		}
	}
	if start < len(src) {
		dst = append(dst, src[start:]...)
	}
	return dst, nil
}

// compactMask flags white space (and any other byte up to ' '), '<', '>',
// '&' and 0xE2, the first byte of U+2028 and U+2029.
func compactMask(w uint64) uint64 {
	return ltMask(w, 0x21) | eqMask(w, '<') | eqMask(w, '>') | eqMask(w, '&') | eqMask(w, 0xE2)
}
