package jsongen

import (
	"bytes"
	"fmt"
	"go/types"
	"strconv"
	"strings"
)

// emitStruct writes the append and decode helpers of one struct type.
func (g *gen) emitStruct(w *bytes.Buffer, s *structInfo) error {
	if err := g.emitAppend(w, s); err != nil {
		return err
	}
	return g.emitDecode(w, s)
}

func (g *gen) fieldExpr(f jsonField) string {
	parts := make([]string, len(f.path))
	for i, v := range f.path {
		parts[i] = v.Name()
	}
	return "v." + strings.Join(parts, ".")
}

const (
	wroteNone = iota
	wroteSome
	wroteMaybe
)

func (g *gen) emitAppend(w *bytes.Buffer, s *structInfo) error {
	g.tmp, g.usedErr = 0, false
	var body bytes.Buffer
	conds := make([]string, len(s.fields))
	before := make([]int, len(s.fields))
	state, needWrote := wroteNone, false
	for i, f := range s.fields {
		c, err := g.omitCond(f)
		if err != nil {
			return err
		}
		conds[i] = c
		before[i] = state
		if state == wroteMaybe {
			needWrote = true
		}
		if c == "" {
			state = wroteSome
		} else if state != wroteSome {
			state = wroteMaybe
		}
	}
	// The opening brace goes with the first key when that is always
	// written.
	braceWithKey := len(s.fields) > 0 && conds[0] == ""
	if !braceWithKey {
		body.WriteString("b = append(b, '{')\n")
	}
	if needWrote {
		body.WriteString("wrote := false\n")
	}
	for i, f := range s.fields {
		x := g.fieldExpr(f)
		if conds[i] != "" {
			fmt.Fprintf(&body, "if !(%s) {\n", conds[i])
		}
		key := `"` + htmlEscape(f.name) + `":`
		switch before[i] {
		case wroteSome:
			key = "," + key
		case wroteMaybe:
			body.WriteString("if wrote {\nb = append(b, ',')\n}\n")
		}
		if i == 0 && braceWithKey {
			key = "{" + key
		}
		if call := g.encField(strconv.Quote(key), x, f.typ); call != "" {
			body.WriteString(call)
		} else {
			fmt.Fprintf(&body, "b = append(b, %s...)\n", strconv.Quote(key))
			if err := g.enc(&body, x, f.typ); err != nil {
				return fmt.Errorf("%s field %s: %w", typeKey(s.t), f.path[len(f.path)-1].Name(), err)
			}
		}
		if conds[i] != "" {
			if needWrote && before[i] != wroteSome {
				body.WriteString("wrote = true\n")
			}
			body.WriteString("}\n")
		}
	}
	body.WriteString("b = append(b, '}')\nreturn b, nil\n")

	fmt.Fprintf(w, "func jsonxAppend%s(b []byte, v *%s) ([]byte, error) {\n", s.suffix, g.typeExpr(s.t))
	if g.usedErr {
		w.WriteString("var err error\n")
	}
	w.Write(body.Bytes())
	w.WriteString("}\n\n")
	return nil
}

// simpleKind returns the basic type of t when its values take the
// generated code's fused fast paths: strings, integers and bools encoded by
// kind (no MarshalJSON).
func simpleKind(t types.Type) *types.Basic {
	t = types.Unalias(t)
	if checkSupported(t) != nil || implements(t, "MarshalJSON") || implements(types.NewPointer(t), "UnmarshalJSON") {
		return nil
	}
	b, ok := t.Underlying().(*types.Basic)
	if !ok || b.Info()&(types.IsString|types.IsInteger|types.IsBoolean) == 0 {
		return nil
	}
	return b
}

// encField returns a statement appending the member key and x in one call,
// or "" when x's type has no such call.
func (g *gen) encField(key, x string, t types.Type) string {
	b := simpleKind(t)
	if b == nil {
		return ""
	}
	conv := func(to string) string {
		if tb, ok := types.Unalias(t).(*types.Basic); ok && tb.Name() == to {
			return x
		}
		return to + "(" + x + ")"
	}
	switch {
	case b.Info()&types.IsString != 0:
		return fmt.Sprintf("b = jsonx.AppendStringField(b, %s, %s)\n", key, conv("string"))
	case b.Info()&types.IsBoolean != 0:
		return fmt.Sprintf("b = jsonx.AppendBoolField(b, %s, %s)\n", key, conv("bool"))
	case b.Info()&types.IsUnsigned != 0:
		return fmt.Sprintf("b = jsonx.AppendUintField(b, %s, %s)\n", key, conv("uint64"))
	default:
		return fmt.Sprintf("b = jsonx.AppendIntField(b, %s, %s)\n", key, conv("int64"))
	}
}

