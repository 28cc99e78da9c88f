# Kelp -- top-level build. Non-recursive; see docs/building.md.
#
#   make            build PostgreSQL (cached), the kelp executable and the extension
#   make test       everything, then unit + integration tests ("N passed, N failed")
#   make unit       C unit tests only          make SAN=1 unit   the same under ASan+UBSan
#   make valgrind   unit tests under valgrind (leaks fail the test)
#   make format / format-check   clang-format (pinned config in .clang-format)
#   make clean      remove build/out and build/san (keeps the PostgreSQL build)

SAN ?= 0
ifeq ($(SAN),1)
OUT := build/san
OPT := -O1
SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all
else
OUT := build/out
OPT := -O2
SANFLAGS :=
endif

PG_PREFIX := $(CURDIR)/build/pg
PG_CONFIG := $(PG_PREFIX)/bin/pg_config
PYTHON := /usr/bin/python3

# Libraries from Debian (scripts/install-deps.sh), found with pkg-config.
PKGS := libpq libevent libevent_pthreads jansson libzstd
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

CFLAGS := -std=gnu11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
          -Wvla -Wformat=2 -Wno-format-nonliteral $(OPT) -g -fno-omit-frame-pointer \
          -D_GNU_SOURCE -Isrc -Itests/unit $(PKG_CFLAGS) $(SANFLAGS) -MMD -MP
LDFLAGS := $(SANFLAGS)
LDLIBS = $(PKG_LIBS) $(PG_LIBS) -lpthread

ROLE_DIRS := common cli pageserver safekeeper control proxy compute

# PostgreSQL's own code, compiled from the fetched source (build/pg-src) in
# frontend mode, as pg_waldump does: the WAL reader. Our files named *_pg.c
# include PostgreSQL's headers (and only they do); they need the configured
# source tree, so they wait for `pg`.
PG_SRC := build/pg-src
PG_INCLUDES := -I$(PG_SRC)/src/include -DFRONTEND
PGSRC_FILES := src/backend/access/transam/xlogreader.c \
               src/backend/access/rmgrdesc/xactdesc.c src/backend/access/rmgrdesc/standbydesc.c
PGSRC_OBJS := $(PGSRC_FILES:%.c=$(OUT)/pgsrc/%.o)
PG_LIBS := $(PG_PREFIX)/lib/libpgcommon.a $(PG_PREFIX)/lib/libpgport.a -llz4 -lzstd
LIB_SRCS := $(filter-out %_test.c,$(foreach d,$(ROLE_DIRS),$(wildcard src/$(d)/*.c)))
TEST_SRCS := $(foreach d,$(ROLE_DIRS),$(wildcard src/$(d)/*_test.c))
LIB_OBJS := $(LIB_SRCS:%.c=$(OUT)/%.o) $(PGSRC_OBJS)
TEST_OBJS := $(TEST_SRCS:%.c=$(OUT)/%.o) $(OUT)/tests/unit/runner.o
KELP_LIB := $(OUT)/libkelp.a
KELP_BIN := $(OUT)/bin/kelp
UNIT_BIN := $(OUT)/bin/kelp-unit

.PHONY: all kelp pg ext unit valgrind test integration format format-check clean lint-size
all: pg kelp ext

kelp: $(KELP_BIN) $(UNIT_BIN)

# V=1 shows full command lines.
Q := $(if $(V),,@)

$(OUT)/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

# Our files that include PostgreSQL headers: PostgreSQL's headers are not
# -Wshadow/-Wextra clean, so those two families of warnings are relaxed here.
$(OUT)/%_pg.o: %_pg.c | pg
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC[pg]  $<")
	$(Q)$(CC) $(CFLAGS) $(PG_INCLUDES) -Wno-shadow -Wno-unused-parameter -Wno-sign-compare \
	    -Wno-missing-field-initializers -c $< -o $@

# PostgreSQL source files, with PostgreSQL's own warning settings. The source
# appears only once `pg` has run, so it is named in the recipe, and the build
# stamp (rewritten by every rebuild) stands for it as prerequisite.
PG_STAMP := $(PG_PREFIX)/.kelp-build-stamp
$(OUT)/pgsrc/%.o: $(PG_STAMP)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC[pgsrc] $(notdir $*).c")
	$(Q)$(CC) -std=gnu11 -O2 -g -fno-omit-frame-pointer -fno-strict-aliasing -fwrapv \
	    -fexcess-precision=standard -D_GNU_SOURCE $(PG_INCLUDES) $(SANFLAGS) \
	    -c $(PG_SRC)/$*.c -o $@

$(PG_STAMP): | pg
	@true

$(KELP_LIB): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	@rm -f $@
	@$(if $(Q),echo "  AR      $@")
	$(Q)$(AR) rcs $@ $^

$(KELP_BIN): $(OUT)/src/main.o $(KELP_LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Tests register themselves from constructors, so every test object is linked
# explicitly (an archive would drop them).
$(UNIT_BIN): $(TEST_OBJS) $(KELP_LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# PostgreSQL 15.18 from Debian's source package plus postgres/patches/ (cached).
pg:
	scripts/build-postgres.sh

# The kelp extension, built with PGXS against build/pg and installed into it.
ext: pg
	$(MAKE) -C src/pgext PG_CONFIG=$(PG_CONFIG) install

unit: $(UNIT_BIN)
	$(UNIT_BIN)

valgrind: $(UNIT_BIN)
	KELP_UNIT_TIMEOUT=300 valgrind -q --leak-check=full --show-leak-kinds=definite,indirect \
	    --errors-for-leak-kinds=definite,indirect --error-exitcode=97 $(UNIT_BIN)

integration: all
	$(PYTHON) -m pytest -q tests

# The one test command: see scripts/run-tests.sh.
test:
	scripts/run-tests.sh

FORMAT_FILES = $(shell find src tests bench -name '*.[ch]' -not -path 'src/pgext/*' 2>/dev/null)
format:
	clang-format -i $(FORMAT_FILES)
format-check:
	@clang-format --dry-run --Werror $(FORMAT_FILES)

lint-size:
	scripts/check-sizes.sh

clean:
	rm -rf build/out build/san
	-$(MAKE) -C src/pgext clean PG_CONFIG=$(PG_CONFIG) >/dev/null 2>&1

-include $(filter-out $(OUT)/pgsrc/%,$(LIB_OBJS:.o=.d)) $(TEST_OBJS:.o=.d) $(OUT)/src/main.d
