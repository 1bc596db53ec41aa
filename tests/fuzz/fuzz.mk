# tests/fuzz/fuzz.mk: the libFuzzer targets: ferry-control's request path
# (tests/fuzz/fuzz_request.c).  Included by the top-level Makefile.
#
#   make fuzz [FUZZ_SECONDS=120]   fuzz for a bounded time on a copy of the
#                                  corpus (build/fuzz/TARGET/corpus), one line per target
#   make fuzz-regress              every committed corpus file once
#                                  (tests/fuzz/run.sh, a test suite)
#
# libFuzzer needs clang: the control objects are built again with clang and
# the sanitizers into $(BUILD)/fuzz/obj/, apart from the gcc build.

FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 120
FUZZ_FLAGS   := -fsanitize=fuzzer-no-link,address,undefined \
                -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_DIR     := $(BUILD)/fuzz
FUZZ_SRC     := $(filter-out control/main.c,$(wildcard control/*.c)) \
                lib/peer_id.c lib/errmsg.c \
                tests/fuzz/fuzz_request.c
FUZZ_OBJ     := $(FUZZ_SRC:%.c=$(FUZZ_DIR)/obj/%.o)
FUZZ_BIN     := $(FUZZ_DIR)/fuzz_request
FUZZ_LIBS    := -lmicrohttpd -lgnutls -ljansson -lsqlite3 -lssl -lcrypto -pthread

.PHONY: fuzz fuzz-bin fuzz-regress
fuzz-bin: $(FUZZ_BIN)

# clang and its sanitizer runtimes come with the 'control' group.
.PHONY: fuzz-deps
fuzz-deps:
	@scripts/deps.sh control

$(FUZZ_DIR)/obj/%.o: %.c | deps-stamp fuzz-deps
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CFLAGS_STD) $(FUZZ_FLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

$(FUZZ_BIN): $(FUZZ_OBJ)
	$(FUZZ_CC) $(CFLAGS_STD) -fsanitize=fuzzer,address,undefined \
		$(LDFLAGS) $^ -o $@ $(FUZZ_LIBS) $(LDLIBS)

# The agent <-> replicator frame decoder and codecs (tests/fuzz/fuzz_wire.c,
# lib/wire.c); seed corpus tests/fuzz/corpus/wire/ from
# tests/fuzz/make_wire_corpus.c.
FUZZ_WIRE_SRC  := lib/wire.c tests/fuzz/fuzz_wire.c
FUZZ_WIRE_OBJ  := $(FUZZ_WIRE_SRC:%.c=$(FUZZ_DIR)/obj/%.o)
FUZZ_WIRE_BIN  := $(FUZZ_DIR)/fuzz_wire
FUZZ_WIRE_LIBS := -lzstd -llz4 -lxxhash

fuzz-bin: $(FUZZ_WIRE_BIN)

$(FUZZ_WIRE_BIN): $(FUZZ_WIRE_OBJ)
	$(FUZZ_CC) $(CFLAGS_STD) -fsanitize=fuzzer,address,undefined \
		$(LDFLAGS) $^ -o $@ $(FUZZ_WIRE_LIBS) $(LDLIBS)

fuzz: $(FUZZ_BIN) $(FUZZ_WIRE_BIN)
	@tests/fuzz/run.sh --seconds $(FUZZ_SECONDS)

fuzz-regress: $(FUZZ_BIN) $(FUZZ_WIRE_BIN)
	@tests/fuzz/run.sh
