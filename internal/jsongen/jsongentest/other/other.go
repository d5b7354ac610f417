// Package other holds struct types of another package for jsongentest: one
// with generated codecs, one without.
package other

//go:generate go run github.com/roam-dev/roam/cmd/roam-jsongen -type Gen

// Gen has generated codecs: other packages' generated code calls them.
type Gen struct {
	Name  string         `json:"name"`
	Tags  []string       `json:"tags,omitempty"`
	Score float64        `json:"score"`
	Attrs map[string]int `json:"attrs"`
}

// Plain has none: other packages' generated code gets helpers for it.
type Plain struct {
	A      int `json:"a"`
	B      []Gen
	hidden int
	Nested struct {
		C string `json:"c"`
	} `json:"nested"`
}

// Hidden returns the unexported field, which JSON never sees.
func (p Plain) Hidden() int { return p.hidden }