// maxValue is the largest value of an integer type, as Go source.
func maxValue(b *types.Basic) string {
	switch b.Kind() {
	case types.Int8:
		return "127"
	case types.Int16:
		return "32767"
	case types.Int32:
		return "2147483647"
	case types.Int64:
		return "9223372036854775807"
	case types.Int:
		return "jsonx.MaxInt"
	case types.Uint8:
		return "255"
	case types.Uint16:
		return "65535"
	case types.Uint32:
		return "4294967295"
	case types.Uint64:
		return "18446744073709551615"
	}
	return "jsonx.MaxUint"
}

// errCheck writes the check after a call that may fail.
func (g *gen) errCheck(w *bytes.Buffer) {
	g.usedErr = true
	w.WriteString("if err != nil {\nreturn nil, err\n}\n")
}

// enc writes code appending the encoding of x, an addressable expression of
// type t, to b.
func (g *gen) enc(w *bytes.Buffer, x string, t types.Type) error {
	t = types.Unalias(t)
	if err := checkSupported(t); err != nil {
		return err
	}
	if err := g.checkReachable(t); err != nil {
		return err
	}
	switch {
	case isRawMessage(t):
		fmt.Fprintf(w, "b, err = jsonx.AppendRaw(b, %s)\n", x)
		g.errCheck(w)
		return nil
	case isTime(t):
		fmt.Fprintf(w, "b, err = jsonx.AppendTime(b, %s)\n", x)
		g.errCheck(w)
		return nil
	}
	if p, ok := t.(*types.Pointer); ok {
		fmt.Fprintf(w, "if %s == nil {\nb = append(b, \"null\"...)\n} else {\n", x)
		if implements(t, "MarshalJSON") {
			fmt.Fprintf(w, "b, err = jsonx.AppendMarshaler(b, %s, %q)\n", x, reflectString(t))
			g.errCheck(w)
		} else if err := g.enc(w, "(*"+x+")", p.Elem()); err != nil {
			return err
		}
		w.WriteString("}\n")
		return nil
	}
	if implements(t, "MarshalJSON") {
		fmt.Fprintf(w, "b, err = jsonx.AppendMarshaler(b, %s, %q)\n", x, reflectString(t))
		g.errCheck(w)
		return nil
	}
	switch u := t.Underlying().(type) {
	case *types.Basic:
		conv := func(to string) string {
			if b, ok := t.(*types.Basic); ok && b.Name() == to {
				return x
			}
			return to + "(" + x + ")"
		}
		switch {
		case u.Info()&types.IsBoolean != 0:
			fmt.Fprintf(w, "b = jsonx.AppendBool(b, %s)\n", conv("bool"))
		case u.Info()&types.IsString != 0:
			fmt.Fprintf(w, "b = jsonx.AppendString(b, %s)\n", conv("string"))
		case u.Info()&types.IsFloat != 0:
			bits := 64
			if u.Kind() == types.Float32 {
				bits = 32
			}
			fmt.Fprintf(w, "b, err = jsonx.AppendFloat(b, %s, %d)\n", conv("float64"), bits)
			g.errCheck(w)
		case u.Info()&types.IsUnsigned != 0:
			fmt.Fprintf(w, "b = jsonx.AppendUint(b, %s)\n", conv("uint64"))
		case u.Info()&types.IsInteger != 0:
			fmt.Fprintf(w, "b = jsonx.AppendInt(b, %s)\n", conv("int64"))
		default:
			return unsupported(t, "not a JSON type")
		}
	case *types.Slice:
		if isByteSlice(u) {
			if isByteSlice(t) {
				fmt.Fprintf(w, "b = jsonx.AppendBytes(b, %s)\n", x)
			} else {
				fmt.Fprintf(w, "b = jsonx.AppendBytes(b, []byte(%s))\n", x)
			}
			return nil
		}
		i := g.newVar("i")
		fmt.Fprintf(w, "if %s == nil {\nb = append(b, \"null\"...)\n} else {\nb = append(b, '[')\n", x)
		fmt.Fprintf(w, "for %s := range %s {\nif %s > 0 {\nb = append(b, ',')\n}\n", i, x, i)
		if err := g.enc(w, x+"["+i+"]", u.Elem()); err != nil {
			return err
		}
		w.WriteString("}\nb = append(b, ']')\n}\n")
	case *types.Array:
		i := g.newVar("i")
		fmt.Fprintf(w, "b = append(b, '[')\nfor %s := range %s {\nif %s > 0 {\nb = append(b, ',')\n}\n", i, x, i)
		if err := g.enc(w, x+"["+i+"]", u.Elem()); err != nil {
			return err
		}
		w.WriteString("}\nb = append(b, ']')\n")
	case *types.Map:
		i, k, e := g.newVar("i"), g.newVar("k"), g.newVar("e")
		fmt.Fprintf(w, "if %s == nil {\nb = append(b, \"null\"...)\n} else {\nb = append(b, '{')\n", x)
		kb := u.Key().Underlying().(*types.Basic)
		switch {
		case kb.Info()&types.IsString != 0:
			fmt.Fprintf(w, "for %s, %s := range jsonx.SortedKeys(%s) {\nif %s > 0 {\nb = append(b, ',')\n}\n", i, k, x, i)
			if b, ok := u.Key().(*types.Basic); ok && b.Kind() == types.String {
				fmt.Fprintf(w, "b = jsonx.AppendString(b, %s)\n", k)
			} else {
				fmt.Fprintf(w, "b = jsonx.AppendString(b, string(%s))\n", k)
			}
			fmt.Fprintf(w, "b = append(b, ':')\n%s := %s[%s]\n", e, x, k)
		default:
			fn := "SortedIntKeys"
			if kb.Info()&types.IsUnsigned != 0 {
				fn = "SortedUintKeys"
			}
			fmt.Fprintf(w, "for %s, %s := range jsonx.%s(%s) {\nif %s > 0 {\nb = append(b, ',')\n}\n", i, k, fn, x, i)
			fmt.Fprintf(w, "b = append(b, '\"')\nb = append(b, %s.Text...)\nb = append(b, '\"', ':')\n%s := %s[%s.Key]\n", k, e, x, k)
		}
		if err := g.enc(w, e, u.Elem()); err != nil {
			return err
		}
		w.WriteString("}\nb = append(b, '}')\n}\n")
	case *types.Struct:
		if n, ok := t.(*types.Named); ok && n.Obj().Pkg() != g.pkg && hasGenerated(t) {
			fmt.Fprintf(w, "b, err = %s.AppendJSON(b)\n", x)
			g.errCheck(w)
			return nil
		}
		s, err := g.structFor(t)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "b, err = jsonxAppend%s(b, &%s)\n", s.suffix, x)
		g.errCheck(w)
	default:
		return unsupported(t, "not a JSON type")
	}
	return nil
}

