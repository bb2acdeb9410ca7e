# Build and install transactional-livepatch.
#
#   make                      build the release binary
#   make install DESTDIR=/x   install everything below /x (binary, dracut module,
#                             systemd units, D-Bus and polkit files, vendor config)
#
# BIN may name another build of the binary (the tests install a debug build
# with failpoints this way): make install DESTDIR=/x BIN=target/debug/transactional-livepatch

PREFIX     ?= /usr
SBINDIR    ?= $(PREFIX)/sbin
LIBDIR     ?= $(PREFIX)/lib
DATADIR    ?= $(PREFIX)/share
UNITDIR    ?= $(LIBDIR)/systemd/system
DRACUTDIR  ?= $(LIBDIR)/dracut/modules.d
BIN        ?= target/release/transactional-livepatch
CARGO      ?= cargo

DRACUT_MODULE := 90transactional-livepatch

.PHONY: all install

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
	if [ -d dbus ]; then \
	  for f in dbus/*.conf; do [ -e "$$f" ] && install -D -m 0644 "$$f" "$(DESTDIR)$(DATADIR)/dbus-1/system.d/$$(basename $$f)"; done; \
	  for f in dbus/*.service; do [ -e "$$f" ] && install -D -m 0644 "$$f" "$(DESTDIR)$(DATADIR)/dbus-1/system-services/$$(basename $$f)"; done; \
	  for f in dbus/*.policy; do [ -e "$$f" ] && install -D -m 0644 "$$f" "$(DESTDIR)$(DATADIR)/polkit-1/actions/$$(basename $$f)"; done; \
	  for f in dbus/*.xml; do [ -e "$$f" ] && install -D -m 0644 "$$f" "$(DESTDIR)$(DATADIR)/dbus-1/interfaces/$$(basename $$f)"; done; \
	fi; true
