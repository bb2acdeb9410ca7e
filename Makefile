# Build and install transactional-livepatch.
#
#   make                      build the release binary
#   make install DESTDIR=/x   install everything below /x (binary, dracut module,
#                             systemd units, D-Bus and polkit files, vendor config,
#                             man pages, bash and zsh completions, Cockpit page)
#   make man                  generate the man pages into target/man
#   make completions          generate the shell completions into target/completions
#   make dist                 source tarball with vendored crates for offline builds
#                             (target/dist/transactional-livepatch-VERSION.tar.zst,
#                             what transactional-livepatch.spec builds from)
#
# BIN may name another build of the binary (the tests install a debug build
# with failpoints this way): make install DESTDIR=/x BIN=target/debug/transactional-livepatch
# The man pages and completions are generated at install time by GEN, the
# tlp-gen-docs binary of the same build (from the clap definitions).

PREFIX     ?= /usr
SBINDIR    ?= $(PREFIX)/sbin
LIBDIR     ?= $(PREFIX)/lib
DATADIR    ?= $(PREFIX)/share
UNITDIR    ?= $(LIBDIR)/systemd/system
DRACUTDIR  ?= $(LIBDIR)/dracut/modules.d
SYSCONFDIR ?= /etc
MANDIR     ?= $(DATADIR)/man
BASHCOMPDIR ?= $(DATADIR)/bash-completion/completions
ZSHCOMPDIR ?= $(DATADIR)/zsh/site-functions
TMPFILESDIR ?= $(LIBDIR)/tmpfiles.d
PRESETDIR  ?= $(LIBDIR)/systemd/system-preset
COCKPITDIR ?= $(DATADIR)/cockpit/transactional-livepatch
BIN        ?= target/release/transactional-livepatch
GEN        ?= $(dir $(BIN))tlp-gen-docs
CARGO      ?= cargo

