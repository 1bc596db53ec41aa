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
