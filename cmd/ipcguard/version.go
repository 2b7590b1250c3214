package main

import "runtime/debug"

// version is set at link time (make build: -X main.version=$(git describe)).
// When it is not, as with go install, appVersion takes the module version
// from the build information.
var version string

// appVersion is what --version prints: the link-time version; else the
// module version go install recorded (v1.2.3, or a pseudo-version); else
// the VCS revision go build recorded ("devel-0123456789ab", "-dirty" when
// the tree had changes); else "dev".
func appVersion() string {
	if version != "" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	return versionOf(bi)
}

func versionOf(bi *debug.BuildInfo) string {
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if rev == "" {
		return "dev"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	return "devel-" + rev + dirty
}