// checkReachable refuses named types of other packages that generated code
// here cannot name.
func (g *gen) checkReachable(t types.Type) error {
	if n, ok := t.(*types.Named); ok && n.Obj().Pkg() != nil && n.Obj().Pkg() != g.pkg && !n.Obj().Exported() {
		return unsupported(t, "it is unexported in another package: generate codecs for it there, or export it")
	}
	return nil
}

// omitCond returns the condition under which encoding/json leaves f out, or
// "" when it never does.
func (g *gen) omitCond(f jsonField) (string, error) {
	x := g.fieldExpr(f)
	var conds []string
	if f.omitEmpty {
		if c := emptyCond(x, f.typ); c != "" {
			conds = append(conds, c)
		}
	}
	if f.omitZero {
		c, err := g.zeroCond(x, f.typ, true)
		if err != nil {
			return "", err
		}
		if len(conds) == 0 || conds[0] != c {
			conds = append(conds, c)
		}
	}
	return strings.Join(conds, " || "), nil
}

// emptyCond is encoding/json's isEmptyValue.
func emptyCond(x string, t types.Type) string {
	switch u := t.Underlying().(type) {
	case *types.Array, *types.Map, *types.Slice:
		return "len(" + x + ") == 0"
	case *types.Basic:
		switch {
		case u.Info()&types.IsString != 0:
			return "len(" + x + ") == 0"
		case u.Info()&types.IsBoolean != 0:
			return "!" + x
		case u.Info()&types.IsNumeric != 0:
			return x + " == 0"
		}
	case *types.Pointer, *types.Interface:
		return x + " == nil"
	}
	return ""
}

