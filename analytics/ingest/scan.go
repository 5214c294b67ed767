package ingest

import (
	"encoding/binary"
	"math/bits"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// The scanner below is a strict one-pass JSON reader (RFC 8259, as
// encoding/json.Valid) that hands the values it meets to the telemetry
// decoder without building a tree. It works on one string conversion of the
// message, so a string value without escapes is a slice of it, not a copy.

// maxDepth is encoding/json's nesting limit: deeper input is invalid there.
const maxDepth = 10000

// valueKind is the JSON type of a scanned value.
type valueKind uint8

const (
	kindNull valueKind = iota
	kindFalse
	kindTrue
	kindNumber
	kindString
	kindObject
	kindArray
)

// value is a scanned JSON value: its type and where its text is.
type value struct {
	kind       valueKind
	start, end int // s[start:end] is the value's JSON text
	// esc marks a string that must be unquoted: it has escapes or invalid
	// UTF-8 (which encoding/json replaces with U+FFFD).
	esc bool
	// plain marks a number written as an integer: no fraction, no exponent.
	plain bool
}

// strPlain marks the bytes a string may hold that need no attention: printable
// ASCII other than '"' and '\\'.
var strPlain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// notPlain has the high bit set of the lowest byte of x (little-endian)
// that strPlain does not mark, and maybe of some bytes above it; it is 0 if
// all eight bytes are plain.
func notPlain(x uint64) uint64 {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	quote, backslash := x^(ones*'"'), x^(ones*'\\')
	return ((x-ones*0x20)&^x | (quote-ones)&^quote | (backslash-ones)&^backslash | x) & highs
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// The scan functions below read the JSON text s from index i and return the
// index after what they read, or -1 if it is not valid JSON.

// skipWS skips whitespace.
func skipWS(s string, i int) int {
	for i < len(s) && s[i] <= ' ' && (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t') {
		i++
	}
	return i
}

// scanValue scans the value at s[i] (after whitespace); depth is the nesting
// depth of the container the value is in.
func scanValue(s string, i, depth int) (v value, ok bool) {
	v.start, v.end = i, -1
	if i >= len(s) {
		return v, false
	}
	j := -1
	switch s[i] {
	case '"':
		v.kind = kindString
		j, v.esc = scanString(s, i)
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		v.kind = kindNumber
		j, v.plain = scanNumber(s, i)
	case '{':
		v.kind = kindObject
		j = skipObject(s, i, depth+1)
	case '[':
		v.kind = kindArray
		j = skipArray(s, i, depth+1)
	case 't':
		v.kind = kindTrue
		j = scanLiteral(s, i, "true")
	case 'f':
		v.kind = kindFalse
		j = scanLiteral(s, i, "false")
	case 'n':
		v.kind = kindNull
		j = scanLiteral(s, i, "null")
	}
	v.end = j
	return v, j >= 0
}

func scanLiteral(s string, i int, lit string) int {
	if len(s)-i < len(lit) || s[i:i+len(lit)] != lit {
		return -1
	}
	return i + len(lit)
}

// scanString scans the string whose '"' is at s[i]. esc reports whether its
// body must be unquoted (see value.esc).
func scanString(s string, i int) (j int, esc bool) {
	i++
	for {
		// Eight bytes at a time while there are eight, to the first that is
		// not plain.
		for i+8 <= len(s) {
			if m := notPlain(binary.LittleEndian.Uint64([]byte(s[i : i+8]))); m != 0 {
				i += bits.TrailingZeros64(m) / 8
				break
			}
			i += 8
		}
		for i < len(s) && strPlain[s[i]] {
			i++
		}
		if i >= len(s) {
			return -1, esc
		}
		switch c := s[i]; {
		case c == '"':
			return i + 1, esc
		case c == '\\':
			esc = true
			if i+1 >= len(s) {
				return -1, esc
			}
			switch s[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(s) || !isHex(s[i+2]) || !isHex(s[i+3]) || !isHex(s[i+4]) || !isHex(s[i+5]) {
					return -1, esc
				}
				i += 6
			default:
				return -1, esc
			}
		case c < 0x20:
			return -1, esc
		case esc:
			i++ // unquote checks the UTF-8
		default:
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				esc = true
			}
			i += size
		}
	}
}

// scanNumber scans the number at s[i]; plain reports an integer without
// fraction or exponent. The byte after it is the caller's to check.
func scanNumber(s string, i int) (j int, plain bool) {
	if s[i] == '-' {
		i++
	}
	switch {
	case i >= len(s):
		return -1, false
	case s[i] == '0':
		i++
	case '1' <= s[i] && s[i] <= '9':
		i++
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	default:
		return -1, false
	}
	plain = true
	if i < len(s) && s[i] == '.' {
		plain = false
		i++
		if i >= len(s) || !isDigit(s[i]) {
			return -1, false
		}
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		plain = false
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if i >= len(s) || !isDigit(s[i]) {
			return -1, false
		}
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	}
	return i, plain
}

// scanInt reads the integer at s[i] if it is written plainly with at most 18
// digits (so fits an int64); ok false leaves it to scanNumber.
func scanInt(s string, i int) (n int64, j int, ok bool) {
	j = i
	neg := j < len(s) && s[j] == '-'
	if neg {
		j++
	}
	start := j
	for j < len(s) && isDigit(s[j]) {
		n = n*10 + int64(s[j]-'0')
		j++
	}
	digits := j - start
	if digits == 0 || digits > 18 || digits > 1 && s[start] == '0' ||
		j < len(s) && (s[j] == '.' || s[j] == 'e' || s[j] == 'E') {
		return 0, 0, false
	}
	if neg {
		n = -n
	}
	return n, j, true
}

// skipObject scans the object whose '{' is at s[i]; depth is its own
// nesting depth.
func skipObject(s string, i, depth int) int {
	i, more := open(s, i, depth, '}')
	for more {
		if _, i = scanKey(s, i); i < 0 {
			return -1
		}
		v, ok := scanValue(s, i, depth)
		if !ok {
			return -1
		}
		i, more = next(s, v.end, '}')
	}
	return i
}

// skipArray scans the array whose '[' is at s[i]; depth is its own nesting
// depth.
func skipArray(s string, i, depth int) int {
	i, more := open(s, i, depth, ']')
	for more {
		v, ok := scanValue(s, i, depth)
		if !ok {
			return -1
		}
		i, more = next(s, v.end, ']')
	}
	return i
}

// open scans the '{' or '[' at s[i] of a container at depth; more reports
// whether a member or element follows, else the closing byte was scanned
// too.
func open(s string, i, depth int, closing byte) (j int, more bool) {
	if depth > maxDepth {
		return -1, false
	}
	i = skipWS(s, i+1)
	if i < len(s) && s[i] == closing {
		return i + 1, false
	}
	return i, true
}

// next scans the ',' after a member or element, and reports more, or the
// container's closing byte.
func next(s string, i int, closing byte) (j int, more bool) {
	i = skipWS(s, i)
	if i < len(s) {
		switch s[i] {
		case ',':
			return skipWS(s, i+1), true
		case closing:
			return i + 1, false
		}
	}
	return -1, false
}

// scanKey scans an object member's key at s[i], and the ':' and whitespace
// after it; key is unquoted.
func scanKey(s string, i int) (key string, j int) {
	if i >= len(s) || s[i] != '"' {
		return "", -1
	}
	j, esc := scanString(s, i)
	if j < 0 {
		return "", -1
	}
	key = s[i+1 : j-1]
	if esc {
		key = unquote(key)
	}
	j = skipWS(s, j)
	if j >= len(s) || s[j] != ':' {
		return "", -1
	}
	return key, skipWS(s, j+1)
}

// text is the string value v, unquoted.
func (v value) text(s string) string {
	if v.esc {
		return unquote(s[v.start+1 : v.end-1])
	}
	return s[v.start+1 : v.end-1]
}

// raw is v's JSON text.
func (v value) raw(s string) string { return s[v.start:v.end] }

// unquote decodes the body of a scanned (so well-formed) JSON string as
// encoding/json does: invalid UTF-8 and unpaired surrogates become U+FFFD.
func unquote(s string) string {
	b := make([]byte, 0, len(s)+2*utf8.UTFMax)
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\\':
			switch c := s[i+1]; c {
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				r := hex4(s[i+2:])
				i += 6
				if utf16.IsSurrogate(r) {
					r1 := rune(-1)
					if i+6 <= len(s) && s[i] == '\\' && s[i+1] == 'u' {
						r1 = hex4(s[i+2:])
					}
					if dec := utf16.DecodeRune(r, r1); dec != utf8.RuneError {
						i += 6
						b = utf8.AppendRune(b, dec)
						continue
					}
					r = utf8.RuneError
				}
				b = utf8.AppendRune(b, r)
				continue
			default: // '"', '\\', '/'
				b = append(b, c)
			}
			i += 2
		case c < utf8.RuneSelf:
			b = append(b, c)
			i++
		default:
			r, size := utf8.DecodeRuneInString(s[i:])
			i += size
			b = utf8.AppendRune(b, r)
		}
	}
	return string(b)
}

