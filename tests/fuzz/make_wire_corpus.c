// SPDX-License-Identifier: GPL-2.0
/*
 * make_wire_corpus.c - writes the seed corpus of tests/fuzz/fuzz_wire.c:
 * valid frames of every type, made by the encoders of lib/wire.c, in the
 * target's input format (see the comment at the top of fuzz_wire.c).
 *
 *   cc -Iinclude -Ilib tests/fuzz/make_wire_corpus.c lib/wire.c \
 *      -lzstd -llz4 -lxxhash -o build/make_wire_corpus &&
 *   build/make_wire_corpus tests/fuzz/corpus/wire
 *
 * Files of other names in the directory (reproducers of bugs found,
 * kept as regression tests) are left alone.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "wire.h"

#define MODE_STREAM 0
#define MODE_CODEC 1

static const char *dir;
static uint8_t buf[4 * FERRY_WIRE_MAX_PAYLOAD];
static size_t used;

static void start(uint8_t mode)
{
	buf[0] = mode;
	used = 1;
}

/* Appends a frame of N bytes (0: the encoder refused, a bug here). */
static void add(size_t n, const char *what)
{
	if (!n) {
		fprintf(stderr, "make_wire_corpus: cannot encode %s\n", what);
		exit(1);
	}
	used += n;
}

static void save(const char *name)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(buf, 1, used, f) != used || fclose(f)) {
		fprintf(stderr, "make_wire_corpus: %s: %s\n", path,
			strerror(errno));
		exit(1);
	}
}

#define CAP (sizeof(buf) - used)
#define AT (buf + used)

static struct ferry_str str(const char *s)
{
	return (struct ferry_str){ .s = s, .len = (uint16_t)strlen(s) };
}

static void fill(uint8_t *p, size_t n, int how)
{
	uint32_t x = 12345;
	size_t i;

	for (i = 0; i < n; i++) {
		x = x * 1103515245 + 12345;
		if (how == 0)
			p[i] = 0;
		else if (how == 1)
			p[i] = (uint8_t)"ferry "[i % 6];
		else
			p[i] = (uint8_t)(x >> 24);
	}
}

/* A DATA frame of LEN bytes filled by HOW, encoded with CODEC. */
static void add_data(uint64_t seq, uint8_t codec, uint32_t len, int how,
		     uint64_t offset)
{
	static uint8_t src[FERRY_WIRE_MAX_DATA];
	struct ferry_data d = {
		.disk = 0, .codec = codec, .raw_len = len, .offset = offset,
	};
	size_t n;

	fill(src, len, how);
	d.xxh3 = ferry_hash64(src, len);
	n = ferry_codec_encode(codec, 3, src, len,
			       AT + FERRY_WIRE_DATA_HDR_LEN,
			       CAP - FERRY_WIRE_DATA_HDR_LEN);
	if (!n) {
		fprintf(stderr, "make_wire_corpus: cannot compress\n");
		exit(1);
	}
	d.payload_len = (uint32_t)n;
	add(ferry_wire_encode_data_hdr(AT, CAP, seq, &d), "DATA");
	used += n;
}

static void add_codec(uint8_t codec, uint32_t len, int how)
{
	static uint8_t src[FERRY_WIRE_MAX_DATA];
	uint64_t h;
	size_t n;
	int i;

	fill(src, len, how);
	h = ferry_hash64(src, len);
	buf[used++] = codec;
	for (i = 3; i >= 0; i--)
		buf[used++] = (uint8_t)(len >> (8 * i));
	for (i = 7; i >= 0; i--)
		buf[used++] = (uint8_t)(h >> (8 * i));
	n = ferry_codec_encode(codec, 3, src, len, AT, CAP);
	add(n, "codec data");
}