// zeroCond is encoding/json's omitzero test: the type's IsZero method when
// it has one (top is true for the field itself), reflect.Value.IsZero
// otherwise.
func (g *gen) zeroCond(x string, t types.Type, top bool) (string, error) {
	if top {
		switch {
		case isPointer(t) && implements(t, "IsZero"):
			return "(" + x + " == nil || " + x + ".IsZero())", nil
		case implements(t, "IsZero"):
			return x + ".IsZero()", nil
		case implements(types.NewPointer(t), "IsZero"):
			return "(&" + x + ").IsZero()", nil
		}
	}
	switch u := t.Underlying().(type) {
	case *types.Basic:
		switch {
		case u.Info()&types.IsString != 0:
			return x + ` == ""`, nil
		case u.Info()&types.IsBoolean != 0:
			return "!" + x, nil
		default:
			return x + " == 0", nil
		}
	case *types.Pointer, *types.Slice, *types.Map, *types.Interface, *types.Chan, *types.Signature:
		return x + " == nil", nil
	case *types.Array, *types.Struct:
		if types.Comparable(t) {
			return x + " == (" + g.typeExpr(t) + "{})", nil
		}
		if a, ok := u.(*types.Array); ok {
			i := g.newVar("i")
			c, err := g.zeroCond(x+"["+i+"]", a.Elem(), false)
			if err != nil {
				return "", err
			}
			return "func() bool {\nfor " + i + " := range " + x + " {\nif !(" + c + ") {\nreturn false\n}\n}\nreturn true\n}()", nil
		}
		st := u.(*types.Struct)
		var conds []string
		outside := false
		if n, ok := t.(*types.Named); ok && n.Obj().Pkg() != g.pkg {
			outside = true
		}
		for i := 0; i < st.NumFields(); i++ {
			f := st.Field(i)
			if f.Name() == "_" {
				return "", unsupported(t, "omitzero on a struct with blank fields that is not comparable")
			}
			if outside && !f.Exported() {
				return "", unsupported(t, "omitzero on a struct of another package that is not comparable and has unexported fields")
			}
			c, err := g.zeroCond(x+"."+f.Name(), f.Type(), false)
			if err != nil {
				return "", err
			}
			conds = append(conds, "("+c+")")
		}
		if len(conds) == 0 {
			return "true", nil
		}
		return strings.Join(conds, " && "), nil
	}
	return "", unsupported(t, "omitzero on this type")
}

func isPointer(t types.Type) bool {
	_, ok := t.Underlying().(*types.Pointer)
	return ok
}

