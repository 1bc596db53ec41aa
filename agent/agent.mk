# agent/agent.mk: the agent-side programs.  Included by the top-level
# Makefile, which provides CC, CFLAGS_STD, BUILD, BIN and the pattern rules
# $(BUILD)/obj/%.o and $(BUILD)/san/%.o.
#
# USERSPACE_BINS is what `make userspace` builds.  It is a recursive (=)
# variable because tests/tests.mk, included after this file, defines the
# test program lists it names; the top-level `userspace:` rule is read after
# both includes, so everything is defined by then.

USERSPACE_BINS = $(BIN)/ferryctl $(KMOD_TEST_BINS) $(UNIT_TEST_BINS) \
                 $(UNIT_TEST_SAN_BINS)

# Link only the library objects a program uses: lib/ also holds code with
# heavier dependencies (TLS, wire codec) that ferryctl does not need.
FERRYCTL_OBJ := $(BUILD)/obj/agent/ferryctl.o \
                $(BUILD)/obj/agent/ferryctl_tracker.o \
                $(BUILD)/obj/lib/tracker.o

$(BIN)/ferryctl: $(FERRYCTL_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_STD) $(CFLAGS) $(LDFLAGS) $^ -o $@ $(LDLIBS)

# ferry-agent: the replication side (AGENT_REPL_OBJ: main, the replication
# thread and its read path, link and throttle) and the control side
# (AGENT_CONTROL_OBJ, from control_loop.c and its helpers), on the shared
# lib/ objects.  AGENT_CONTROL_OBJ is expanded when the link runs (second
# expansion), so it may be defined anywhere in this file.
AGENT_REPL_OBJ := $(addprefix $(BUILD)/obj/agent/, main.o replicate.o \
                  disk.o rescan.o cp.o repl_status.o repl_log.o reader.o \
                  link.o throttle.o freeze.o module_load.o)
AGENT_LIB_OBJ  := $(addprefix $(BUILD)/obj/lib/, wire.o tls.o tracker.o \
                  extent.o errmsg.o peer_id.o api_resp.o)
AGENT_LIBS     := -luring -lssl -lcrypto -lzstd -llz4 -lxxhash -lcurl \
                  -ljansson -lpthread

USERSPACE_BINS += $(BIN)/ferry-agent

.SECONDEXPANSION:
$(BIN)/ferry-agent: $(AGENT_REPL_OBJ) $$(AGENT_CONTROL_OBJ) $(AGENT_LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_STD) $(CFLAGS) $(LDFLAGS) $^ -o $@ $(AGENT_LIBS) \
		$(LDLIBS)

# The control side of ferry-agent (docs/agent.md, "Registration and
# control"): the shared state, the configuration, the state directory, the
# host's facts, the data-plane certificate, the signed calls to
# ferry-control, the control thread and the status file.
AGENT_CONTROL_OBJ := $(addprefix $(BUILD)/obj/agent/, shared.o config.o \
                     state.o hostinfo.o cert.o control_api.o \
                     control_loop.o status_file.o)

# `ferryctl status` reads the agent's status file (JSON).
FERRYCTL_OBJ += $(BUILD)/obj/agent/ferryctl_status.o \
                $(BUILD)/obj/agent/state.o $(BUILD)/obj/lib/errmsg.o
$(BIN)/ferryctl: $(FERRYCTL_OBJ)
$(BIN)/ferryctl: LDLIBS += -ljansson
