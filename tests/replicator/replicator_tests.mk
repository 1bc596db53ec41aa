# tests/replicator/replicator_tests.mk: the replicator's test client.
# Included by the top-level Makefile (CC, CFLAGS_STD, BUILD, pattern rules).
#
# ferry-wire-client speaks the agent <-> replicator protocol on the same
# codec (lib/wire.c) as the agent; tests/replicator/run.sh drives
# build/bin/ferry-replicator with it.

REPL_TEST_DIR    := $(BUILD)/tests/replicator
REPL_TEST_CLIENT := $(REPL_TEST_DIR)/ferry-wire-client
REPL_TEST_OBJ    := $(BUILD)/obj/tests/replicator/ferry-wire-client.o \
                    $(BUILD)/obj/lib/wire.o $(BUILD)/obj/lib/tls.o \
                    $(BUILD)/obj/lib/peer_id.o $(BUILD)/obj/lib/errmsg.o
REPL_TEST_LIBS   := -lssl -lcrypto -lzstd -llz4 -lxxhash

$(REPL_TEST_CLIENT): $(REPL_TEST_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_STD) $(CFLAGS) $(LDFLAGS) $^ -o $@ $(REPL_TEST_LIBS) \
		$(LDLIBS)

# Built by `make userspace` (include this file after agent/agent.mk,
# which sets USERSPACE_BINS with =).
USERSPACE_BINS += $(REPL_TEST_CLIENT)

# `make bench-replicator`: the staging directory's own write rate (fio)
# against ferry-replicator's ingest over TLS, 1 and 50 streams;
# tests/replicator/bench.sh, report in $(BUILD)/bench/replicator.md.
.PHONY: bench-replicator
bench-replicator: $(BIN)/ferry-replicator $(BIN)/ferry-control \
		  $(REPL_TEST_CLIENT)
	@BUILD=$(BUILD) FERRY_REPLICATOR_BIN=$(BIN)/ferry-replicator \
		FERRY_CONTROL_BIN=$(BIN)/ferry-control \
		FERRY_WIRE_CLIENT=$(REPL_TEST_CLIENT) tests/replicator/bench.sh