func (g *gen) emitDecode(w *bytes.Buffer, s *structInfo) error {
	g.tmp = 0
	var body bytes.Buffer
	fmt.Fprintf(&body, "if d.Object(%q) != jsonx.Open {\nreturn\n}\n", reflectString(s.t))
	if len(s.fields) == 0 {
		body.WriteString("for first := true; ; {\nif _, ok := d.Member(&first); !ok {\nreturn\n}\nd.Skip()\n}\n")
	} else {
		// The members are expected in declaration order (next), as a Go
		// struct writes them: the fast paths check for that cheaply and take
		// plain values in the same call. Member and the switches handle the
		// rest.
		body.WriteString("next := 1\nfor first := true; ; first = false {\nvar f int\nswitch next {\n")
		for i, f := range s.fields {
			key := fmt.Sprintf("jsonxKeys%s[%d]", s.suffix, i)
			fmt.Fprintf(&body, "case %d:\n", i+1)
			x := g.fieldExpr(f)
			b := simpleKind(f.typ)
			switch {
			case b == nil:
				fmt.Fprintf(&body, "if d.Key(%s, first) {\nf = %d\n}\n", key, i+1)
			case b.Info()&types.IsString != 0:
				if tb, ok := types.Unalias(f.typ).(*types.Basic); ok && tb.Kind() == types.String {
					fmt.Fprintf(&body, "if d.KeyString(%s, first, &%s) {\nnext = %d\ncontinue\n}\n", key, x, i+2)
				} else {
					fmt.Fprintf(&body, "if d.KeyString(%s, first, (*string)(&%s)) {\nnext = %d\ncontinue\n}\n", key, x, i+2)
				}
			case b.Info()&types.IsBoolean != 0:
				// (The type expression only where it is written: it
				// registers its package's import.)
				fmt.Fprintf(&body, "if x, ok := d.KeyBool(%s, first); ok {\n%s = %s(x)\nnext = %d\ncontinue\n}\n", key, x, g.typeExpr(f.typ), i+2)
			default:
				fmt.Fprintf(&body, "if x, ok := d.KeyUint(%s, first, %s); ok {\n%s = %s(x)\nnext = %d\ncontinue\n}\n", key, maxValue(b), x, g.typeExpr(f.typ), i+2)
			}
		}
		fmt.Fprintf(&body, "case %d:\nif d.End() {\nreturn\n}\n", len(s.fields)+1)
		body.WriteString("}\nif f == 0 {\nkey, ok := d.Member(&first)\nif !ok {\nreturn\n}\nswitch string(key) {\n")
		for i, f := range s.fields {
			fmt.Fprintf(&body, "case %s:\nf = %d\n", strconv.Quote(f.name), i+1)
		}
		fmt.Fprintf(&body, "default:\nf = jsonx.Fold(key, jsonxNames%s[:])\n}\n}\nnext = f + 1\nswitch f {\n", s.suffix)
		for i, f := range s.fields {
			fmt.Fprintf(&body, "case %d:\n", i+1)
			for j, v := range f.path[:len(f.path)-1] {
				if j == 0 {
					fmt.Fprintf(&body, "n := d.Enter(%q, %q)\n", s.name, v.Name())
				} else {
					fmt.Fprintf(&body, "d.Enter(%q, %q)\n", s.name, v.Name())
				}
			}
			if len(f.path) == 1 {
				fmt.Fprintf(&body, "n := d.Enter(%q, %q)\n", s.name, f.name)
			} else {
				fmt.Fprintf(&body, "d.Enter(%q, %q)\n", s.name, f.name)
			}
			if err := g.dec(&body, g.fieldExpr(f), f.typ); err != nil {
				return fmt.Errorf("%s field %s: %w", typeKey(s.t), f.path[len(f.path)-1].Name(), err)
			}
			body.WriteString("d.Leave(n)\n")
		}
		body.WriteString("default:\nd.Skip()\n}\n}\n")
	}
	fmt.Fprintf(w, "func jsonxDecode%s(d *jsonx.Decoder, v *%s) {\n", s.suffix, g.typeExpr(s.t))
	w.Write(body.Bytes())
	w.WriteString("}\n\n")
	if len(s.fields) > 0 {
		names := make([]string, len(s.fields))
		keys := make([]string, len(s.fields))
		for i, f := range s.fields {
			names[i] = strconv.Quote(f.name)
			keys[i] = strconv.Quote(",\"" + f.name + "\":")
		}
		fmt.Fprintf(w, "var jsonxNames%s = [...]string{%s}\n\n", s.suffix, strings.Join(names, ", "))
		fmt.Fprintf(w, "var jsonxKeys%s = [...]string{%s}\n\n", s.suffix, strings.Join(keys, ", "))
	}
	return nil
}

