# tests/agent/agent_tests.mk: programs of the agent's tests.  Included by
# the top-level Makefile (CC, CFLAGS_STD, BUILD, pattern rules), after
# agent/agent.mk, which sets USERSPACE_BINS with =.
#
# ferry-freeze-test drives the agent's freezer (agent/freeze.c) for
# tests/agent/t_freeze.py.

AGENT_TEST_DIR := $(BUILD)/tests/agent
AGENT_TEST_BINS := $(AGENT_TEST_DIR)/ferry-freeze-test

$(AGENT_TEST_DIR)/ferry-freeze-test: \
		$(BUILD)/obj/tests/agent/src/ferry-freeze-test.o \
		$(BUILD)/obj/agent/freeze.o $(BUILD)/obj/lib/errmsg.o
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_STD) $(CFLAGS) $(LDFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/obj/tests/agent/src/ferry-freeze-test.o: CFLAGS += -Iagent

USERSPACE_BINS += $(AGENT_TEST_BINS)

# ferry-control-test: the control side of the agent (control_init and the
# control thread) driven by tests/agent/t_control_*.py, with the test in
# the replication thread's place.  (USERSPACE_BINS names AGENT_TEST_BINS
# unexpanded, so it gets this one too.)
AGENT_TEST_BINS += $(AGENT_TEST_DIR)/ferry-control-test
$(AGENT_TEST_DIR)/ferry-control-test: \
		$(BUILD)/obj/tests/agent/src/ferry-control-test.o \
		$(AGENT_CONTROL_OBJ) $(BUILD)/obj/lib/tracker.o \
		$(BUILD)/obj/lib/api_resp.o $(BUILD)/obj/lib/peer_id.o \
		$(BUILD)/obj/lib/errmsg.o
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_STD) $(CFLAGS) $(LDFLAGS) $^ -o $@ -lcurl -ljansson \
		-lssl -lcrypto -lpthread $(LDLIBS)

$(BUILD)/obj/tests/agent/src/ferry-control-test.o: CFLAGS += -Iagent

# `make bench-agent`: ferry-agent's initial sync against fio's sequential
# read rate of the same device, a half-empty disk against a full one, and
# the agent's peak RSS (tests/agent/bench.py), then its lag under a steady
# write load with ferry.ko in a QEMU guest (tests/agent/bench-lag.sh);
# report in $(BUILD)/bench/agent.md.  bench-agent-sync and bench-agent-lag
# are its two halves, separate steps of make bench.
#
# `make bench-baseline`: ferry's initial sync of a disk with zeros and text
# against dd | openssl s_client -> openssl s_server | dd of the same disk
# (tests/agent/bench-baseline.py); report in $(BUILD)/bench/baseline.md.
AGENT_BENCH_BINS := $(BIN)/ferry-agent $(BIN)/ferry-replicator \
                    $(BIN)/ferry-control
AGENT_BENCH_SYNC := BUILD=$(BUILD) /usr/bin/python3 tests/agent/bench.py
AGENT_BENCH_LAG  := BUILD=$(BUILD) tests/agent/bench-lag.sh
.PHONY: bench-agent bench-agent-sync bench-agent-lag bench-baseline
bench-agent: $(AGENT_BENCH_BINS)
	@scripts/deps.sh vm
	@$(AGENT_BENCH_SYNC)
	@$(AGENT_BENCH_LAG)

bench-agent-sync: $(AGENT_BENCH_BINS)
	@scripts/deps.sh vm
	@$(AGENT_BENCH_SYNC)

bench-agent-lag: $(AGENT_BENCH_BINS)
	@$(AGENT_BENCH_LAG)

bench-baseline: $(AGENT_BENCH_BINS)
	@scripts/deps.sh agent
	@BUILD=$(BUILD) /usr/bin/python3 tests/agent/bench-baseline.py
