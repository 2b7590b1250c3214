# ipcguard — build, test, lint.
GO       ?= go
# Everything built goes under OUT (untracked).
OUT      ?= bin
BIN      := $(OUT)/ipcguard
GEN      := $(OUT)/ipcguard-gen
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
# On linux/amd64 the process starts in internal/sigstart's entry point, which
# records the signal mask and dispositions before the Go runtime changes
# them, so that the command gets them exactly (elsewhere: a documented
# fallback).
ifeq ($(shell $(GO) env GOARCH),amd64)
LDFLAGS  += -E=github.com/ipcguard/ipcguard/internal/sigstart.entry
endif
# urfave/cli without its man-page and markdown generators (and their
# package initialisation, about 0.3 ms at every start).
TAGS     := urfave_cli_no_docs
PKGS     := ./...
# The man page's date: the last commit's (reproducible), or $SOURCE_DATE_EPOCH.
DATE     ?= $(or $(SOURCE_DATE_EPOCH),$(shell git log -1 --format=%cs 2>/dev/null))

# make install: PREFIX and DESTDIR as the GNU conventions have them.
PREFIX   ?= /usr/local
DESTDIR  ?=
BINDIR   := $(PREFIX)/bin
DATADIR  := $(PREFIX)/share
MAN1DIR  := $(DATADIR)/man/man1
EXAMPLEDIR := $(DATADIR)/doc/ipcguard/examples
STATICCHECK ?= $(shell command -v staticcheck 2>/dev/null || echo $(shell $(GO) env GOPATH)/bin/staticcheck)

.PHONY: all build gen man completions install test test-short bench bench-go lint fmt tidy-check clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -tags $(TAGS) -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/ipcguard

# The generator of the man page and the completions: the package
# cmd/ipcguard built with the tag ipcguard_gen, so it reads the very command
# line definition ipcguard runs with. Nothing of it is in $(BIN).
gen:
	CGO_ENABLED=0 $(GO) build -trimpath -tags ipcguard_gen -ldflags '$(LDFLAGS)' -o $(GEN) ./cmd/ipcguard

man: gen
	$(GEN) -date '$(DATE)' -man $(OUT)/man/ipcguard.1

completions: gen
	$(GEN) -bash $(OUT)/completions/ipcguard.bash -zsh $(OUT)/completions/_ipcguard \
	  -fish $(OUT)/completions/ipcguard.fish

# The example units name $(BINDIR)/ipcguard.
install: build man completions
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MAN1DIR) \
	  $(DESTDIR)$(DATADIR)/bash-completion/completions $(DESTDIR)$(DATADIR)/zsh/site-functions \
	  $(DESTDIR)$(DATADIR)/fish/vendor_completions.d $(DESTDIR)$(EXAMPLEDIR)/systemd
	install -m 0755 $(BIN) $(DESTDIR)$(BINDIR)/ipcguard
	install -m 0644 $(OUT)/man/ipcguard.1 $(DESTDIR)$(MAN1DIR)/ipcguard.1
	install -m 0644 $(OUT)/completions/ipcguard.bash $(DESTDIR)$(DATADIR)/bash-completion/completions/ipcguard
	install -m 0644 $(OUT)/completions/_ipcguard $(DESTDIR)$(DATADIR)/zsh/site-functions/_ipcguard
	install -m 0644 $(OUT)/completions/ipcguard.fish $(DESTDIR)$(DATADIR)/fish/vendor_completions.d/ipcguard.fish
	for f in contrib/systemd/*; do \
	  sed 's|/usr/local/bin/ipcguard|$(BINDIR)/ipcguard|g' $$f > $(DESTDIR)$(EXAMPLEDIR)/systemd/$${f##*/} && \
	  chmod 0644 $(DESTDIR)$(EXAMPLEDIR)/systemd/$${f##*/} || exit 1; \
	done

# Every test, real processes and real kernel objects, with the race detector.
# Tests that create IPC objects run in private IPC namespaces.
test: build
	IPCGUARD_BIN=$(CURDIR)/$(BIN) $(GO) test -race -count=1 -timeout 15m $(PKGS)

test-short:
	$(GO) test -short -count=1 $(PKGS)

# The budget table (start-up, scale, removal, memory; ratios against tini,
# raw /proc reads and ipcrm measured in the same run).
bench: build
	$(GO) run ./cmd/ipcguard-bench -bin $(BIN)

# Micro-benchmarks of the packages (parsers, snapshot, diff, trackers, journal).
bench-go:
	$(GO) test -run '^$$' -bench . -benchmem -count=1 -timeout 20m $(PKGS)

lint:
	$(GO) vet $(PKGS)
	$(GO) vet -tags ipcguard_gen ./cmd/ipcguard
	$(STATICCHECK) $(PKGS)
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	@# Built for another system, the tree stops at one readable constraint
	@# ("builds for GOOS=linux only"), never deep inside a package.
	@out=$$(GOOS=darwin $(GO) build ./... 2>&1); \
	  if echo "$$out" | grep -v -e '^#' -e 'builds for GOOS=linux only' -e 'build constraints exclude all Go files' | grep -q .; then \
	    echo "GOOS=darwin go build ./... fails inside a package:"; echo "$$out"; exit 1; fi

fmt:
	gofmt -w $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')

tidy-check:
	$(GO) mod tidy
	git diff --exit-code go.mod go.sum

clean:
	rm -rf $(OUT)