NAME          := transactional-livepatch
VERSION       := $(shell sed -n 's/^version = "\(.*\)"$$/\1/p' Cargo.toml | head -n 1)
DRACUT_MODULE := 90transactional-livepatch
# The Cockpit page: whatever cockpit/ holds, minus sources and tests.
COCKPIT_FILES  = $(filter-out %.md,$(wildcard cockpit/*.json cockpit/*.html cockpit/*.js cockpit/*.css))

.PHONY: all install man completions dist

all:
	$(CARGO) build --release --locked

install:
	test -x "$(BIN)" || { echo "$(BIN) is missing: run 'make' first" >&2; exit 1; }
	install -D -m 0755 "$(BIN)" "$(DESTDIR)$(SBINDIR)/transactional-livepatch"
	install -D -m 0644 config/config.toml "$(DESTDIR)$(LIBDIR)/transactional-livepatch/config.toml"
	install -d -m 0755 "$(DESTDIR)$(DRACUTDIR)/$(DRACUT_MODULE)"
	install -m 0755 dracut-module/$(DRACUT_MODULE)/*.sh "$(DESTDIR)$(DRACUTDIR)/$(DRACUT_MODULE)/"
	install -d -m 0755 "$(DESTDIR)$(UNITDIR)"
	install -m 0644 systemd/*.service "$(DESTDIR)$(UNITDIR)/"
	for f in systemd/*.timer; do [ ! -e "$$f" ] || install -m 0644 "$$f" "$(DESTDIR)$(UNITDIR)/"; done
	if [ -d dbus ]; then \
	  for f in dbus/*.conf; do [ -e "$$f" ] && install -D -m 0644 "$$f" "$(DESTDIR)$(DATADIR)/dbus-1/system.d/$$(basename $$f)"; done; \
	  for f in dbus/*.service; do [ -e "$$f" ] && install -D -m 0644 "$$f" "$(DESTDIR)$(DATADIR)/dbus-1/system-services/$$(basename $$f)"; done; \
	  for f in dbus/*.policy; do [ -e "$$f" ] && install -D -m 0644 "$$f" "$(DESTDIR)$(DATADIR)/polkit-1/actions/$$(basename $$f)"; done; \
	  for f in dbus/*.xml; do [ -e "$$f" ] && install -D -m 0644 "$$f" "$(DESTDIR)$(DATADIR)/dbus-1/interfaces/$$(basename $$f)"; done; \
	fi; true
	install -D -m 0755 packaging/dracut-module-posttrans.sh "$(DESTDIR)$(LIBDIR)/transactional-livepatch/dracut-module-posttrans"
	install -D -m 0644 packaging/tmpfiles.conf "$(DESTDIR)$(TMPFILESDIR)/transactional-livepatch.conf"
	install -D -m 0644 packaging/90-transactional-livepatch.preset "$(DESTDIR)$(PRESETDIR)/90-transactional-livepatch.preset"
	install -d -m 0755 "$(DESTDIR)$(SYSCONFDIR)/transactional-livepatch/config.d" "$(DESTDIR)$(SYSCONFDIR)/transactional-livepatch/stack"
	# The administrator's file: never overwrite an existing one.
	test -e "$(DESTDIR)$(SYSCONFDIR)/transactional-livepatch/config.toml" || \
	  install -m 0644 packaging/etc-config.toml "$(DESTDIR)$(SYSCONFDIR)/transactional-livepatch/config.toml"
	test -x "$(GEN)" || { echo "$(GEN) is missing: build it with the binary ('make')" >&2; exit 1; }
	install -d -m 0755 "$(DESTDIR)$(MANDIR)/man8" "$(DESTDIR)$(MANDIR)/man5" "$(DESTDIR)$(BASHCOMPDIR)" "$(DESTDIR)$(ZSHCOMPDIR)"
	"$(GEN)" man "$(DESTDIR)$(MANDIR)/man8" >/dev/null
	chmod 0644 "$(DESTDIR)$(MANDIR)"/man8/transactional-livepatch*.8
	install -m 0644 docs/man/*.5 "$(DESTDIR)$(MANDIR)/man5/"
	for x in dbus/*.xml; do [ ! -e "$$x" ] || { "$(GEN)" dbus-man "$$x" "$(DESTDIR)$(MANDIR)/man5" >/dev/null && \
	  chmod 0644 "$(DESTDIR)$(MANDIR)/man5/$$(basename "$$x" .xml).5"; } || exit 1; done
	set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	  "$(GEN)" completions "$$tmp" >/dev/null; \
	  install -m 0644 "$$tmp/transactional-livepatch" "$(DESTDIR)$(BASHCOMPDIR)/transactional-livepatch"; \
	  install -m 0644 "$$tmp/_transactional-livepatch" "$(DESTDIR)$(ZSHCOMPDIR)/_transactional-livepatch"
	if [ -n "$(COCKPIT_FILES)" ]; then \
	  install -d -m 0755 "$(DESTDIR)$(COCKPITDIR)" && install -m 0644 $(COCKPIT_FILES) "$(DESTDIR)$(COCKPITDIR)/"; \
	fi

man:
	test -x "$(GEN)" || { echo "$(GEN) is missing: run 'make' first" >&2; exit 1; }
	mkdir -p target/man
	"$(GEN)" man target/man
	for x in dbus/*.xml; do [ ! -e "$$x" ] || "$(GEN)" dbus-man "$$x" target/man || exit 1; done
	cp docs/man/*.5 target/man/

completions:
	test -x "$(GEN)" || { echo "$(GEN) is missing: run 'make' first" >&2; exit 1; }
	"$(GEN)" completions target/completions

# The tarball holds the files of the working tree that git tracks or would
# track (modifications and new files included, ignored ones not), the crates
# of Cargo.lock under vendor/ and a .cargo/config.toml that points cargo at
# them: `cargo build --offline --locked` then needs no network. `cargo vendor`
# itself needs the network or a warm cargo cache.
dist:
	test -n "$(VERSION)" || { echo "no version in Cargo.toml" >&2; exit 1; }
	set -e; d=target/dist/$(NAME)-$(VERSION); rm -rf "$$d" "$$d.tar.zst"; mkdir -p "$$d/.cargo"; \
	  git ls-files -z -c -o --exclude-standard | xargs -0 sh -c 'for f; do [ -f "$$f" ] && printf "%s\0" "$$f"; done' sh | \
	    tar -c --null -T - | tar -x -C "$$d"; \
	  $(CARGO) vendor --quiet --locked --versioned-dirs --manifest-path "$$d/Cargo.toml" "$$d/vendor" > /dev/null; \
	  printf '%s\n' '[source.crates-io]' 'replace-with = "vendored-sources"' '' \
	    '[source.vendored-sources]' 'directory = "vendor"' > "$$d/.cargo/config.toml"; \
	  tar -C target/dist --sort=name --owner=0 --group=0 --numeric-owner --mtime=@$$(git log -1 --format=%ct) \
	    -c "$(NAME)-$(VERSION)" | zstd -q -T0 -10 > "$$d.tar.zst"; \
	  rm -rf "$$d"; echo "$$d.tar.zst"