// hex4 decodes the 4 hex digits at the start of s (checked by scanString).
func hex4(s string) rune {
	var r rune
	for _, c := range []byte(s[:4]) {
		switch {
		case c <= '9':
			c -= '0'
		case c <= 'F':
			c -= 'A' - 10
		default:
			c -= 'a' - 10
		}
		r = r<<4 | rune(c)
	}
	return r
}

// parseTS parses an RFC 3339 time with the result and error of
// time.Parse(time.RFC3339Nano, s), quicker for the usual layouts.
func parseTS(s string) (time.Time, error) {
	if t, ok := parseTSFast(s, time.Local); ok {
		return t, nil
	}
	return time.Parse(time.RFC3339Nano, s)
}

// parseTSFast parses 2006-01-02T15:04:05[.999999999](Z|-07:00) into the
// time time.ParseInLocation(time.RFC3339Nano, s, local) returns (with
// local = time.Local, as time.Parse), down to its Location: UTC for Z, local
// if it has the offset at that time, else a fixed zone. ok is false for
// anything else.
func parseTSFast(s string, local *time.Location) (t time.Time, ok bool) {
	if len(s) < len("2006-01-02T15:04:05Z") ||
		s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return t, false
	}
	hi, ok1 := digits2(s[0:])
	lo, ok2 := digits2(s[2:])
	month, ok3 := digits2(s[5:])
	day, ok4 := digits2(s[8:])
	hour, ok5 := digits2(s[11:])
	minute, ok6 := digits2(s[14:])
	sec, ok7 := digits2(s[17:])
	year := hi*100 + lo
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7) ||
		month < 1 || month > 12 || day < 1 || day > daysIn(month, year) ||
		hour > 23 || minute > 59 || sec > 59 {
		return t, false
	}
	rest := s[19:]
	nsec := 0
	if len(rest) >= 2 && rest[0] == '.' && isDigit(rest[1]) {
		n := 1
		for ; n < len(rest) && isDigit(rest[n]); n++ {
			if n <= 9 { // like time.Parse: digits after the ninth are dropped
				nsec = nsec*10 + int(rest[n]-'0')
			}
		}
		for k := n; k <= 9; k++ {
			nsec *= 10
		}
		rest = rest[n:]
	}
	unix := (daysSinceEpoch(year, month, day)*24+int64(hour))*3600 + int64(minute)*60 + int64(sec)
	if rest == "Z" {
		return time.Unix(unix, int64(nsec)).UTC(), true
	}
	if len(rest) != len("-07:00") || (rest[0] != '+' && rest[0] != '-') || rest[3] != ':' {
		return t, false
	}
	zh, ok1 := digits2(rest[1:])
	zm, ok2 := digits2(rest[4:])
	if !ok1 || !ok2 || zh > 23 || zm > 59 {
		return t, false
	}
	offset := (zh*60 + zm) * 60
	if rest[0] == '-' {
		offset = -offset
	}
	t = time.Unix(unix-int64(offset), int64(nsec)).In(local)
	if _, off := t.Zone(); off != offset {
		t = t.In(time.FixedZone("", offset))
	}
	return t, true
}

// digits2 decodes the two decimal digits at the start of s.
func digits2(s string) (int, bool) {
	a, b := s[0]-'0', s[1]-'0'
	return int(a)*10 + int(b), a <= 9 && b <= 9
}

func isLeap(year int) bool { return year%4 == 0 && (year%100 != 0 || year%400 == 0) }

// daysIn is the number of days in month (1-12) of year.
func daysIn(month, year int) int {
	switch month {
	case 2:
		if isLeap(year) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysSinceEpoch is the number of days from 1970-01-01 to the date, in the
// proleptic Gregorian calendar (year >= 0).
func daysSinceEpoch(year, month, day int) int64 {
	y := int64(year)
	if month <= 2 {
		y--
	}
	era := y / 400
	if y < 0 {
		era = (y - 399) / 400
	}
	yoe := y - era*400                                    // [0, 399]
	doy := (153*int64((month+9)%12)+2)/5 + int64(day) - 1 // [0, 365], from March 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy                // [0, 146096]
	return era*146097 + doe - 719468
}
