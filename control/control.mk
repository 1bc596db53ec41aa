# control/control.mk: ferry-control, the control-plane endpoint.  Included
# by the top-level Makefile (CC, CFLAGS_STD, BUILD, BIN, pattern rules).
#
# Every control/*.c is part of the daemon.

CONTROL_SRC      := $(wildcard control/*.c)
# lib/peer_id: the certificate IDs this CA issues (shared with the
# replicator and the agent).
CONTROL_OBJ      := $(CONTROL_SRC:%.c=$(BUILD)/obj/%.o) \
                    $(BUILD)/obj/lib/peer_id.o $(BUILD)/obj/lib/errmsg.o
# GnuTLS directly too: libmicrohttpd's certificate callback (http.c).
CONTROL_LIBS     := -lmicrohttpd -lgnutls -ljansson -lsqlite3 -lssl -lcrypto -pthread

USERSPACE_BINS += $(BIN)/ferry-control

$(BIN)/ferry-control: $(CONTROL_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_STD) $(CFLAGS) $(LDFLAGS) $^ -o $@ $(CONTROL_LIBS) \
		$(LDLIBS)
