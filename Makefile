# castgate — one Makefile for the binary, the tests, the fuzzers and the benchmarks.
#
#   make            build build/castgate
#   make run        install what is missing, start a local PostgreSQL, serve (foreground)
#   make test       install what is missing, then every test; prints "N passed, M failed"
#   make test SAN=1 the same with ASan + UBSan
#   make fuzz       every libFuzzer target for FUZZ_SECONDS each (clang)
#   make bench      the benchmark driver (bench/)
#
# Sources are found by folder: every .c under the module folders goes into
# libcastgate.a; cli/ holds main(). Unit tests are tests/unit/test_*.c (cmocka),
# fuzz targets tests/fuzz/fuzz_*.c (libFuzzer).

PKGS := libavformat libavcodec libavutil libevent libevent_pthreads libpq librtmp jansson libcrypto inih

CC ?= cc
ifeq ($(CC),cc)
CC := gcc
endif

SAN ?= 0
ifeq ($(SAN),1)
BUILD ?= build/san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
OPT := -O1
else
BUILD ?= build
SANFLAGS :=
OPT := -O2
endif

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

BASE_CFLAGS := -std=c17 -D_GNU_SOURCE -Wall -Wextra -Werror -g $(OPT) -I. -I$(BUILD)/gen $(PKG_CFLAGS) $(SANFLAGS)
ALL_CFLAGS := $(BASE_CFLAGS) $(CFLAGS)
ALL_LDFLAGS := $(SANFLAGS) $(LDFLAGS)
LIBS := $(PKG_LIBS) -lpthread -lm

MODULES := core ingest packager broadcast api storage
LIB_SRCS := $(sort $(foreach m,$(MODULES),$(wildcard $(m)/*.c)))
CLI_SRCS := $(sort $(wildcard cli/*.c))
GEN_SRCS := $(BUILD)/gen/migrations_gen.c $(BUILD)/gen/web_assets_gen.c
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o) $(GEN_SRCS:%.c=%.o)
CLI_OBJS := $(CLI_SRCS:%.c=$(BUILD)/obj/%.o)

UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
UNIT_HELPERS := $(filter-out $(UNIT_SRCS),$(wildcard tests/unit/*.c))

BENCH_SRCS := $(sort $(wildcard bench/*.c))
BENCH_BINS := $(BENCH_SRCS:bench/%.c=$(BUILD)/bench/%)

MIGRATIONS := $(sort $(wildcard storage/migrations/*.sql))
WEB_ASSETS := $(sort $(wildcard web/*.html web/*.js web/*.css)) api/openapi.yaml

.PHONY: all run test unit e2e fuzz fuzz-smoke bench clean deps check-deps
all: $(BUILD)/castgate

$(BUILD)/castgate: $(CLI_OBJS) $(BUILD)/libcastgate.a
	$(CC) $(ALL_LDFLAGS) -o $@ $(CLI_OBJS) $(BUILD)/libcastgate.a $(LIBS)

$(BUILD)/libcastgate.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/obj/%.o: %.c | $(BUILD)/gen/migrations_gen.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/gen/%.o: $(BUILD)/gen/%.c
	$(CC) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

# SQL migrations and web assets are compiled into the binary, so `castgate`
# runs from any directory.
$(BUILD)/gen/migrations_gen.c: $(MIGRATIONS) scripts/embed.sh
	@mkdir -p $(dir $@)
	sh scripts/embed.sh migrations $(MIGRATIONS) > $@.tmp && mv $@.tmp $@

$(BUILD)/gen/web_assets_gen.c: $(WEB_ASSETS) scripts/embed.sh
	@mkdir -p $(dir $@)
	sh scripts/embed.sh web_assets $(WEB_ASSETS) > $@.tmp && mv $@.tmp $@

$(BUILD)/tests/%: tests/unit/%.c $(UNIT_HELPERS) $(BUILD)/libcastgate.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(shell pkg-config --cflags cmocka) -o $@ $< $(UNIT_HELPERS) $(BUILD)/libcastgate.a $(ALL_LDFLAGS) $(LIBS) $(shell pkg-config --libs cmocka)

$(BUILD)/bench/%: bench/%.c $(BUILD)/libcastgate.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(BUILD)/libcastgate.a $(ALL_LDFLAGS) $(LIBS)

unit-bins: $(UNIT_BINS)
bench-bins: $(BENCH_BINS)

# Installs apt/npm packages that are missing (idempotent; quiet when all present).
deps:
	sh scripts/bootstrap.sh

run: deps
	$(MAKE) all
	sh scripts/run.sh

test: deps
	$(MAKE) all unit-bins bench-bins
	BUILD=$(BUILD) SAN=$(SAN) sh scripts/test.sh

# --- fuzzing (clang, libFuzzer) -------------------------------------------
FUZZ_SECONDS ?= 60
FUZZ_BUILD := build/fuzz
FUZZ_CFLAGS := -std=c17 -D_GNU_SOURCE -g -O1 -I. -I$(FUZZ_BUILD)/gen $(PKG_CFLAGS) -fsanitize=fuzzer-no-link,address,undefined
FUZZ_SRCS := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS := $(FUZZ_SRCS:tests/fuzz/%.c=$(FUZZ_BUILD)/%)
FUZZ_LIB_OBJS := $(LIB_SRCS:%.c=$(FUZZ_BUILD)/obj/%.o) $(FUZZ_BUILD)/gen/migrations_gen.o $(FUZZ_BUILD)/gen/web_assets_gen.o

$(FUZZ_BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -c -o $@ $<
$(FUZZ_BUILD)/gen/migrations_gen.c: $(MIGRATIONS) scripts/embed.sh
	@mkdir -p $(dir $@)
	sh scripts/embed.sh migrations $(MIGRATIONS) > $@
$(FUZZ_BUILD)/gen/web_assets_gen.c: $(WEB_ASSETS) scripts/embed.sh
	@mkdir -p $(dir $@)
	sh scripts/embed.sh web_assets $(WEB_ASSETS) > $@
$(FUZZ_BUILD)/gen/%.o: $(FUZZ_BUILD)/gen/%.c
	clang $(FUZZ_CFLAGS) -c -o $@ $<
$(FUZZ_BUILD)/libcastgate.a: $(FUZZ_LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^
$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_BUILD)/libcastgate.a
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_BUILD)/libcastgate.a $(LIBS)

fuzz-bins: $(FUZZ_BINS)
fuzz: deps fuzz-bins
	sh scripts/fuzz.sh $(FUZZ_SECONDS) $(FUZZ_BINS)
fuzz-smoke: fuzz-bins
	sh scripts/fuzz.sh 10 $(FUZZ_BINS)

bench: deps
	$(MAKE) all bench-bins
	BUILD=$(BUILD) sh bench/run.sh

clean:
	rm -rf build

-include $(shell find $(BUILD) build/fuzz -name '*.d' 2>/dev/null)
