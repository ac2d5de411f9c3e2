package naming

import (
	"regexp"
	"testing"
)

// The byte sets answer exactly as the regexps of Nacos' rules did, for every byte and
// for the strings around the edges (empty, multi-byte UTF-8, newlines).
func TestCharsetsMatchTheirPatterns(t *testing.T) {
	cases := []struct {
		name string
		set  *charset
		re   *regexp.Regexp
	}{
		{"namespace", namespacePattern, regexp.MustCompile(`^[\w-]+$`)},
		{"group", groupPattern, regexp.MustCompile(`^[a-zA-Z0-9\-_:.]*$`)},
		{"cluster param", clusterParamPattern, regexp.MustCompile(`^[0-9a-zA-Z\-_]+$`)},
		{"instance cluster", instanceClusterPattern, regexp.MustCompile(`^[0-9a-zA-Z-]+$`)},
	}
	inputs := []string{"", "a", "public", "DEFAULT_GROUP", "a-b_c:d.e", "x\n", "\n", "é", "日本", "a b", "a\x00", "ab$", "-", "_", ":", "."}
	for b := 0; b < 256; b++ {
		inputs = append(inputs, string([]byte{byte(b)}), "a"+string([]byte{byte(b)})+"z")
	}
	for _, c := range cases {
		for _, in := range inputs {
			if got, want := c.set.MatchString(in), c.re.MatchString(in); got != want {
				t.Errorf("%s %q: charset %v, regexp %v", c.name, in, got, want)
			}
		}
	}
}
