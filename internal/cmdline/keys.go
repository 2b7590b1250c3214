package cmdline

import (
	"fmt"
	"strconv"
	"strings"
)

// OwnKeys parses the values of --own-keys: comma lists of keys as Key
// reads them, or "all". Errors: an empty key, a key Key refuses, or 0
// (IPC_PRIVATE).
func OwnKeys(vals []string) (keys map[int32]bool, all bool, err error) {
	keys = map[int32]bool{}
	for _, v := range vals {
		for _, f := range strings.Split(v, ",") {
			f = strings.TrimSpace(f)
			if strings.EqualFold(f, "all") {
				all = true
				continue
			}
			key, err := Key("--own-keys", f)
			if err != nil {
				return nil, false, err
			}
			if key == 0 {
				return nil, false, fmt.Errorf("--own-keys %q: 0 is IPC_PRIVATE, not a key", f)
			}
			keys[key] = true
		}
	}
	return keys, all, nil
}

// Key parses an IPC key of the option flag (named in its errors) as ipcs
// prints it (0x hex) or in decimal, negative decimal as /proc/sysvipc
// prints it included. Only "0x" (or "0X") selects another base: a leading
// zero is decimal ("017" is 17, not octal 15), and "0b", "0o" and digit
// separators ("1_000") are errors, as is a key outside 32 bits.
func Key(flag, s string) (int32, error) {
	if s == "" {
		return 0, fmt.Errorf("%s: empty key", flag)
	}
	var v int64
	var err error
	if h, ok := strings.CutPrefix(strings.ToLower(s), "0x"); ok {
		var u uint64
		u, err = strconv.ParseUint(h, 16, 64)
		v = int64(u)
		if u > 1<<32-1 {
			err = strconv.ErrRange
		}
	} else {
		v, err = strconv.ParseInt(s, 10, 64)
	}
	if err != nil || v < -1<<31 || v > 1<<32-1 {
		return 0, fmt.Errorf("%s %q: want a key like 0x0000162e or 5678 (decimal unless 0x)", flag, s)
	}
	return int32(uint32(v)), nil
}
