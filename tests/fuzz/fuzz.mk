# tests/fuzz/fuzz.mk: the libFuzzer target of ferry-control's request path
# (tests/fuzz/fuzz_request.c).  Included by the top-level Makefile.
#
#   make fuzz [FUZZ_SECONDS=120]   fuzz for a bounded time on a copy of the
#                                  corpus (build/fuzz/corpus), one-line result
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
                tests/fuzz/fuzz_request.c
FUZZ_OBJ     := $(FUZZ_SRC:%.c=$(FUZZ_DIR)/obj/%.o)
FUZZ_BIN     := $(FUZZ_DIR)/fuzz_request
FUZZ_LIBS    := -lmicrohttpd -ljansson -lsqlite3 -lssl -lcrypto -pthread

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

fuzz: $(FUZZ_BIN)
	@tests/fuzz/run.sh --seconds $(FUZZ_SECONDS)

fuzz-regress: $(FUZZ_BIN)
	@tests/fuzz/run.sh
