package main

import (
	"runtime/debug"
	"testing"
)

func TestVersionOf(t *testing.T) {
	vcs := func(rev, modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified}}
	}
	for _, c := range []struct {
		main     string
		settings []debug.BuildSetting
		want     string
	}{
		// go install github.com/ipcguard/ipcguard/cmd/ipcguard@v1.2.3
		{"v1.2.3", nil, "v1.2.3"},
		// @latest on an untagged commit: a pseudo-version
		{"v0.0.0-20250102030405-0123456789ab", nil, "v0.0.0-20250102030405-0123456789ab"},
		// go build in a checkout
		{"(devel)", vcs("0123456789abcdef0123", "false"), "devel-0123456789ab"},
		{"(devel)", vcs("0123456789abcdef0123", "true"), "devel-0123456789ab-dirty"},
		{"", vcs("abc", "false"), "devel-abc"},
		// no version, no VCS (a build from a tarball)
		{"(devel)", nil, "dev"},
	} {
		bi := &debug.BuildInfo{Main: debug.Module{Path: "github.com/ipcguard/ipcguard", Version: c.main}, Settings: c.settings}
		if got := versionOf(bi); got != c.want {
			t.Errorf("versionOf(%q, %v) = %q, want %q", c.main, c.settings, got, c.want)
		}
	}
}

func TestAppVersionLinkTime(t *testing.T) {
	defer func(v string) { version = v }(version)
	version = "v9.9.9"
	if got := appVersion(); got != "v9.9.9" {
		t.Errorf("appVersion() = %q with version set at link time", got)
	}
}
