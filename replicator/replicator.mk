# replicator/replicator.mk: ferry-replicator, the staging-area replication
# server.  Included by the top-level Makefile (CC, CFLAGS_STD, BUILD, BIN,
# pattern rules).
#
# Every replicator/*.c is part of the daemon; main.c holds main(), so unit
# tests link REPLICATOR_LIB_OBJ (all but main.o).  Of lib/ it links only
# the codec, TLS, peer-ID and API response objects.

REPLICATOR_SRC     := $(wildcard replicator/*.c)
REPLICATOR_OBJ     := $(REPLICATOR_SRC:%.c=$(BUILD)/obj/%.o) \
                      $(BUILD)/obj/lib/wire.o $(BUILD)/obj/lib/tls.o \
                      $(BUILD)/obj/lib/peer_id.o $(BUILD)/obj/lib/errmsg.o \
                      $(BUILD)/obj/lib/api_resp.o
REPLICATOR_LIB_OBJ := $(filter-out %/main.o,$(REPLICATOR_OBJ))
REPLICATOR_LIBS    := -lssl -lcrypto -lzstd -llz4 -lxxhash -lcurl -ljansson \
                      -pthread

USERSPACE_BINS += $(BIN)/ferry-replicator

$(BIN)/ferry-replicator: $(REPLICATOR_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_STD) $(CFLAGS) $(LDFLAGS) $^ -o $@ $(REPLICATOR_LIBS) \
		$(LDLIBS)
