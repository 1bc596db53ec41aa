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
                    $(BUILD)/obj/lib/peer_id.o
REPL_TEST_LIBS   := -lssl -lcrypto -lzstd -llz4 -lxxhash

$(REPL_TEST_CLIENT): $(REPL_TEST_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_STD) $(CFLAGS) $(LDFLAGS) $^ -o $@ $(REPL_TEST_LIBS) \
		$(LDLIBS)

# Built by `make userspace` (include this file after agent/agent.mk,
# which sets USERSPACE_BINS with =).
USERSPACE_BINS += $(REPL_TEST_CLIENT)
