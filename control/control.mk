# control/control.mk: ferry-control, the control-plane endpoint.  Included
# by the top-level Makefile (CC, CFLAGS_STD, BUILD, BIN, pattern rules).
#
# Every control/*.c is part of the daemon; main.c holds main(), so the
# unit tests and the fuzz target link CONTROL_LIB_OBJ (all but main.o).

CONTROL_SRC      := $(wildcard control/*.c)
CONTROL_OBJ      := $(CONTROL_SRC:%.c=$(BUILD)/obj/%.o)
CONTROL_LIB_OBJ  := $(filter-out %/main.o,$(CONTROL_OBJ))
CONTROL_LIB_SOBJ := $(CONTROL_LIB_OBJ:$(BUILD)/obj/%=$(BUILD)/san/%)
CONTROL_LIBS     := -lmicrohttpd -ljansson -lsqlite3 -lssl -lcrypto -pthread

USERSPACE_BINS += $(BIN)/ferry-control

$(BIN)/ferry-control: $(CONTROL_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_STD) $(CFLAGS) $(LDFLAGS) $^ -o $@ $(CONTROL_LIBS) \
		$(LDLIBS)
