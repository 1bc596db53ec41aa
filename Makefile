# ferry — top-level build.  `make` builds everything into build/.
# See README.md for the two commands a new machine needs.

SHELL      := /bin/bash
BUILD      ?= build
BIN        := $(BUILD)/bin
CC         ?= cc
CFLAGS_STD := -std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Werror \
              -Wshadow -Wformat=2 -Wno-unused-parameter -Iinclude -Ilib
SAN_FLAGS  := -fsanitize=address,undefined -fno-omit-frame-pointer \
              -fno-sanitize-recover=all

# Kernels of the test matrix (scripts/vm/kernel.sh knows how to get each).
KMOD_SUITES ?= bookworm trixie trixie-backports
# The module is built for the running kernel when its headers are installed,
# otherwise for the first kernel of the matrix.
KVER ?= $(shell uname -r)
KDIR ?= /lib/modules/$(KVER)/build

LIB_SRC   := $(wildcard lib/*.c)
LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
LIB_SOBJ  := $(LIB_SRC:%.c=$(BUILD)/san/%.o)

.PHONY: all deps userspace kmod test test-unit test-control test-replicator \
        test-agent test-packaging test-install test-fuzz test-host \
        test-kmod test-faults soak demo \
        bench bench-kmod bench-control bench-replicator bench-agent \
        bench-baseline clean
all: userspace kmod

deps:
	@scripts/deps.sh build

include agent/agent.mk
include control/control.mk
include replicator/replicator.mk
include tests/control/bench/bench.mk
include tests/tests.mk
include tests/fuzz/fuzz.mk
include tests/replicator/replicator_tests.mk
include tests/agent/agent_tests.mk
include packaging/packaging.mk

userspace: $(USERSPACE_BINS)

$(BUILD)/obj/%.o: %.c | deps-stamp
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_STD) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/san/%.o: %.c | deps-stamp
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_STD) $(SAN_FLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

# Install build dependencies once per checkout (idempotent, quiet when done).
.PHONY: deps-stamp
deps-stamp: $(BUILD)/.deps
$(BUILD)/.deps: scripts/deps.sh
	@mkdir -p $(BUILD)
	@scripts/deps.sh build
	@touch $@

kmod: | deps-stamp
	@if [ -d "$(KDIR)" ]; then \
		scripts/vm/build-kmod.sh --kdir "$(KDIR)" --out $(BUILD)/kmod/$(KVER); \
	else \
		echo "kmod: no headers for running kernel $(KVER) in $(KDIR);" \
		     "building for the $(firstword $(KMOD_SUITES)) test kernel"; \
		scripts/vm/build-kmod.sh --suite $(firstword $(KMOD_SUITES)) \
			--out $(BUILD)/kmod/$(firstword $(KMOD_SUITES)); \
	fi

test: all fuzz-bin
	@tests/run-all.sh

test-unit: userspace
	@tests/run-all.sh unit

test-control: userspace
	@tests/run-all.sh control

test-replicator: userspace
	@tests/run-all.sh replicator

test-agent: userspace
	@tests/run-all.sh agent

test-packaging:
	@tests/run-all.sh packaging

test-install: userspace
	@tests/run-all.sh install

test-fuzz: fuzz-bin
	@tests/run-all.sh fuzz

test-kmod: userspace
	@tests/run-all.sh kmod

# The fault campaign alone (it also runs in make test, one round); make
# soak: five rounds in each of three boots, each ended by a reset, seeded
# by the time unless FERRY_VM_ARGS="seed=N" replays an order.
test-faults: userspace
	@FERRY_TESTS=faults KMOD_SUITES=bookworm tests/run-all.sh kmod

soak: userspace
	@FERRY_TESTS=faults KMOD_SUITES=bookworm FERRY_VM_BOOTS=$${FERRY_VM_BOOTS:-4} \
		FERRY_VM_TIMEOUT=$${FERRY_VM_TIMEOUT:-7200} \
		FERRY_VM_ARGS="rounds=5 $${FERRY_VM_ARGS:-}" tests/run-all.sh kmod

test-host: all
	@tests/run-all.sh host

demo: all
	@scripts/demo.sh

# Every benchmark, one at a time (they would disturb each other), each in
# its own make so that one failing does not stop the others; then
# build/bench/report.md and one line per figure on stdout
# (tests/bench/run.sh).  Fails if a benchmark did not run, not on a goal.
bench: userspace
	@MAKE="$(MAKE)" BUILD=$(BUILD) tests/bench/run.sh

bench-kmod: userspace
	@tests/kmod/bench.sh

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD) -path $(BUILD)/pkg -prune -o -name '*.d' -type f -print 2>/dev/null)