int main(int argc, char **argv)
{
	static const char *const names[] = { "raw", "zstd", "lz4" };
	static const char *const fills[] = { "zero", "text", "random" };
	struct ferry_hello hello = {
		.min_version = 1, .max_version = 1,
		.agent_version = str("0.1.0"),
		.source_server_id = str("s-1234567890abcdef0"), .n_disks = 2,
	};
	struct ferry_welcome welcome = {
		.version = 1, .n_disks = 2, .window = 64,
		.window_bytes = 64u << 20,
	};
	struct ferry_zero zero = { .disk = 1, .offset = 1 << 20,
				   .length = 64 << 10 };
	struct ferry_hash_req req = { .disk = 0, .chunk = 65536,
				      .offset = 0, .length = 4 * 65536 };
	uint8_t hashes[4 * FERRY_WIRE_HASH_LEN];
	struct ferry_hash_resp resp = { .disk = 0, .chunk = 65536,
					.offset = 0, .count = 4,
					.hashes = hashes };
	struct ferry_sync_mark mark = { .disk = 0, .offset = 8 << 20 };
	struct ferry_cp cp = { .cp_id = 1, .time_ms = 1795329000000ull };
	char name[64];
	int c, how, i;

	if (argc != 2) {
		fprintf(stderr, "usage: make_wire_corpus DIR\n");
		return 2;
	}
	dir = argv[1];
	if (mkdir(dir, 0755) && errno != EEXIST) {
		fprintf(stderr, "make_wire_corpus: %s: %s\n", dir,
			strerror(errno));
		return 1;
	}
	hello.disks[0] = (struct ferry_hello_disk){
		.name = str("/dev/vda"), .size = 10ull << 30,
		.block_size = 512 };
	hello.disks[1] = (struct ferry_hello_disk){
		.name = str("/dev/nvme0n1"), .size = 1ull << 30,
		.block_size = 4096 };
	for (i = 0; i < 2; i++) {
		memset(welcome.disks[i].volume_id, 0x31 + i, 16);
		welcome.disks[i].size = hello.disks[i].size;
		welcome.disks[i].sync_mark = i ? hello.disks[i].size : 4 << 20;
		welcome.disks[i].last_cp = 7 * i;
	}
	for (i = 0; i < 4; i++)
		ferry_hash128(&i, sizeof(i), hashes + 16 * i);

	/* One file per frame type. */
	start(MODE_STREAM);
	add(ferry_wire_encode_hello(AT, CAP, 1, &hello), "HELLO");
	save("hello");
	start(MODE_STREAM);
	add(ferry_wire_encode_welcome(AT, CAP, 1, &welcome), "WELCOME");
	save("welcome");
	for (c = 0; c <= FERRY_CODEC_LZ4; c++)
		for (how = 0; how < 3; how++) {
			start(MODE_STREAM);
			add_data(2, (uint8_t)c, 4096, how, 1 << 20);
			snprintf(name, sizeof(name), "data-%s-%s", names[c],
				 fills[how]);
			save(name);
		}
	start(MODE_STREAM);
	add(ferry_wire_encode_zero(AT, CAP, 3, &zero), "ZERO");
	save("zero");
	start(MODE_STREAM);
	add(ferry_wire_encode_hash_req(AT, CAP, 4, &req), "HASH_REQ");
	save("hash-req");
	start(MODE_STREAM);
	add(ferry_wire_encode_hash_resp(AT, CAP, 4, &resp), "HASH_RESP");
	save("hash-resp");
	start(MODE_STREAM);
	add(ferry_wire_encode_sync_mark(AT, CAP, 5, &mark), "SYNC_MARK");
	save("sync-mark");
	start(MODE_STREAM);
	add(ferry_wire_encode_cp(AT, CAP, 6, &cp), "CP");
	save("cp");
	start(MODE_STREAM);
	add(ferry_wire_encode_ack(AT, CAP, 6), "ACK");
	save("ack");
	start(MODE_STREAM);
	add(ferry_wire_encode_ping(AT, CAP, FERRY_F_PING, 7, 42), "PING");
	save("ping");
	start(MODE_STREAM);
	add(ferry_wire_encode_ping(AT, CAP, FERRY_F_PONG, 7, 42), "PONG");
	save("pong");
	start(MODE_STREAM);
	add(ferry_wire_encode_error(AT, CAP, 2, FERRY_ERR_FATAL,
				    FERRY_E_RANGE,
				    "DATA offset 10737418240 is beyond disk 0"),
	    "ERROR");
	save("error");
	start(MODE_STREAM);
	add(ferry_wire_encode_bye(AT, CAP, 8), "BYE");
	save("bye");

	/* Near misses the fuzzer would take long to build: a HELLO whose
	 * second disk name differs from the first in its last byte, one
	 * with every string at its limit, one with 64 disks. */
	hello.disks[1].name = str("/dev/vdb");
	start(MODE_STREAM);
	add(ferry_wire_encode_hello(AT, CAP, 1, &hello), "HELLO");
	save("hello-near-duplicate");
	{
		static char disk_names[FERRY_WIRE_MAX_DISKS][16];
		char longest[FERRY_WIRE_MAX_NAME + 1];
		struct ferry_hello big = hello;

		memset(longest, 'v', FERRY_WIRE_MAX_NAME);
		longest[FERRY_WIRE_MAX_NAME] = 0;
		big.agent_version = str(longest);
		big.source_server_id = str(longest);
		big.disks[0].name = str(longest);
		start(MODE_STREAM);
		add(ferry_wire_encode_hello(AT, CAP, 1, &big), "HELLO");
		save("hello-longest");
		big = hello;
		big.n_disks = FERRY_WIRE_MAX_DISKS;
		for (i = 0; i < FERRY_WIRE_MAX_DISKS; i++) {
			snprintf(disk_names[i], sizeof(disk_names[i]),
				 "/dev/sd%c%c",
				 'a' + i / 26, 'a' + i % 26);
			big.disks[i] = hello.disks[0];
			big.disks[i].name = str(disk_names[i]);
		}
		start(MODE_STREAM);
		add(ferry_wire_encode_hello(AT, CAP, 1, &big), "HELLO");
		save("hello-64-disks");
	}
	hello.disks[1].name = str("/dev/nvme0n1");

	/* A session each way. */
	start(MODE_STREAM);
	add(ferry_wire_encode_hello(AT, CAP, 1, &hello), "HELLO");
	add_data(2, FERRY_CODEC_ZSTD, 8192, 1, 0);
	add_data(3, FERRY_CODEC_LZ4, 4096, 1, 8192);
	add_data(4, FERRY_CODEC_RAW, 512, 2, 12288);
	add(ferry_wire_encode_zero(AT, CAP, 5, &zero), "ZERO");
	add(ferry_wire_encode_hash_req(AT, CAP, 6, &req), "HASH_REQ");
	add(ferry_wire_encode_sync_mark(AT, CAP, 7, &mark), "SYNC_MARK");
	add(ferry_wire_encode_cp(AT, CAP, 8, &cp), "CP");
	add(ferry_wire_encode_ping(AT, CAP, FERRY_F_PING, 9, 1), "PING");
	add(ferry_wire_encode_bye(AT, CAP, 10), "BYE");
	save("session-agent");
	start(MODE_STREAM);
	add(ferry_wire_encode_welcome(AT, CAP, 1, &welcome), "WELCOME");
	add(ferry_wire_encode_ack(AT, CAP, 5), "ACK");
	add(ferry_wire_encode_hash_resp(AT, CAP, 6, &resp), "HASH_RESP");
	add(ferry_wire_encode_ping(AT, CAP, FERRY_F_PONG, 9, 1), "PONG");
	add(ferry_wire_encode_error(AT, CAP, 0, 0, FERRY_E_NOSPC,
				    "staging volume full"), "ERROR");
	add(ferry_wire_encode_bye(AT, CAP, 10), "BYE");
	save("session-replicator");

	/* Codec payloads on their own. */
	for (c = 0; c <= FERRY_CODEC_LZ4; c++)
		for (how = 0; how < 3; how++) {
			start(MODE_CODEC);
			/* Zeros: 64 KiB in a few bytes. */
			add_codec((uint8_t)c, how == 0 && c ? 65536 : 2048,
				  how);
			snprintf(name, sizeof(name), "codec-%s-%s", names[c],
				 fills[how]);
			save(name);
		}
	return 0;
}
