package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// listFlags take a comma-separated value on the command line; a config file may give
// them as a TOML array of strings instead.
var listFlags = map[string]bool{"join": true, "health-check-cidrs": true}

// applyConfigFile fills every flag that neither the command line nor a ROSTER_ variable
// gave (given) from the TOML file at path, and records what it set in given. Its keys
// are the flag names, flat: a key that is no flag of `roster server` is an error naming
// it, so that a typo never silently leaves a default in force.
func applyConfigFile(fs *flag.FlagSet, path string, given map[string]bool) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("--config: %w", err)
	}
	var values map[string]any
	if _, err := toml.Decode(string(data), &values); err != nil {
		var perr toml.ParseError
		if errors.As(err, &perr) {
			return fmt.Errorf("--config %s: line %d: %s", path, perr.Position.Line, perr.Message)
		}
		return fmt.Errorf("--config %s: %v", path, err)
	}
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	// Sorted, so that a file with several mistakes always reports the same one first.
	sort.Strings(keys)
	for _, key := range keys {
		f := fs.Lookup(key)
		if f == nil || key == "config" {
			return fmt.Errorf("--config %s: %s", path, unknownKey(fs, key))
		}
		text, err := configValue(key, values[key])
		if err != nil {
			return fmt.Errorf("--config %s: key %q: %v", path, key, err)
		}
		if given[key] {
			continue
		}
		if err := f.Value.Set(text); err != nil {
			return fmt.Errorf("--config %s: invalid value %q for key %q (--%s): %v", path, text, key, key, err)
		}
		given[key] = true
	}
	return nil
}

// unknownKey explains a key that is no flag, with the flag it most likely meant.
func unknownKey(fs *flag.FlagSet, key string) string {
	if key == "config" {
		return `unknown key "config": a config file cannot name another one`
	}
	if kebab := strings.ReplaceAll(key, "_", "-"); fs.Lookup(kebab) != nil {
		return fmt.Sprintf("unknown key %q: keys are the flag names, did you mean %q?", key, kebab)
	}
	return fmt.Sprintf("unknown key %q: keys are the flag names of roster server (see roster server -h)", key)
}

// configValue turns one TOML value into the text its flag's Set takes.
func configValue(key string, v any) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case bool:
		return strconv.FormatBool(v), nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), nil
	case []any:
		if !listFlags[key] {
			return "", errors.New("an array, but this flag takes one value")
		}
		parts := make([]string, 0, len(v))
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return "", fmt.Errorf("array element %v is not a string", e)
			}
			parts = append(parts, s)
		}
		return strings.Join(parts, ","), nil
	case map[string]any:
		return "", errors.New("a table, but keys are flat flag names (no [sections])")
	default:
		return "", fmt.Errorf("a %T, want a string, number or boolean", v)
	}
}
