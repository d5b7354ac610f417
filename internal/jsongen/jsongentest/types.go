// Package jsongentest holds types exercising every feature of the generated
// JSON codecs, and tests that compare them with encoding/json.
package jsongentest

import (
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/roam-dev/roam/internal/jsongen/jsongentest/other"
)

//go:generate go run github.com/roam-dev/roam/cmd/roam-jsongen -type Basic,Composite,Embedded,Tx,Empty,Node

// Name is a named string.
type Name string

// Blob is a named []byte: base64, like []byte.
type Blob []byte

// Basic has a field of every scalar kind.
type Basic struct {
	S       string          `json:"s"`
	B       bool            `json:"b"`
	I       int             `json:"i"`
	I8      int8            `json:"i8"`
	I16     int16           // no tag: the Go name
	I32     int32           `json:"i32,omitempty"`
	I64     int64           `json:"i64"`
	U       uint            `json:"u"`
	U8      uint8           `json:"u8"`
	U16     uint16          `json:"u16,omitempty"`
	U32     uint32          `json:"u32"`
	U64     uint64          `json:"u64,omitempty"`
	F32     float32         `json:"f32"`
	F64     float64         `json:"f64,omitempty"`
	Name    Name            `json:"name,omitempty"`
	Bytes   []byte          `json:"bytes"`
	Blob    Blob            `json:"blob,omitempty"`
	Raw     json.RawMessage `json:"raw,omitempty"`
	RawNull json.RawMessage `json:"raw_null"`
	T       time.Time       `json:"t"`
	TZ      time.Time       `json:"tz,omitzero"`
	PT      *time.Time      `json:"pt,omitempty"`
	Skip    string          `json:"-"`
	Dash    string          `json:"-,"`
	HTML    string          `json:"<&>"`
	Spaced  string          `json:"a b,omitempty"`
	Invalid string          `json:"\"bad\""`
	Uni     string          `json:"ünï"`
	Opts    int             `json:",omitempty"`
	hidden  int
}

// Small is a small nested struct.
type Small struct {
	A int    `json:"a"`
	B string `json:"b,omitempty"`
}

// Celsius has its own MarshalJSON (spaced, with HTML characters: the output
// is compacted and escaped) and UnmarshalJSON.
type Celsius float64

// MarshalJSON implements json.Marshaler.
func (c Celsius) MarshalJSON() ([]byte, error) {
	if c < -273.15 {
		return nil, errors.New("below absolute zero")
	}
	return []byte(`{ "c" : ` + strconv.FormatFloat(float64(c), 'g', -1, 64) + `, "unit": "<°C & K>" }`), nil
}

// UnmarshalJSON implements json.Unmarshaler.
func (c *Celsius) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var v struct {
		C float64 `json:"c"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*c = Celsius(v.C)
	return nil
}

// Zeroer has an IsZero method that omitzero uses.
type Zeroer struct {
	N int `json:"n"`
}

// IsZero reports whether z counts as zero: a negative N does.
func (z Zeroer) IsZero() bool { return z.N < 0 }

// PtrZeroer has IsZero on its pointer.
type PtrZeroer struct {
	N int `json:"n"`
}

// IsZero reports whether z counts as zero.
func (z *PtrZeroer) IsZero() bool { return z.N == 7 }

// Composite has every composite kind.
type Composite struct {
	Ints   []int           `json:"ints"`
	Strs   []string        `json:"strs,omitempty"`
	Nested []Basic         `json:"nested"`
	Ptrs   []*Small        `json:"ptrs"`
	Arr    [3]int          `json:"arr"`
	ArrS   [2]Small        `json:"arrs,omitzero"`
	Arr0   [0]int          `json:"arr0,omitempty"`
	M      map[string]int  `json:"m"`
	MS     map[Name]Small  `json:"ms,omitempty"`
	MI     map[int]string  `json:"mi"`
	MU8    map[uint8]bool  `json:"mu8"`
	MI16   map[int16][]int `json:"mi16"`
	MM     map[string]map[string]*Small
	P      *int              `json:"p"`
	PP     **string          `json:"pp"`
	PS     *Small            `json:"ps,omitempty"`
	Raws   []json.RawMessage `json:"raws"`
	PRaw   *json.RawMessage  `json:"praw"`
	Anon   struct {
		A int `json:"a"`
		B []string
	} `json:"anon"`
	Z      Small          `json:"z,omitzero"`
	ZP     *Small         `json:"zp,omitzero"`
	ZM     map[string]int `json:"zm,omitzero"`
	ZS     []Small        `json:"zs,omitzero"`
	ZA     [2]float64     `json:"za,omitzero"`
	ZB     Basic          `json:"zb,omitzero"`
	Other  other.Gen      `json:"other"`
	OtherP *other.Gen     `json:"other_p"`
	Plain  other.Plain    `json:"plain"`
	Mar    Celsius        `json:"mar"`
	PMar   *Celsius       `json:"pmar"`
	Mars   []Celsius      `json:"mars"`
	Zeroer Zeroer         `json:"zeroer,omitzero"`
	PZ     PtrZeroer      `json:"pz,omitzero"`
	PZP    *Zeroer        `json:"pzp,omitzero"`
	Both   int            `json:"both,omitempty,omitzero"`
	Empty  struct{}       `json:"empty"`
	Rec    *Composite     `json:"rec,omitempty"`
	Times  map[string]time.Time
}

// Embedded exercises encoding/json's rules for embedded structs.
type Embedded struct {
	Inner
	Tagged Inner  `json:"tagged"`
	Top    string `json:"x"` // hides Inner.X
	inner2
	Dup1
	Dup2
	Deep2
	Lower int `json:"lower"`
}

// Inner is embedded by Embedded.
type Inner struct {
	X string `json:"x"`
	Y int    `json:"y"`
	Deep
}

// Deep is embedded two levels down.
type Deep struct {
	Z     bool `json:"z"`
	LOWER int  // matches "lower" case-insensitively, but Embedded.Lower is shallower
}

// Deep2 collides with Deep's Z at the same depth; the tagged one wins.
type Deep2 struct {
	Z2 int `json:"z"`
}

type inner2 struct {
	W string `json:"w"`
}

// Dup1 and Dup2 both promote D at the same depth, untagged: neither is
// encoded.
type Dup1 struct{ D int }

// Dup2 is Dup1's twin.
type Dup2 struct{ D int }

type putReq struct {
	Key      string          `json:"key"`
	Value    json.RawMessage `json:"value"`
	ETag     string          `json:"etag"`
	TTLMs    int             `json:"ttl_ms"`
	IfAbsent bool            `json:"if_absent"`
}

// Tx is the conformance app's transaction request: an anonymous struct
// embedding an unexported one.
type Tx struct {
	Ops []struct {
		Op string `json:"op"`
		putReq
	} `json:"ops"`
}

// Empty has no fields.
type Empty struct{}

// Node is recursive.
type Node struct {
	Name string  `json:"name"`
	Kids []*Node `json:"kids,omitempty"`
	Next *Node   `json:"next"`
}