// dec writes code decoding the next value into x, an addressable expression
// of type t.
func (g *gen) dec(w *bytes.Buffer, x string, t types.Type) error {
	t = types.Unalias(t)
	if err := checkSupported(t); err != nil {
		return err
	}
	if err := g.checkReachable(t); err != nil {
		return err
	}
	if isRawMessage(t) {
		fmt.Fprintf(w, "%s = d.Raw(%s)\n", x, x)
		return nil
	}
	if p, ok := t.(*types.Pointer); ok {
		fmt.Fprintf(w, "if d.IsNull() {\n%s = nil\n} else {\nif %s == nil {\n%s = new(%s)\n}\n", x, x, x, g.typeExpr(p.Elem()))
		if err := g.dec(w, "(*"+x+")", p.Elem()); err != nil {
			return err
		}
		w.WriteString("}\n")
		return nil
	}
	if implements(types.NewPointer(t), "UnmarshalJSON") {
		r := g.newVar("r")
		fmt.Fprintf(w, "if %s, ok := d.Value(); ok {\nif err := %s.UnmarshalJSON(%s); err != nil {\n", r, x, r)
		if !isTime(t) {
			// encoding/json adds its error context to an UnmarshalTypeError
			// that an UnmarshalJSON method returns.
			fmt.Fprintf(w, "if e, ok := err.(*%s.UnmarshalTypeError); ok {\nd.AddContext(&e.Struct, &e.Field)\n}\n", g.importName("encoding/json", "json"))
		}
		w.WriteString("d.Abort(err)\n}\n}\n")
		return nil
	}
	rs := reflectString(t)
	switch u := t.Underlying().(type) {
	case *types.Basic:
		val := g.newVar("x")
		conv := func(from string) string {
			if b, ok := t.(*types.Basic); ok && b.Name() == from {
				return val
			}
			return g.typeExpr(t) + "(" + val + ")"
		}
		var call, from string
		switch {
		case u.Info()&types.IsBoolean != 0:
			call, from = fmt.Sprintf("d.Bool(%q)", rs), "bool"
		case u.Info()&types.IsString != 0:
			call, from = fmt.Sprintf("d.String(%q)", rs), "string"
		case u.Info()&types.IsFloat != 0:
			bits := 64
			if u.Kind() == types.Float32 {
				bits = 32
			}
			call, from = fmt.Sprintf("d.Float(%d, %q)", bits, rs), "float64"
		case u.Info()&types.IsUnsigned != 0:
			call, from = fmt.Sprintf("d.Uint(%d, %q)", intBits(u), rs), "uint64"
		case u.Info()&types.IsInteger != 0:
			call, from = fmt.Sprintf("d.Int(%d, %q)", intBits(u), rs), "int64"
		default:
			return unsupported(t, "not a JSON type")
		}
		fmt.Fprintf(w, "if %s, ok := %s; ok {\n%s = %s\n}\n", val, call, x, conv(from))
	case *types.Slice:
		if isByteSlice(u) {
			if isByteSlice(t) {
				fmt.Fprintf(w, "%s = d.Bytes(%s, %q)\n", x, x, rs)
			} else {
				fmt.Fprintf(w, "%s = %s(d.Bytes([]byte(%s), %q))\n", x, g.typeExpr(t), x, rs)
			}
			return nil
		}
		sv, i, first := g.newVar("s"), g.newVar("i"), g.newVar("first")
		fmt.Fprintf(w, "switch d.Array(%q) {\ncase jsonx.Null:\n%s = nil\ncase jsonx.Open:\n", rs, x)
		fmt.Fprintf(w, "%s, %s := %s, 0\n", sv, i, x)
		fmt.Fprintf(w, "for %s := true; d.Elem(&%s); %s++ {\n", first, first, i)
		fmt.Fprintf(w, "if %s >= cap(%s) {\n%s = append(%s[:%s], *new(%s))\n} else if %s >= len(%s) {\n%s = %s[:%s+1]\n}\n",
			i, sv, sv, sv, i, g.typeExpr(u.Elem()), i, sv, sv, sv, i)
		if err := g.dec(w, sv+"["+i+"]", u.Elem()); err != nil {
			return err
		}
		fmt.Fprintf(w, "}\nif %s < len(%s) {\n%s = %s[:%s]\n}\nif %s == 0 {\n%s = make(%s, 0)\n}\n%s = %s\n}\n",
			i, sv, sv, sv, i, i, sv, g.typeExpr(t), x, sv)
	case *types.Array:
		i, first := g.newVar("i"), g.newVar("first")
		fmt.Fprintf(w, "if d.Array(%q) == jsonx.Open {\n%s := 0\n", rs, i)
		fmt.Fprintf(w, "for %s := true; d.Elem(&%s); %s++ {\nif %s < %d {\n", first, first, i, i, u.Len())
		if err := g.dec(w, x+"["+i+"]", u.Elem()); err != nil {
			return err
		}
		fmt.Fprintf(w, "} else {\nd.Skip()\n}\n}\nfor ; %s < %d; %s++ {\n%s[%s] = *new(%s)\n}\n}\n", i, u.Len(), i, x, i, g.typeExpr(u.Elem()))
	case *types.Map:
		first, k, ks, e := g.newVar("first"), g.newVar("k"), g.newVar("ks"), g.newVar("e")
		fmt.Fprintf(w, "switch d.Object(%q) {\ncase jsonx.Null:\n%s = nil\ncase jsonx.Open:\n", rs, x)
		fmt.Fprintf(w, "if %s == nil {\n%s = make(%s)\n}\n", x, x, g.typeExpr(t))
		fmt.Fprintf(w, "for %s := true; ; {\n%s, ok := d.Member(&%s)\nif !ok {\nbreak\n}\n%s := d.MapKey(%s)\nvar %s %s\n",
			first, k, first, ks, k, e, g.typeExpr(u.Elem()))
		if err := g.dec(w, e, u.Elem()); err != nil {
			return err
		}
		kb := u.Key().Underlying().(*types.Basic)
		kt := u.Key()
		switch {
		case kb.Info()&types.IsString != 0:
			if b, ok := kt.(*types.Basic); ok && b.Kind() == types.String {
				fmt.Fprintf(w, "%s[%s] = %s\n", x, ks, e)
			} else {
				fmt.Fprintf(w, "%s[%s(%s)] = %s\n", x, g.typeExpr(kt), ks, e)
			}
		case kb.Info()&types.IsUnsigned != 0:
			fmt.Fprintf(w, "if n, ok := d.ParseMapUint(%s, %d, %q); ok {\n%s[%s(n)] = %s\n}\n", ks, intBits(kb), reflectString(kt), x, g.typeExpr(kt), e)
		default:
			fmt.Fprintf(w, "if n, ok := d.ParseMapInt(%s, %d, %q); ok {\n%s[%s(n)] = %s\n}\n", ks, intBits(kb), reflectString(kt), x, g.typeExpr(kt), e)
		}
		w.WriteString("}\n}\n")
	case *types.Struct:
		if n, ok := t.(*types.Named); ok && n.Obj().Pkg() != g.pkg && hasGenerated(t) {
			fmt.Fprintf(w, "%s.DecodeJSONValue(d)\n", x)
			return nil
		}
		s, err := g.structFor(t)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "jsonxDecode%s(d, &%s)\n", s.suffix, x)
	default:
		return unsupported(t, "not a JSON type")
	}
	return nil
}

