# tests/control/bench/bench.mk: ferry-control's benchmark.  Included by the
# top-level Makefile (CC, CFLAGS_STD, BUILD, BIN, pattern rules).
#
# `make bench-control` builds the daemon and the load generator, then runs
# tests/control/bench/bench.sh: heartbeats/s and p50/p99 latency at a few
# concurrency levels, against an unsigned-request baseline measured in the
# same run; report in $(BUILD)/bench/control.md.

CONTROL_LOAD := $(BUILD)/tests/control/bench/ferry-control-load

$(CONTROL_LOAD): $(BUILD)/obj/tests/control/bench/load.o
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_STD) $(CFLAGS) $(LDFLAGS) $^ -o $@ -lcurl -ljansson \
		-lm $(LDLIBS)

.PHONY: bench-control
bench-control: $(BIN)/ferry-control $(CONTROL_LOAD)
	@BUILD=$(BUILD) FERRY_CONTROL_BIN=$(BIN)/ferry-control \
		FERRY_CONTROL_LOAD=$(CONTROL_LOAD) tests/control/bench/bench.sh
