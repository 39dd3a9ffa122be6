package rotate

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// unit is how often a name can change: the finest conversion in it.
type unit int

const (
	unitNone unit = iota // no conversion: one fixed path
	unitYear
	unitMonth
	unitDay
	unitHour
	unitMinute
	unitSecond
)

// pattern is a file name with strftime-like conversions.
type pattern struct {
	dir   string
	parts []part // the base name
	unit  unit
	match *regexp.Regexp // names the pattern produces, for retention
}

// part is literal text, or a conversion when verb != 0.
type part struct {
	text string
	verb byte
}

// conversions are the supported verbs: the unit each changes with and the
// regular expression of what it produces.
var conversions = map[byte]struct {
	unit unit
	re   string
}{
	'Y': {unitYear, `\d{4}`},
	'y': {unitYear, `\d{2}`},
	'm': {unitMonth, `\d{2}`},
	'd': {unitDay, `\d{2}`},
	'j': {unitDay, `\d{3}`},
	'H': {unitHour, `\d{2}`},
	'M': {unitMinute, `\d{2}`},
	'S': {unitSecond, `\d{2}`},
	's': {unitSecond, `\d+`},
}

func parsePattern(path string) (*pattern, error) {
	dir, base := filepath.Split(path)
	if strings.Contains(dir, "%") {
		return nil, fmt.Errorf("rotate: %s: time conversions are allowed in the file name only", path)
	}
	if base == "" {
		return nil, fmt.Errorf("rotate: %s: no file name", path)
	}
	p := &pattern{dir: filepath.Clean(dir + ".")}
	if dir == "" {
		p.dir = "."
	}
	var re, lit strings.Builder
	re.WriteString("^")
	flush := func() {
		if lit.Len() > 0 {
			p.parts = append(p.parts, part{text: lit.String()})
			re.WriteString(regexp.QuoteMeta(lit.String()))
			lit.Reset()
		}
	}
	for i := 0; i < len(base); i++ {
		c := base[i]
		if c != '%' {
			lit.WriteByte(c)
			continue
		}
		if i+1 == len(base) {
			return nil, fmt.Errorf("rotate: %s: %% at the end of the name (write %%%% for a literal %%)", path)
		}
		i++
		v := base[i]
		if v == '%' {
			lit.WriteByte('%')
			continue
		}
		conv, ok := conversions[v]
		if !ok {
			return nil, fmt.Errorf("rotate: %s: unknown conversion %%%c (want %%Y %%y %%m %%d %%j %%H %%M %%S %%s or %%%%)", path, v)
		}
		flush()
		p.parts = append(p.parts, part{verb: v})
		re.WriteString(conv.re)
		p.unit = max(p.unit, conv.unit)
	}
	flush()
	re.WriteString("$")
	p.match = regexp.MustCompile(re.String())
	return p, nil
}

// name is the path of the file for time t (already in the writer's zone).
func (p *pattern) name(t time.Time) string {
	var b []byte
	for _, pt := range p.parts {
		switch pt.verb {
		case 0:
			b = append(b, pt.text...)
		case 'Y':
			b = appendInt(b, t.Year(), 4)
		case 'y':
			b = appendInt(b, t.Year()%100, 2)
		case 'm':
			b = appendInt(b, int(t.Month()), 2)
		case 'd':
			b = appendInt(b, t.Day(), 2)
		case 'j':
			b = appendInt(b, t.YearDay(), 3)
		case 'H':
			b = appendInt(b, t.Hour(), 2)
		case 'M':
			b = appendInt(b, t.Minute(), 2)
		case 'S':
			b = appendInt(b, t.Second(), 2)
		case 's':
			b = strconv.AppendInt(b, t.Unix(), 10)
		}
	}
	return filepath.Join(p.dir, string(b))
}

func appendInt(b []byte, v, width int) []byte {
	s := strconv.Itoa(v)
	for range width - len(s) {
		b = append(b, '0')
	}
	return append(b, s...)
}

// next is the first instant after t at which the name may change.
func (p *pattern) next(t time.Time) time.Time {
	y, mo, d := t.Date()
	loc := t.Location()
	switch p.unit {
	case unitYear:
		return time.Date(y+1, 1, 1, 0, 0, 0, 0, loc)
	case unitMonth:
		return time.Date(y, mo+1, 1, 0, 0, 0, 0, loc)
	case unitDay:
		return time.Date(y, mo, d+1, 0, 0, 0, 0, loc)
	case unitHour:
		return time.Date(y, mo, d, t.Hour()+1, 0, 0, 0, loc)
	case unitMinute:
		return time.Date(y, mo, d, t.Hour(), t.Minute()+1, 0, 0, loc)
	case unitSecond:
		return t.Truncate(time.Second).Add(time.Second)
	}
	return time.Time{} // never
}