// intBits is the size the decoder checks against; 0 stands for int's and
// uint's, which depend on the platform.
func intBits(b *types.Basic) int {
	switch b.Kind() {
	case types.Int8, types.Uint8:
		return 8
	case types.Int16, types.Uint16:
		return 16
	case types.Int32, types.Uint32:
		return 32
	case types.Int64, types.Uint64:
		return 64
	}
	return 0
}

func (g *gen) emitMethods(w *bytes.Buffer, s *structInfo) {
	te := g.typeExpr(s.t)
	fmt.Fprintf(w, `// AppendJSON appends the JSON encoding of v to b, byte for byte what
// json.Marshal writes, without reflection.
func (v %[1]s) AppendJSON(b []byte) ([]byte, error) {
	return jsonxAppend%[2]s(b, &v)
}

// DecodeJSON decodes data into v as json.Unmarshal does (the same values
// and the same errors), without reflection.
func (v *%[1]s) DecodeJSON(data []byte) error {
	var d jsonx.Decoder
	d.Init(data)
	jsonxDecode%[2]s(&d, v)
	return d.Finish()
}

// DecodeJSONValue decodes the next value of d into v, for generated code
// decoding a larger value that holds one.
func (v *%[1]s) DecodeJSONValue(d *jsonx.Decoder) {
	jsonxDecode%[2]s(d, v)
}

`, te, s.suffix)
}
