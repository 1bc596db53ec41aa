# tests/tests.mk: test programs.  Included by the top-level Makefile after
# agent/agent.mk (which lists these binaries in USERSPACE_BINS).
#
#  - guest programs, run as root inside the QEMU guests against the real
#    module: $(BUILD)/tests/kmod/bin/ferry-{writer,verify,race,badargs}
#  - native unit tests: $(BUILD)/tests/unit/test_*
#  - the same unit tests with ASan and UBSan: $(BUILD)/tests/unit/san/test_*
#    (objects under $(BUILD)/san/)
# tests/unit/run.sh runs both unit builds; tests/run-all.sh runs everything.

KT_SRC         := tests/kmod/src
KT_OBJ         := $(BUILD)/obj/$(KT_SRC)
KMOD_TEST_DIR  := $(BUILD)/tests/kmod/bin
KMOD_TESTS     := ferry-writer ferry-verify ferry-race ferry-badargs
KMOD_TEST_BINS := $(KMOD_TESTS:%=$(KMOD_TEST_DIR)/%)
# Extra link flags for the guest programs, e.g. KMOD_TEST_LDFLAGS=-static
# for a guest without the host's shared libraries.
KMOD_TEST_LDFLAGS ?=

KT_COMMON_OBJ := $(KT_OBJ)/kt_common.o $(BUILD)/obj/lib/tracker.o \
                 $(BUILD)/obj/lib/extent.o

$(KMOD_TEST_DIR)/ferry-writer: $(KT_OBJ)/ferry-writer.o \
	$(KT_OBJ)/fiemap_map.o $(KT_COMMON_OBJ)
$(KMOD_TEST_DIR)/ferry-verify: $(KT_OBJ)/ferry-verify.o \
	$(KT_OBJ)/verify_core.o $(KT_COMMON_OBJ)
$(KMOD_TEST_DIR)/ferry-race: $(KT_OBJ)/ferry-race.o $(KT_COMMON_OBJ)
$(KMOD_TEST_DIR)/ferry-badargs: $(KT_OBJ)/ferry-badargs.o $(KT_COMMON_OBJ)

$(KMOD_TEST_BINS):
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_STD) $(CFLAGS) $(LDFLAGS) $(KMOD_TEST_LDFLAGS) $^ \
		-o $@ -pthread $(LDLIBS)

# Unit tests: NAME_SRCS lists the sources (without .c) linked into NAME.
UNIT_TESTS := test_extent test_tracker test_verify test_sigv4 test_ca \
              test_wire
test_extent_SRCS  := tests/unit/test_extent lib/extent
test_tracker_SRCS := tests/unit/test_tracker lib/tracker
test_verify_SRCS  := tests/unit/test_verify $(KT_SRC)/verify_core \
                     $(KT_SRC)/fiemap_map lib/extent
test_sigv4_SRCS   := tests/unit/test_sigv4 control/sigv4 control/sigv4_replay \
                     lib/errmsg
# Extra libraries of one test: NAME_LIBS.
test_sigv4_LIBS   := -lcurl -ljansson -lcrypto -pthread
test_ca_SRCS      := tests/unit/test_ca control/ca control/certs_cli \
                     lib/peer_id lib/errmsg
# GnuTLS: the test checks libmicrohttpd's TLS library loads our PEM files.
test_ca_LIBS      := -lssl -lcrypto -lgnutls
test_wire_SRCS    := tests/unit/test_wire lib/wire
test_wire_LIBS    := -lzstd -llz4 -lxxhash
UNIT_TESTS        += test_volume
test_volume_SRCS  := tests/unit/test_volume replicator/volume replicator/snapshot \
                     replicator/snap_policy \
                     replicator/config replicator/log lib/wire lib/peer_id \
                     lib/errmsg
# fsync() counted, or made to fail (--wrap).
test_volume_LIBS  := -Wl,--wrap=fsync -lzstd -llz4 -lxxhash -lcrypto
# Snapshots' failure paths: fdatasync(), the snapshots directory's fsync()
# and delta reads made to fail, an export thread stopped at ftruncate()
# (--wrap).
UNIT_TESTS          += test_snapshot
test_snapshot_SRCS  := tests/unit/test_snapshot replicator/volume \
                       replicator/snapshot replicator/snap_policy \
                       replicator/log lib/wire lib/peer_id \
                       lib/errmsg
test_snapshot_LIBS  := -Wl,--wrap=fdatasync -Wl,--wrap=ftruncate \
                       -Wl,--wrap=pread -Wl,--wrap=fsync -pthread \
                       -lzstd -llz4 -lxxhash -lcrypto
# ferry-control's pitPolicy as the replicator's snapshot policy.
UNIT_TESTS        += test_pit_policy
test_pit_policy_SRCS := tests/unit/test_pit_policy replicator/pit_policy \
                        replicator/snap_policy lib/errmsg
test_pit_policy_LIBS := -ljansson
# ferry-agent's configuration and host facts (agent/config.c, hostinfo.c).
UNIT_TESTS        += test_agent_config test_agent_hostinfo
test_agent_config_SRCS   := tests/unit/test_agent_config agent/config \
                            agent/hostinfo lib/tracker lib/peer_id \
                            lib/errmsg
test_agent_config_LIBS   := -lcrypto
test_agent_hostinfo_SRCS := tests/unit/test_agent_hostinfo agent/hostinfo \
                            lib/errmsg
test_agent_hostinfo_LIBS := -lcrypto
# The token bucket of the agent's data stream (agent/throttle.c).
UNIT_TESTS        += test_throttle
test_throttle_SRCS := tests/unit/test_throttle agent/throttle
$(BUILD)/obj/tests/unit/test_throttle.o $(BUILD)/san/tests/unit/test_throttle.o: \
	CFLAGS += -Iagent
$(BUILD)/obj/tests/unit/test_agent_%.o $(BUILD)/san/tests/unit/test_agent_%.o: \
	CFLAGS += -Iagent

UNIT_TEST_BINS     := $(UNIT_TESTS:%=$(BUILD)/tests/unit/%)
UNIT_TEST_SAN_BINS := $(UNIT_TESTS:%=$(BUILD)/tests/unit/san/%)

define unit_test_deps
$(BUILD)/tests/unit/$(1): $(patsubst %,$(BUILD)/obj/%.o,$($(1)_SRCS))
$(BUILD)/tests/unit/san/$(1): $(patsubst %,$(BUILD)/san/%.o,$($(1)_SRCS))
endef
$(foreach t,$(UNIT_TESTS),$(eval $(call unit_test_deps,$(t))))

$(UNIT_TEST_BINS):
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_STD) $(CFLAGS) $(LDFLAGS) $^ -o $@ \
		$($(notdir $@)_LIBS) $(LDLIBS)

$(UNIT_TEST_SAN_BINS):
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_STD) $(SAN_FLAGS) $(CFLAGS) $(LDFLAGS) $^ -o $@ \
		$($(notdir $@)_LIBS) $(LDLIBS)

.PHONY: unit-tests kmod-test-bins
unit-tests: $(UNIT_TEST_BINS) $(UNIT_TEST_SAN_BINS)
kmod-test-bins: $(KMOD_TEST_BINS)
