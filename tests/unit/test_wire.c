// SPDX-License-Identifier: GPL-2.0
/*
 * test_wire.c - unit tests of lib/wire.c: frames against hand-built bytes,
 * round trips of every frame type, one refusal per protocol rule,
 * truncation at every length, the codecs and the hashes.
 *
 * Payloads are decoded from heap buffers of exactly their length, so that
 * the sanitizer build catches any read past the end.
 */
#include <stdbool.h>
#include <stdlib.h>

#include <lz4.h>
#include <xxhash.h>
#include <zstd.h>

#include "check.h"
#include "wire.h"

#define HDR FERRY_WIRE_HDR_LEN
#define BIG (HDR + FERRY_WIRE_MAX_PAYLOAD + 64)

static uint8_t frame[BIG];
static char err[512];

/* Big-endian writers of the test's own, independent of the library. */
static void be16(uint8_t *p, uint16_t v)
{
	p[0] = v >> 8;
	p[1] = v & 0xff;
}

static void be32(uint8_t *p, uint32_t v)
{
	be16(p, v >> 16);
	be16(p + 2, v & 0xffff);
}

static void be64(uint8_t *p, uint64_t v)
{
	be32(p, v >> 32);
	be32(p + 4, v & 0xffffffff);
}

/* A frame by hand: header then LEN payload bytes from PAYLOAD. */
static size_t mk(uint8_t *out, uint8_t type, uint8_t flags, uint64_t seq,
		 const void *payload, size_t len)
{
	be32(out, (uint32_t)len);
	out[4] = type;
	out[5] = flags;
	be16(out + 6, 0);
	be64(out + 8, seq);
	if (len)
		memmove(out + HDR, payload, len);
	return HDR + len;
}

/*
 * Decodes frame F of N bytes as a receiver would: the header, then the
 * payload from an exact-size heap copy (kept in *KEEP for the caller to
 * free, as M points into it).  0 or -1 with ERR set.
 */
static int decode_keep(const uint8_t *f, size_t n, struct ferry_msg *m,
		       uint8_t **keep)
{
	struct ferry_hdr h;
	uint8_t *p;
	int rc;

	*keep = NULL;
	err[0] = 0;
	if (n < HDR) {
		snprintf(err, sizeof(err), "short header");
		return -1;
	}
	if (ferry_wire_decode_hdr(f, &h, err, sizeof(err)))
		return -1;
	if (n - HDR != h.len) {
		snprintf(err, sizeof(err), "frame is %zu bytes, header says %u",
			 n - HDR, h.len);
		return -1;
	}
	p = malloc(h.len ? h.len : 1);
	if (!p)
		abort();
	memcpy(p, f + HDR, h.len);
	rc = ferry_wire_decode(&h, p, m, err, sizeof(err));
	*keep = p;
	return rc;
}

static int decode(const uint8_t *f, size_t n, struct ferry_msg *m)
{
	uint8_t *keep;
	int rc = decode_keep(f, n, m, &keep);

	free(keep);
	return rc;
}

static struct ferry_msg msg;

/* The frame is refused with a message containing WANT. */
#define REFUSED(f, n, want)						\
	do {								\
		CHECK(decode((f), (n), &msg) == -1);			\
		CHECK_HAS(err, (want));					\
	} while (0)

static struct ferry_str str(const char *s)
{
	return (struct ferry_str){ .s = s, .len = (uint16_t)strlen(s) };
}

static void make_hello(struct ferry_hello *h)
{
	memset(h, 0, sizeof(*h));
	h->min_version = 1;
	h->max_version = 1;
	h->agent_version = str("0.1.0");
	h->source_server_id = str("s-1234567890abcdef0");
	h->n_disks = 2;
	h->disks[0].name = str("/dev/vda");
	h->disks[0].size = 10ull << 30;
	h->disks[0].block_size = 512;
	h->disks[1].name = str("/dev/nvme0n1");
	h->disks[1].size = 4096ull * 1000;
	h->disks[1].block_size = 4096;
}

static size_t hello_frame(const struct ferry_hello *h)
{
	return ferry_wire_encode_hello(frame, sizeof(frame), 1, h);
}

/* Byte-exact layouts, written out by hand from include/ferry/wire.h. */
static void test_known_bytes(void)
{
	static const uint8_t cp[] = {
		0, 0, 0, 16, FERRY_F_CP, 0, 0, 0,
		0, 0, 0, 0, 0, 0, 0x01, 0x02,	/* seq 258 */
		0, 0, 0, 0, 0, 0, 0, 7,		/* cp_id */
		0, 0, 0x01, 0x8f, 0, 0, 0, 0x2a, /* time_ms */
	};
	static const uint8_t data[] = {
		0, 0, 0x02, 0x20, FERRY_F_DATA, 0, 0, 0, /* len 32 + 512 */
		0, 0, 0, 0, 0, 0, 0, 9,
		0, 0, 0, 3,			/* disk */
		FERRY_CODEC_RAW, 0, 0, 0,
		0, 0, 0x02, 0,			/* raw_len 512 */
		0, 0, 0, 0,			/* reserved */
		0, 0, 0, 0, 0, 0, 0x10, 0,	/* offset 4096 */
		0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88,
	};
	static const uint8_t hello[] = {
		0, 0, 0, 50, FERRY_F_HELLO, 0, 0, 0,
		0, 0, 0, 0, 0, 0, 0, 1,
		'F', 'E', 'R', 'R', 'Y', 'W', 'P', '1',
		0, 1, 0, 2, 0, 0, 0, 0,
		0, 3, '1', '.', '0',
		0, 4, 's', '-', '4', '2',
		0, 1,
		0, 3, 's', 'd', 'a',
		0, 0, 0, 0, 0, 0, 0x10, 0,	/* size 4096 */
		0, 0, 0x10, 0,			/* block_size */
		0, 0, 0, 0,
	};
	struct ferry_cp c = { .cp_id = 7, .time_ms = 0x18f0000002aull };
	struct ferry_data d = {
		.disk = 3, .codec = FERRY_CODEC_RAW, .raw_len = 512,
		.offset = 4096, .xxh3 = 0x1122334455667788ull,
		.payload_len = 512,
	};
	struct ferry_hello h = {
		.min_version = 1, .max_version = 2,
		.agent_version = str("1.0"), .source_server_id = str("s-42"),
		.n_disks = 1,
	};
	uint8_t ack[HDR] = { 0, 0, 0, 0, FERRY_F_ACK, 0, 0, 0,
			     0xff, 0, 0, 0, 0, 0, 0, 1 };
	size_t n;

	h.disks[0] = (struct ferry_hello_disk){ .name = str("sda"),
						.size = 4096,
						.block_size = 4096 };
	n = ferry_wire_encode_cp(frame, sizeof(frame), 258, &c);
	CHECK_U64(n, sizeof(cp));
	CHECK(!memcmp(frame, cp, sizeof(cp)));
	n = ferry_wire_encode_data_hdr(frame, sizeof(frame), 9, &d);
	CHECK_U64(n, sizeof(data));
	CHECK(!memcmp(frame, data, sizeof(data)));
	n = hello_frame(&h);
	CHECK_U64(n, sizeof(hello));
	CHECK(!memcmp(frame, hello, sizeof(hello)));
	n = ferry_wire_encode_ack(frame, sizeof(frame), 0xff00000000000001ull);
	CHECK_U64(n, HDR);
	CHECK(!memcmp(frame, ack, HDR));

	/* And the decoder reads the hand-built bytes back. */
	CHECK(decode(cp, sizeof(cp), &msg) == 0);
	CHECK_U64(msg.hdr.seq, 258);
	CHECK_U64(msg.u.cp.time_ms, 0x18f0000002aull);
	CHECK(decode(hello, sizeof(hello), &msg) == 0);
	CHECK_U64(msg.u.hello.max_version, 2);
	CHECK_U64(msg.u.hello.disks[0].block_size, 4096);
}

static void test_round_trip_hello(void)
{
	struct ferry_hello h;
	uint8_t *keep;
	size_t n;
	int i;

	make_hello(&h);
	n = hello_frame(&h);
	CHECK(n > HDR);
	CHECK(decode_keep(frame, n, &msg, &keep) == 0);
	CHECK_STR(err, "");
	CHECK_U64(msg.hdr.type, FERRY_F_HELLO);
	CHECK_U64(msg.hdr.seq, 1);
	CHECK_U64(msg.hdr.len, n - HDR);
	CHECK_U64(msg.u.hello.min_version, 1);
	CHECK_U64(msg.u.hello.max_version, 1);
	CHECK_U64(msg.u.hello.agent_version.len, 5);
	CHECK(!memcmp(msg.u.hello.agent_version.s, "0.1.0", 5));
	CHECK(!memcmp(msg.u.hello.source_server_id.s, "s-1234567890abcdef0",
		      19));
	CHECK_U64(msg.u.hello.n_disks, 2);
	for (i = 0; i < 2; i++) {
		CHECK_U64(msg.u.hello.disks[i].name.len, h.disks[i].name.len);
		CHECK(!memcmp(msg.u.hello.disks[i].name.s, h.disks[i].name.s,
			      h.disks[i].name.len));
		CHECK_U64(msg.u.hello.disks[i].size, h.disks[i].size);
		CHECK_U64(msg.u.hello.disks[i].block_size,
			  h.disks[i].block_size);
	}
	free(keep);

	/* The largest HELLO: 64 disks, every string at its limit. */
	{
		static char names[FERRY_WIRE_MAX_DISKS]
				 [FERRY_WIRE_MAX_NAME + 1];
		char longest[FERRY_WIRE_MAX_NAME + 1];

		memset(longest, 'v', FERRY_WIRE_MAX_NAME);
		longest[FERRY_WIRE_MAX_NAME] = 0;
		h.agent_version = str(longest);
		h.source_server_id = str(longest);
		h.n_disks = FERRY_WIRE_MAX_DISKS;
		for (i = 0; i < FERRY_WIRE_MAX_DISKS; i++) {
			memset(names[i], 'a' + i % 26, FERRY_WIRE_MAX_NAME);
			names[i][0] = (char)('A' + i / 26);
			h.disks[i].name = str(names[i]);
			h.disks[i].size = 512ull * (i + 1);
			h.disks[i].block_size = 512;
		}
		n = hello_frame(&h);
		CHECK_U64(n, HDR + 16 + 2 * 130 + 2 + 64 * (18 + 128));
		CHECK(decode(frame, n, &msg) == 0);
		CHECK_U64(msg.u.hello.n_disks, 64);
		CHECK_U64(msg.u.hello.disks[63].size, 512 * 64);
	}

	/* Names are UTF-8: 2-, 3- and 4-byte characters pass. */
	make_hello(&h);
	h.disks[0].name = str("/dev/disk/by-label/\xc3\xa9t\xc3\xa9-\xe2\x82\xac-"
			      "\xf0\x9f\x9a\xa2");
	n = hello_frame(&h);
	CHECK(n > 0);
	CHECK(decode(frame, n, &msg) == 0);
}

static void test_round_trip_welcome(void)
{
	struct ferry_welcome w = {
		.version = 1, .n_disks = 3, .window = 64,
		.window_bytes = 64ull << 20,
	};
	uint8_t *keep;
	size_t n;
	int i;

	for (i = 0; i < 3; i++) {
		memset(w.disks[i].volume_id, 0x10 + i, 16);
		w.disks[i].size = (1ull << 30) * (i + 1);
		w.disks[i].sync_mark = i == 2 ? w.disks[i].size : 4096ull * i;
		w.disks[i].last_cp = 100 + i;
	}
	n = ferry_wire_encode_welcome(frame, sizeof(frame), 1, &w);
	CHECK_U64(n, HDR + 16 + 3 * 40);
	CHECK(decode_keep(frame, n, &msg, &keep) == 0);
	CHECK_STR(err, "");
	CHECK_U64(msg.u.welcome.version, 1);
	CHECK_U64(msg.u.welcome.n_disks, 3);
	CHECK_U64(msg.u.welcome.window, 64);
	CHECK_U64(msg.u.welcome.window_bytes, 64ull << 20);
	for (i = 0; i < 3; i++) {
		CHECK(!memcmp(msg.u.welcome.disks[i].volume_id,
			      w.disks[i].volume_id, 16));
		CHECK_U64(msg.u.welcome.disks[i].size, w.disks[i].size);
		CHECK_U64(msg.u.welcome.disks[i].sync_mark,
			  w.disks[i].sync_mark);
		CHECK_U64(msg.u.welcome.disks[i].last_cp, w.disks[i].last_cp);
	}
	free(keep);
}

/* Deterministic test data. */
static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

enum fill { FILL_ZERO, FILL_TEXT, FILL_RANDOM };

static void fill(uint8_t *p, size_t n, enum fill how)
{
	static const char text[] = "ferry replicates blocks; ";
	size_t i;

	for (i = 0; i < n; i++) {
		if (how == FILL_ZERO)
			p[i] = 0;
		else if (how == FILL_TEXT)
			p[i] = (uint8_t)text[i % (sizeof(text) - 1)];
		else
			p[i] = (uint8_t)next_rand();
	}
}

/* A whole DATA frame of RAW_LEN bytes of SRC in CODEC into frame[]. */
static size_t data_frame(uint8_t codec, const uint8_t *src, uint32_t raw_len,
			 uint64_t offset)
{
	struct ferry_data d = {
		.disk = 1, .codec = codec, .raw_len = raw_len,
		.offset = offset, .xxh3 = ferry_hash64(src, raw_len),
	};
	size_t enc, n;

	enc = ferry_codec_encode(codec, 1, src, raw_len,
				 frame + FERRY_WIRE_DATA_HDR_LEN,
				 ferry_codec_bound(codec, raw_len));
	if (!enc)
		return 0;
	d.payload_len = (uint32_t)enc;
	n = ferry_wire_encode_data_hdr(frame, sizeof(frame), 77, &d);
	if (n != FERRY_WIRE_DATA_HDR_LEN)
		return 0;
	return n + enc;
}

/* A DATA frame of LEN bytes filled by HOW, through CODEC and back. */
static void data_round_trip(uint8_t codec, enum fill how, uint32_t len)
{
	static uint8_t src[FERRY_WIRE_MAX_DATA];
	const struct ferry_data *d = &msg.u.data;
	uint8_t *keep, *dst;
	size_t n;

	fill(src, len, how);
	n = data_frame(codec, src, len, 1ull << 40);
	CHECK(n > FERRY_WIRE_DATA_HDR_LEN);
	CHECK(n <= HDR + FERRY_WIRE_MAX_PAYLOAD);
	if (decode_keep(frame, n, &msg, &keep)) {
		CHECK_STR(err, "");
		free(keep);
		return;
	}
	CHECK_U64(d->disk, 1);
	CHECK_U64(d->codec, codec);
	CHECK_U64(d->raw_len, len);
	CHECK_U64(d->offset, 1ull << 40);
	CHECK_U64(d->payload_len, n - FERRY_WIRE_DATA_HDR_LEN);
	/* Compression did something. */
	if (codec != FERRY_CODEC_RAW && how != FILL_RANDOM)
		CHECK(d->payload_len < len / 4);
	dst = malloc(len);
	CHECK(ferry_codec_decode(codec, d->payload, d->payload_len, dst, len,
				 d->xxh3, err, sizeof(err)) == 0);
	CHECK(!memcmp(dst, src, len));
	free(dst);
	free(keep);
}

static void test_round_trip_data(void)
{
	static const uint32_t lens[] = { 512, 4096, 65536,
					 FERRY_WIRE_MAX_DATA };
	uint8_t codec;
	unsigned int i;
	int how;

	/* Random 1 MiB through lz4 is the largest frame there is. */
	for (codec = 0; codec <= FERRY_CODEC_LZ4; codec++)
		for (how = FILL_ZERO; how <= FILL_RANDOM; how++)
			for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++)
				data_round_trip(codec, (enum fill)how, lens[i]);
}

static void test_round_trip_small(void)
{
	struct ferry_zero z = { .disk = 63, .offset = 1ull << 50,
				.length = 512 };
	struct ferry_hash_req q = { .disk = 2, .chunk = 65536,
				    .offset = 65536ull * 7,
				    .length = 65536ull * 4096 };
	struct ferry_sync_mark s = { .disk = 5, .offset = 1ull << 33 };
	struct ferry_cp c = { .cp_id = 1, .time_ms = 1795329000000ull };
	uint8_t hashes[3 * FERRY_WIRE_HASH_LEN];
	struct ferry_hash_resp r = { .disk = 2, .chunk = 4096, .offset = 8192,
				     .count = 3, .hashes = hashes };
	uint8_t *keep;
	size_t n;

	n = ferry_wire_encode_zero(frame, sizeof(frame), 3, &z);
	CHECK_U64(n, HDR + 24);
	CHECK(decode(frame, n, &msg) == 0);
	CHECK_U64(msg.hdr.seq, 3);
	CHECK_U64(msg.u.zero.disk, 63);
	CHECK_U64(msg.u.zero.offset, 1ull << 50);
	CHECK_U64(msg.u.zero.length, 512);

	n = ferry_wire_encode_hash_req(frame, sizeof(frame), 4, &q);
	CHECK_U64(n, HDR + 24);
	CHECK(decode(frame, n, &msg) == 0);
	CHECK_U64(msg.u.hash_req.disk, 2);
	CHECK_U64(msg.u.hash_req.chunk, 65536);
	CHECK_U64(msg.u.hash_req.offset, 65536ull * 7);
	CHECK_U64(msg.u.hash_req.length, 65536ull * 4096);

	ferry_hash128("a", 1, hashes);
	ferry_hash128("b", 1, hashes + 16);
	ferry_hash128("c", 1, hashes + 32);
	n = ferry_wire_encode_hash_resp(frame, sizeof(frame), 4, &r);
	CHECK_U64(n, HDR + 24 + 48);
	CHECK(decode_keep(frame, n, &msg, &keep) == 0);
	CHECK_U64(msg.u.hash_resp.count, 3);
	CHECK_U64(msg.u.hash_resp.chunk, 4096);
	CHECK_U64(msg.u.hash_resp.offset, 8192);
	CHECK(!memcmp(msg.u.hash_resp.hashes, hashes, sizeof(hashes)));
	free(keep);

	n = ferry_wire_encode_sync_mark(frame, sizeof(frame), 5, &s);
	CHECK_U64(n, HDR + 16);
	CHECK(decode(frame, n, &msg) == 0);
	CHECK_U64(msg.u.sync_mark.disk, 5);
	CHECK_U64(msg.u.sync_mark.offset, 1ull << 33);

	n = ferry_wire_encode_cp(frame, sizeof(frame), 6, &c);
	CHECK(decode(frame, n, &msg) == 0);
	CHECK_U64(msg.u.cp.cp_id, 1);
	CHECK_U64(msg.u.cp.time_ms, 1795329000000ull);

	n = ferry_wire_encode_ack(frame, sizeof(frame), 6);
	CHECK(decode(frame, n, &msg) == 0);
	CHECK_U64(msg.hdr.type, FERRY_F_ACK);
	CHECK_U64(msg.hdr.seq, 6);

	n = ferry_wire_encode_ping(frame, sizeof(frame), FERRY_F_PING, 7,
				   0xdeadbeefcafef00dull);
	CHECK(decode(frame, n, &msg) == 0);
	CHECK_U64(msg.hdr.type, FERRY_F_PING);
	CHECK_U64(msg.u.nonce, 0xdeadbeefcafef00dull);
	n = ferry_wire_encode_ping(frame, sizeof(frame), FERRY_F_PONG, 7, 1);
	CHECK(decode(frame, n, &msg) == 0);
	CHECK_U64(msg.hdr.type, FERRY_F_PONG);
	CHECK_U64(msg.u.nonce, 1);

	n = ferry_wire_encode_error(frame, sizeof(frame), 8, FERRY_ERR_FATAL,
				    FERRY_E_NOSPC,
				    "disk 0: staging volume full");
	CHECK(decode_keep(frame, n, &msg, &keep) == 0);
	CHECK_U64(msg.hdr.flags, FERRY_ERR_FATAL);
	CHECK_U64(msg.u.error.code, FERRY_E_NOSPC);
	CHECK_U64(msg.u.error.message.len, 27);
	CHECK(!memcmp(msg.u.error.message.s, "disk 0: staging volume full",
		      27));
	free(keep);
	n = ferry_wire_encode_error(frame, sizeof(frame), 0, 0,
				    FERRY_E_INTERNAL, NULL);
	CHECK_U64(n, HDR + 10);
	CHECK(decode(frame, n, &msg) == 0);
	CHECK_U64(msg.hdr.flags, 0);
	CHECK_U64(msg.u.error.message.len, 0);

	n = ferry_wire_encode_bye(frame, sizeof(frame), 9);
	CHECK(decode(frame, n, &msg) == 0);
	CHECK_U64(msg.hdr.type, FERRY_F_BYE);
}

static void test_header_refusals(void)
{
	uint8_t f[HDR + 64] = { 0 };
	size_t n;

	n = mk(f, 0, 0, 1, NULL, 0);
	REFUSED(f, n, "frame type 0 is unknown");
	n = mk(f, 14, 0, 1, NULL, 0);
	REFUSED(f, n, "frame type 14 is unknown");
	n = mk(f, 255, 0, 1, NULL, 0);
	REFUSED(f, n, "frame type 255 is unknown");

	n = mk(f, FERRY_F_ACK, 0, 1, NULL, 0);
	CHECK(decode(f, n, &msg) == 0);
	f[7] = 1;
	REFUSED(f, n, "ACK header reserved bytes are 0x0001, not 0");
	f[7] = 0;
	f[6] = 0x80;
	REFUSED(f, n, "reserved");
	f[6] = 0;
	f[5] = FERRY_ERR_FATAL;
	REFUSED(f, n, "ACK flags 0x01 are not defined");

	n = mk(f, FERRY_F_ERROR, 0x02, 1, "\0\0\0\1\0\0\0\0\0\0", 10);
	REFUSED(f, n, "ERROR flags 0x02 are not defined");

	n = mk(f, FERRY_F_ACK, 0, 1, "x", 1);
	REFUSED(f, n, "ACK payload length 1 is not 0");
	n = mk(f, FERRY_F_BYE, 0, 1, "x", 1);
	REFUSED(f, n, "BYE payload length 1 is not 0");
	n = mk(f, FERRY_F_PING, 0, 1, "1234567", 7);
	REFUSED(f, n, "PING payload length 7 is not 8");
	n = mk(f, FERRY_F_PONG, 0, 1, "123456789", 9);
	REFUSED(f, n, "PONG payload length 9 is not 8");
	n = mk(f, FERRY_F_CP, 0, 1, "123456789", 9);
	REFUSED(f, n, "CP payload length 9 is not 16");

	/* Oversized: only the header is looked at. */
	be32(f, FERRY_WIRE_MAX_PAYLOAD + 1);
	f[4] = FERRY_F_DATA;
	CHECK(ferry_wire_decode_hdr(f, &msg.hdr, err, sizeof(err)) == -1);
	CHECK_HAS(err, "DATA payload length 1056769 is above the limit, 1056768");
	be32(f, 0xffffffff);
	CHECK(ferry_wire_decode_hdr(f, &msg.hdr, err, sizeof(err)) == -1);
	CHECK_HAS(err, "above the limit");
	be32(f, FERRY_WIRE_MAX_PAYLOAD);
	CHECK(ferry_wire_decode_hdr(f, &msg.hdr, err, sizeof(err)) == 0);
	be32(f, 32);
	CHECK(ferry_wire_decode_hdr(f, &msg.hdr, err, sizeof(err)) == -1);
	CHECK_HAS(err, "DATA payload length 32 is below the minimum, 33");
	be32(f, 9623);
	f[4] = FERRY_F_HELLO;
	CHECK(ferry_wire_decode_hdr(f, &msg.hdr, err, sizeof(err)) == -1);
	CHECK_HAS(err, "HELLO payload length 9623 is above the limit, 9622");
	be32(f, 24 + 4097 * 16);
	f[4] = FERRY_F_HASH_RESP;
	CHECK(ferry_wire_decode_hdr(f, &msg.hdr, err, sizeof(err)) == -1);
	CHECK_HAS(err, "HASH_RESP payload length 65576 is above the limit");
	be32(f, 10 + 1025);
	f[4] = FERRY_F_ERROR;
	CHECK(ferry_wire_decode_hdr(f, &msg.hdr, err, sizeof(err)) == -1);
	CHECK_HAS(err, "ERROR payload length 1035 is above the limit, 1034");
	be32(f, 16 + 65 * 40);
	f[4] = FERRY_F_WELCOME;
	CHECK(ferry_wire_decode_hdr(f, &msg.hdr, err, sizeof(err)) == -1);
	CHECK_HAS(err, "WELCOME payload length 2616 is above the limit, 2576");

	/* HELLO and WELCOME are seq 1. */
	{
		struct ferry_hello h;

		make_hello(&h);
		n = hello_frame(&h);
		be64(frame + 8, 2);
		REFUSED(frame, n, "HELLO seq 2 is not 1");
		CHECK_U64(ferry_wire_encode_hello(frame, sizeof(frame), 2, &h),
			  0);
	}

	/* The payload decoder checks the header again. */
	msg.hdr = (struct ferry_hdr){ .len = 5, .type = FERRY_F_ACK };
	CHECK(ferry_wire_decode(&msg.hdr, f, &msg, err, sizeof(err)) == -1);
	CHECK_HAS(err, "ACK payload length 5 is not 0");
	msg.hdr = (struct ferry_hdr){ .len = 0, .type = 99 };
	CHECK(ferry_wire_decode(&msg.hdr, f, &msg, err, sizeof(err)) == -1);
	CHECK_HAS(err, "frame type 99 is unknown");
}

/* Ways to spoil a HELLO, and what the decoder says about each. */
static const struct hello_fault {
	const char *field;	/* what spoil_hello() changes */
	const char *value;	/* string, or NULL for a number */
	uint64_t num;
	const char *want;
} hello_faults[] = {
	{ "min", NULL, 0, "HELLO min_version 0 is not a version" },
	{ "max", NULL, 0, "HELLO min_version 1 is above max_version 0" },
	{ "a", "", 0, "HELLO agent_version is empty" },
	{ "ilong", NULL, 0,
	  "HELLO source_server_id is 129 bytes, more than 128" },
	{ "n", NULL, 0, "HELLO n_disks 0 is not in 1..64" },
	{ "1bs", NULL, 1024,
	  "HELLO disks[1].block_size 1024 is not 512 or 4096" },
	{ "0size", NULL, 0, "HELLO disks[0].size is 0" },
	{ "0size", NULL, 1000,
	  "HELLO disks[0].size 1000 is not a multiple of 512" },
	{ "1", "/dev/vda", 0,
	  "HELLO disks[1].name \"/dev/vda\" repeats disks[0]" },
	{ "1", "", 0, "HELLO disks[1].name is empty" },
	/* overlong '/', surrogate, no such lead byte, above U+10FFFF, cut
	 * short, lone continuation byte */
	{ "0", "/dev/\xc0\xaf", 0,
	  "HELLO disks[0].name is not valid UTF-8 at byte 5" },
	{ "0", "a\xed\xa0\x80", 0,
	  "HELLO disks[0].name is not valid UTF-8 at byte 1" },
	{ "0", "a\xf5\x80\x80\x80", 0,
	  "HELLO disks[0].name is not valid UTF-8 at byte 1" },
	{ "0", "\xf4\x90\x80\x80", 0,
	  "HELLO disks[0].name is not valid UTF-8 at byte 0" },
	{ "0", "ab\xe2\x82", 0,
	  "HELLO disks[0].name is not valid UTF-8 at byte 2" },
	{ "0", "\x80", 0, "HELLO disks[0].name is not valid UTF-8 at byte 0" },
	{ "0", "sda\nsdb", 0,
	  "HELLO disks[0].name has a control character at byte 3" },
	{ "0", "sda\x7f", 0,
	  "HELLO disks[0].name has a control character at byte 3" },
	{ "0", "sda\xc2\x85", 0,	/* U+0085, a C1 control */
	  "HELLO disks[0].name has a control character at byte 3" },
	{ "i", "s-\t1", 0,
	  "HELLO source_server_id has a control character at byte 2" },
	{ "nul", NULL, 0,
	  "HELLO disks[1].name has a control character at byte 2" },
};

static void spoil_hello(struct ferry_hello *h, const struct hello_fault *f)
{
	static char long_id[FERRY_WIRE_MAX_NAME + 1];

	memset(long_id, 'x', sizeof(long_id));
	if (!strcmp(f->field, "min"))
		h->min_version = 0;
	else if (!strcmp(f->field, "max"))
		h->max_version = 0;
	else if (!strcmp(f->field, "a"))
		h->agent_version = str(f->value);
	else if (!strcmp(f->field, "i"))
		h->source_server_id = str(f->value);
	else if (!strcmp(f->field, "ilong"))
		h->source_server_id = (struct ferry_str){ .s = long_id,
							  .len = 129 };
	else if (!strcmp(f->field, "n"))
		h->n_disks = 0;
	else if (!strcmp(f->field, "1bs"))
		h->disks[1].block_size = (uint32_t)f->num;
	else if (!strcmp(f->field, "0size"))
		h->disks[0].size = f->num;
	else if (!strcmp(f->field, "nul"))
		h->disks[1].name = (struct ferry_str){ .s = "sd\0a", .len = 4 };
	else
		h->disks[f->field[0] - '0'].name = str(f->value);
}

/* HELLO from H without any check: what a broken or hostile agent sends. */
static size_t hello_by_hand(const struct ferry_hello *h)
{
	uint8_t *p = frame + HDR;
	unsigned int i;

	memcpy(p, FERRY_WIRE_MAGIC, 8);
	be16(p + 8, h->min_version);
	be16(p + 10, h->max_version);
	be32(p + 12, 0);
	p += 16;
	be16(p, h->agent_version.len);
	memcpy(p + 2, h->agent_version.s, h->agent_version.len);
	p += 2 + h->agent_version.len;
	be16(p, h->source_server_id.len);
	memcpy(p + 2, h->source_server_id.s, h->source_server_id.len);
	p += 2 + h->source_server_id.len;
	be16(p, h->n_disks);
	p += 2;
	for (i = 0; i < h->n_disks && i < FERRY_WIRE_MAX_DISKS; i++) {
		be16(p, h->disks[i].name.len);
		memcpy(p + 2, h->disks[i].name.s, h->disks[i].name.len);
		p += 2 + h->disks[i].name.len;
		be64(p, h->disks[i].size);
		be32(p + 8, h->disks[i].block_size);
		be32(p + 12, 0);
		p += 16;
	}
	return mk(frame, FERRY_F_HELLO, 0, 1, frame + HDR,
		  (size_t)(p - frame) - HDR);
}

static void test_hello_refusals(void)
{
	struct ferry_hello h;
	size_t i, n;

	make_hello(&h);
	n = hello_by_hand(&h);
	CHECK_U64(n, hello_frame(&h));
	CHECK(decode(frame, n, &msg) == 0);
	for (i = 0; i < sizeof(hello_faults) / sizeof(hello_faults[0]); i++) {
		make_hello(&h);
		spoil_hello(&h, &hello_faults[i]);
		/* The encoder refuses what the decoder refuses. */
		CHECK_U64(hello_frame(&h), 0);
		n = hello_by_hand(&h);
		REFUSED(frame, n, hello_faults[i].want);
	}

	/* Fields the encoder never gets wrong: magic, reserved, n_disks
	 * above 64, trailing bytes. */
	make_hello(&h);
	n = hello_frame(&h);
	frame[HDR + 7] = '2';
	REFUSED(frame, n, "HELLO magic is not \"FERRYWP1\"");
	n = hello_frame(&h);
	frame[HDR + 13] = 1;
	REFUSED(frame, n, "HELLO reserved byte 1 is 0x01, not 0");
	n = hello_frame(&h);
	frame[n - 1] = 0x40;
	REFUSED(frame, n, "HELLO disks[1] byte 3 is 0x40, not 0");
	n = hello_frame(&h);
	frame[n] = 0;
	be32(frame, (uint32_t)(n + 1 - HDR));
	REFUSED(frame, n + 1, "HELLO has 1 trailing bytes");
	h.n_disks = 1;
	n = hello_frame(&h);
	/* n_disks is the u16 before the first disk's name. */
	be16(frame + HDR + 16 + 7 + 21, 65);
	REFUSED(frame, n, "HELLO n_disks 65 is not in 1..64");
	be16(frame + HDR + 16 + 7 + 21, 2);
	REFUSED(frame, n, "HELLO is truncated in disks[1]");
	/* A string length beyond the payload. */
	n = hello_frame(&h);
	be16(frame + HDR + 16, 0xffff);
	REFUSED(frame, n, "HELLO is truncated in agent_version: 65535 bytes needed");
}

static void test_welcome_refusals(void)
{
	struct ferry_welcome w = {
		.version = 1, .n_disks = 2, .window = 8,
		.window_bytes = FERRY_WIRE_MAX_PAYLOAD,
	};
	size_t n;

	w.disks[0].size = w.disks[1].size = 1 << 20;
	n = ferry_wire_encode_welcome(frame, sizeof(frame), 1, &w);
	CHECK_U64(n, HDR + 96);
	CHECK(decode(frame, n, &msg) == 0);

	be16(frame + HDR + 2, 3);
	REFUSED(frame, n, "WELCOME payload is 96 bytes, 3 disks need 136");
	be16(frame + HDR + 2, 0);
	REFUSED(frame, n, "WELCOME n_disks 0 is not in 1..64");
	be16(frame + HDR + 2, 2);
	be16(frame + HDR, 0);
	REFUSED(frame, n, "WELCOME version 0 is not a version");
	be16(frame + HDR, 1);
	be32(frame + HDR + 4, 0);
	REFUSED(frame, n, "WELCOME window is 0");
	be32(frame + HDR + 4, 8);
	be64(frame + HDR + 8, FERRY_WIRE_MAX_PAYLOAD - 1);
	REFUSED(frame, n, "WELCOME window_bytes 1056767 is below the largest payload");
	be64(frame + HDR + 8, FERRY_WIRE_MAX_PAYLOAD);
	/* disks[1]: volume_id at 56, size 72, sync_mark 80, last_cp 88 */
	be64(frame + HDR + 80, (1 << 20) + 512);
	REFUSED(frame, n, "WELCOME disks[1].sync_mark 1049088 is beyond the size, 1048576");
	be64(frame + HDR + 80, 100);
	REFUSED(frame, n, "WELCOME disks[1].sync_mark 100 is not a multiple of 512");
	be64(frame + HDR + 80, 0);
	be64(frame + HDR + 72, 0);
	REFUSED(frame, n, "WELCOME disks[1].size is 0");
	be64(frame + HDR + 72, 1000);
	REFUSED(frame, n, "WELCOME disks[1].size 1000 is not a multiple of 512");
	be64(frame + HDR + 72, 1 << 20);
	CHECK(decode(frame, n, &msg) == 0);
	be64(frame + 8, 5);
	REFUSED(frame, n, "WELCOME seq 5 is not 1");

	w.window = 0;
	CHECK_U64(ferry_wire_encode_welcome(frame, sizeof(frame), 1, &w), 0);
}

/* DATA fixed fields, by hand, and PAYLOAD_LEN bytes of 0x5a after. */
static size_t data_raw(uint8_t codec, uint32_t raw_len, uint64_t offset,
		       uint32_t payload_len)
{
	uint8_t *p = frame + HDR;

	memset(p, 0, 32);
	be32(p, 0);
	p[4] = codec;
	be32(p + 8, raw_len);
	be64(p + 16, offset);
	be64(p + 24, 0);
	memset(p + 32, 0x5a, payload_len);
	return mk(frame, FERRY_F_DATA, 0, 2, p, 32 + payload_len);
}

static void test_data_refusals(void)
{
	struct ferry_data d = { .codec = FERRY_CODEC_RAW, .raw_len = 512,
				.payload_len = 512 };
	size_t n;

	n = data_raw(FERRY_CODEC_RAW, 512, 512, 512);
	CHECK(decode(frame, n, &msg) == 0);
	n = data_raw(3, 512, 0, 512);
	REFUSED(frame, n, "DATA codec 3 is unknown");
	n = data_raw(FERRY_CODEC_RAW, 1000, 0, 1000);
	REFUSED(frame, n, "DATA raw_len 1000 is not a multiple of 512");
	n = data_raw(FERRY_CODEC_ZSTD, 0, 0, 100);
	REFUSED(frame, n, "DATA raw_len 0 is not in 1..1048576");
	n = data_raw(FERRY_CODEC_ZSTD, FERRY_WIRE_MAX_DATA + 512, 0, 100);
	REFUSED(frame, n, "DATA raw_len 1049088 is not in 1..1048576");
	n = data_raw(FERRY_CODEC_RAW, 512, 100, 512);
	REFUSED(frame, n, "DATA offset 100 is not a multiple of 512");
	n = data_raw(FERRY_CODEC_RAW, 1024, UINT64_MAX - 511, 1024);
	REFUSED(frame, n, "DATA offset + raw_len 18446744073709551104 + 1024 does not fit in 64 bits");
	n = data_raw(FERRY_CODEC_RAW, 512, 0, 511);
	REFUSED(frame, n, "DATA raw payload is 511 bytes, raw_len is 512");
	n = data_raw(FERRY_CODEC_RAW, 512, 0, 513);
	REFUSED(frame, n, "DATA raw payload is 513 bytes, raw_len is 512");
	n = data_raw(FERRY_CODEC_ZSTD, 512,
		     0, (uint32_t)ZSTD_compressBound(512) + 1);
	REFUSED(frame, n, "DATA zstd payload is 578 bytes, not in 1..577 for raw_len 512");
	n = data_raw(FERRY_CODEC_LZ4, 512, 0, LZ4_compressBound(512) + 1);
	REFUSED(frame, n, "DATA lz4 payload is 531 bytes, not in 1..530");
	n = data_raw(FERRY_CODEC_RAW, 512, 0, 512);
	frame[HDR + 6] = 1;
	REFUSED(frame, n, "DATA reserved byte 1 is 0x01, not 0");
	n = data_raw(FERRY_CODEC_RAW, 512, 0, 512);
	frame[HDR + 15] = 0x80;
	REFUSED(frame, n, "DATA reserved byte 3 is 0x80, not 0");

	/* The encoder refuses what the decoder would. */
	CHECK_U64(ferry_wire_encode_data_hdr(frame, sizeof(frame), 1, &d),
		  FERRY_WIRE_DATA_HDR_LEN);
	CHECK_U64(ferry_wire_encode_data_hdr(frame, FERRY_WIRE_DATA_HDR_LEN - 1,
					     1, &d), 0);
	d.raw_len = 1000;
	CHECK_U64(ferry_wire_encode_data_hdr(frame, sizeof(frame), 1, &d), 0);
	d.raw_len = 512;
	d.payload_len = 0;
	CHECK_U64(ferry_wire_encode_data_hdr(frame, sizeof(frame), 1, &d), 0);
	d.codec = FERRY_CODEC_ZSTD;
	CHECK_U64(ferry_wire_encode_data_hdr(frame, sizeof(frame), 1, &d), 0);
}

/* A fixed 24-byte frame of TYPE: u32 A; u32 B; u64 C; u64 D. */
static size_t fixed24(uint8_t type, uint32_t a, uint32_t b, uint64_t c,
		      uint64_t d)
{
	uint8_t p[24];

	be32(p, a);
	be32(p + 4, b);
	be64(p + 8, c);
	be64(p + 16, d);
	return mk(frame, type, 0, 3, p, 24);
}

static void test_small_refusals(void)
{
	uint8_t p[24 + 2 * 16] = { 0 };
	size_t n;

	n = fixed24(FERRY_F_ZERO, 0, 0, 512, 512);
	CHECK(decode(frame, n, &msg) == 0);
	n = fixed24(FERRY_F_ZERO, 0, 0, 512, 0);
	REFUSED(frame, n, "ZERO length is 0");
	n = fixed24(FERRY_F_ZERO, 0, 0, 100, 512);
	REFUSED(frame, n, "ZERO offset 100 is not a multiple of 512");
	n = fixed24(FERRY_F_ZERO, 0, 0, 512, 1000);
	REFUSED(frame, n, "ZERO length 1000 is not a multiple of 512");
	n = fixed24(FERRY_F_ZERO, 0, 0, UINT64_MAX - 511, 1024);
	REFUSED(frame, n, "ZERO offset + length");
	n = fixed24(FERRY_F_ZERO, 0, 1, 512, 512);
	REFUSED(frame, n, "ZERO reserved byte 3 is 0x01, not 0");

	n = fixed24(FERRY_F_HASH_REQ, 0, 4096, 4096, 1);
	CHECK(decode(frame, n, &msg) == 0);
	n = fixed24(FERRY_F_HASH_REQ, 0, 3000, 0, 4096);
	REFUSED(frame, n, "HASH_REQ chunk 3000 is not a power of two in 4096..1048576");
	n = fixed24(FERRY_F_HASH_REQ, 0, 2048, 0, 4096);
	REFUSED(frame, n, "HASH_REQ chunk 2048 is not a power of two");
	n = fixed24(FERRY_F_HASH_REQ, 0, 2 << 20, 0, 4096);
	REFUSED(frame, n, "HASH_REQ chunk 2097152 is not a power of two");
	n = fixed24(FERRY_F_HASH_REQ, 0, 0, 0, 4096);
	REFUSED(frame, n, "HASH_REQ chunk 0 is not a power of two");
	n = fixed24(FERRY_F_HASH_REQ, 0, 8192, 4096, 4096);
	REFUSED(frame, n, "HASH_REQ offset 4096 is not a multiple of the chunk, 8192");
	n = fixed24(FERRY_F_HASH_REQ, 0, 8192, 0, 0);
	REFUSED(frame, n, "HASH_REQ length is 0");
	n = fixed24(FERRY_F_HASH_REQ, 0, 8192, 0, 8192ull * 4096 + 1);
	REFUSED(frame, n, "HASH_REQ length 33554433 is more than 4096 chunks of 8192");
	n = fixed24(FERRY_F_HASH_REQ, 0, 1 << 20, UINT64_MAX - ((1 << 20) - 1),
		    1 << 20);
	REFUSED(frame, n, "HASH_REQ offset + length");

	/* HASH_RESP: disk, chunk, offset, count, reserved, hashes */
	be32(p + 4, 4096);
	be32(p + 16, 2);
	n = mk(frame, FERRY_F_HASH_RESP, 0, 3, p, sizeof(p));
	CHECK(decode(frame, n, &msg) == 0);
	be32(p + 16, 3);
	n = mk(frame, FERRY_F_HASH_RESP, 0, 3, p, sizeof(p));
	REFUSED(frame, n, "HASH_RESP count 3 does not match its 32 bytes of hashes");
	be32(p + 16, 1);
	n = mk(frame, FERRY_F_HASH_RESP, 0, 3, p, sizeof(p));
	REFUSED(frame, n, "HASH_RESP count 1 does not match its 32 bytes");
	be32(p + 16, 0);
	n = mk(frame, FERRY_F_HASH_RESP, 0, 3, p, 24 + 16);
	REFUSED(frame, n, "HASH_RESP count 0 does not match its 16 bytes");
	be32(p + 16, 0x10000001);	/* count * 16 wraps in 32 bits */
	n = mk(frame, FERRY_F_HASH_RESP, 0, 3, p, 24 + 16);
	REFUSED(frame, n, "HASH_RESP count 268435457 does not match");
	be32(p + 16, 2);
	be32(p + 4, 5000);
	n = mk(frame, FERRY_F_HASH_RESP, 0, 3, p, sizeof(p));
	REFUSED(frame, n, "HASH_RESP chunk 5000 is not a power of two");
	be32(p + 4, 4096);
	be64(p + 8, 512);
	n = mk(frame, FERRY_F_HASH_RESP, 0, 3, p, sizeof(p));
	REFUSED(frame, n, "HASH_RESP offset 512 is not a multiple of the chunk");
	be64(p + 8, UINT64_MAX - 4095);
	n = mk(frame, FERRY_F_HASH_RESP, 0, 3, p, sizeof(p));
	REFUSED(frame, n, "HASH_RESP offset + chunks");
	be64(p + 8, 0);
	p[23] = 9;
	n = mk(frame, FERRY_F_HASH_RESP, 0, 3, p, sizeof(p));
	REFUSED(frame, n, "HASH_RESP reserved byte 3 is 0x09, not 0");
	p[23] = 0;

	memset(p, 0, sizeof(p));
	be64(p + 8, 4096);
	n = mk(frame, FERRY_F_SYNC_MARK, 0, 3, p, 16);
	CHECK(decode(frame, n, &msg) == 0);
	be64(p + 8, 4097);
	n = mk(frame, FERRY_F_SYNC_MARK, 0, 3, p, 16);
	REFUSED(frame, n, "SYNC_MARK offset 4097 is not a multiple of 512");
	be64(p + 8, 0);
	p[4] = 1;
	n = mk(frame, FERRY_F_SYNC_MARK, 0, 3, p, 16);
	REFUSED(frame, n, "SYNC_MARK reserved byte 0 is 0x01, not 0");

	memset(p, 0, sizeof(p));
	n = mk(frame, FERRY_F_CP, 0, 3, p, 16);
	REFUSED(frame, n, "CP cp_id is 0");
}

static size_t error_raw(uint32_t code, const char *msg_bytes, uint16_t len,
			size_t extra)
{
	uint8_t *p = frame + HDR;

	be32(p, code);
	be32(p + 4, 0);
	be16(p + 8, len);
	memcpy(p + 10, msg_bytes, len);
	memset(p + 10 + len, 0, extra);
	return mk(frame, FERRY_F_ERROR, 0, 0, p, 10 + len + extra);
}

static void test_error_refusals(void)
{
	char long_msg[2000];
	size_t n;

	n = error_raw(FERRY_E_RANGE, "ok", 2, 0);
	CHECK(decode(frame, n, &msg) == 0);
	n = error_raw(0, "ok", 2, 0);
	REFUSED(frame, n, "ERROR code 0 is unknown");
	n = error_raw(11, "ok", 2, 0);
	REFUSED(frame, n, "ERROR code 11 is unknown");
	n = error_raw(FERRY_E_IO, "bad \xff", 5, 0);
	REFUSED(frame, n, "ERROR message is not valid UTF-8 at byte 4");
	n = error_raw(FERRY_E_IO, "bad\r\n", 5, 0);
	REFUSED(frame, n, "ERROR message has a control character at byte 3");
	n = error_raw(FERRY_E_IO, "ok", 2, 1);
	REFUSED(frame, n, "ERROR has 1 trailing bytes");
	n = error_raw(FERRY_E_IO, "ok", 2, 0);
	be16(frame + HDR + 8, 3);
	REFUSED(frame, n, "ERROR is truncated in message: 3 bytes needed, 2 left");
	n = error_raw(FERRY_E_IO, "ok", 2, 0);
	frame[HDR + 5] = 2;
	REFUSED(frame, n, "ERROR reserved byte 1 is 0x02, not 0");

	/* The encoder mends what it would otherwise refuse. */
	CHECK_U64(ferry_wire_encode_error(frame, sizeof(frame), 1, 0, 0, "x"),
		  0);
	CHECK_U64(ferry_wire_encode_error(frame, sizeof(frame), 1, 4,
					  FERRY_E_IO, "x"), 0);
	n = ferry_wire_encode_error(frame, sizeof(frame), 1, 0, FERRY_E_IO,
				    "line\none\t\xff\xc2\x85 \xe2\x82\xac");
	CHECK(decode(frame, n, &msg) == 0);
	CHECK_U64(msg.u.error.message.len, 16);
	CHECK(!memcmp(frame + HDR + 10, "line?one???? \xe2\x82\xac", 16));
	/* Cut at the limit, before a 3-byte character that would cross it. */
	memset(long_msg, 'a', sizeof(long_msg));
	memcpy(long_msg + FERRY_WIRE_MAX_STRING - 1, "\xe2\x82\xac", 3);
	long_msg[sizeof(long_msg) - 1] = 0;
	n = ferry_wire_encode_error(frame, sizeof(frame), 1, 0, FERRY_E_IO,
				    long_msg);
	CHECK_U64(n, HDR + 10 + FERRY_WIRE_MAX_STRING - 1);
	CHECK(decode(frame, n, &msg) == 0);
	memset(long_msg, 'b', sizeof(long_msg) - 1);
	n = ferry_wire_encode_error(frame, sizeof(frame), 1, 0, FERRY_E_IO,
				    long_msg);
	CHECK_U64(n, HDR + 10 + FERRY_WIRE_MAX_STRING);
	CHECK(decode(frame, n, &msg) == 0);
}

/* Every payload length short of the whole is refused, and never read
 * beyond (the sanitizer build checks). */
static void truncations(const char *what, size_t n)
{
	static uint8_t whole[BIG];
	unsigned int refused = 0;
	size_t len = n - HDR, cut;
	struct ferry_hdr h;

	memcpy(whole, frame, n);
	CHECK(decode(whole, n, &msg) == 0);
	CHECK(ferry_wire_decode_hdr(whole, &h, err, sizeof(err)) == 0);
	for (cut = 0; cut < len; cut++) {
		uint8_t *p = malloc(cut ? cut : 1);

		memcpy(p, whole + HDR, cut);
		h.len = (uint32_t)cut;
		if (ferry_wire_decode(&h, p, &msg, err, sizeof(err)) == -1)
			refused++;
		else
			fprintf(stderr, "%s cut to %zu bytes was accepted\n",
				what, cut);
		free(p);
	}
	CHECK_U64(refused, len);
}

static void test_truncated(void)
{
	struct ferry_hello h;
	struct ferry_welcome w = { .version = 1, .n_disks = 2, .window = 1,
				   .window_bytes = 1 << 30 };
	uint8_t hashes[5 * 16] = { 1, 2, 3 };
	struct ferry_hash_resp r = { .chunk = 1 << 20, .count = 5,
				     .hashes = hashes };
	struct ferry_zero z = { .offset = 512, .length = 512 };
	static uint8_t src[8192];

	make_hello(&h);
	truncations("HELLO", hello_frame(&h));
	w.disks[0].size = w.disks[1].size = 512;
	truncations("WELCOME",
		    ferry_wire_encode_welcome(frame, sizeof(frame), 1, &w));
	truncations("HASH_RESP",
		    ferry_wire_encode_hash_resp(frame, sizeof(frame), 1, &r));
	truncations("ZERO", ferry_wire_encode_zero(frame, sizeof(frame), 1, &z));
	truncations("ERROR", ferry_wire_encode_error(frame, sizeof(frame), 1, 0,
						     FERRY_E_BUSY, "busy"));
	fill(src, sizeof(src), FILL_RANDOM);
	/* DATA: cut payloads fail the length rules (RAW) ... */
	truncations("DATA raw", data_frame(FERRY_CODEC_RAW, src, 8192, 0));
}

/* Codecs on their own: every refusal, and DST is never overrun. */
#define GUARD 64

static int codec_decode_guarded(uint8_t codec, const void *src, size_t len,
				size_t raw_len, uint64_t xxh3, uint8_t *out)
{
	uint8_t *dst = malloc(raw_len + GUARD);
	size_t i;
	int rc, overrun = 0;

	memset(dst, 0xa5, raw_len + GUARD);
	rc = ferry_codec_decode(codec, src, len, dst, raw_len, xxh3, err,
				sizeof(err));
	for (i = raw_len; i < raw_len + GUARD; i++)
		overrun |= dst[i] != 0xa5;
	CHECK(!overrun);
	if (out)
		memcpy(out, dst, raw_len);
	free(dst);
	return rc;
}

static void test_codecs(void)
{
	static uint8_t src[65536], enc[70000], out[65536];
	size_t n, len = sizeof(src);
	uint64_t h;
	uint8_t codec;

	fill(src, len, FILL_TEXT);
	h = ferry_hash64(src, len);

	/* Unknown codecs and lengths. */
	CHECK_U64(ferry_codec_bound(3, 100), 0);
	CHECK_U64(ferry_codec_encode(3, 1, src, 100, enc, sizeof(enc)), 0);
	CHECK(codec_decode_guarded(3, src, 100, 100, 0, NULL) == -1);
	CHECK_HAS(err, "DATA codec 3 is unknown");
	CHECK(codec_decode_guarded(FERRY_CODEC_RAW, src, 0, 0, 0, NULL) == -1);
	CHECK_HAS(err, "DATA raw_len 0 is not in 1..1048576");
	CHECK_U64(ferry_codec_bound(FERRY_CODEC_RAW, 512), 512);
	CHECK_U64(ferry_codec_bound(FERRY_CODEC_ZSTD, FERRY_WIRE_MAX_DATA),
		  ZSTD_compressBound(FERRY_WIRE_MAX_DATA));
	CHECK_U64(ferry_codec_bound(FERRY_CODEC_LZ4, FERRY_WIRE_MAX_DATA),
		  LZ4_compressBound(FERRY_WIRE_MAX_DATA));
	/* The worst case of either codec fits a DATA frame. */
	CHECK(32 + ferry_codec_bound(FERRY_CODEC_LZ4, FERRY_WIRE_MAX_DATA) <=
	      FERRY_WIRE_MAX_PAYLOAD);
	CHECK(32 + ferry_codec_bound(FERRY_CODEC_ZSTD, FERRY_WIRE_MAX_DATA) <=
	      FERRY_WIRE_MAX_PAYLOAD);

	for (codec = 0; codec <= FERRY_CODEC_LZ4; codec++) {
		n = ferry_codec_encode(codec, 3, src, len, enc, sizeof(enc));
		CHECK(n > 0);
		CHECK(codec_decode_guarded(codec, enc, n, len, h, out) == 0);
		CHECK(!memcmp(out, src, len));
		/* Hash mismatch. */
		CHECK(codec_decode_guarded(codec, enc, n, len, h ^ 1, NULL) ==
		      -1);
		CHECK_HAS(err, "DATA xxh3 of the decoded bytes is");
		CHECK_HAS(err, ", the frame says");
		/* One byte short, one byte more. */
		CHECK(codec_decode_guarded(codec, enc, n - 1, len, h, NULL) ==
		      -1);
		enc[n] = 0;
		CHECK(codec_decode_guarded(codec, enc, n + 1, len, h, NULL) ==
		      -1);
		/* Promises more or less than it holds. */
		CHECK(codec_decode_guarded(codec, enc, n, len - 512, h,
					   NULL) == -1);
		CHECK(codec_decode_guarded(codec, enc, n, len + 512, h,
					   NULL) == -1);
		/* Encoding into too small a buffer fails, not overruns. */
		CHECK_U64(ferry_codec_encode(codec, 3, src, len, enc, 10), 0);
	}
	n = ferry_codec_encode(FERRY_CODEC_RAW, 0, src, len, enc, sizeof(enc));
	CHECK(codec_decode_guarded(FERRY_CODEC_RAW, enc, n - 1, len, h,
				   NULL) == -1);
	CHECK_HAS(err, "DATA raw payload is 65535 bytes, raw_len is 65536");

	/* zstd: messages, and every corrupted byte of a frame is refused. */
	n = ferry_codec_encode(FERRY_CODEC_ZSTD, 3, src, len, enc, sizeof(enc));
	CHECK(codec_decode_guarded(FERRY_CODEC_ZSTD, enc, n, len - 512, h,
				   NULL) == -1);
	CHECK_HAS(err, "DATA zstd frame holds 65536 bytes, raw_len is 65024");
	enc[n] = 0;
	CHECK(codec_decode_guarded(FERRY_CODEC_ZSTD, enc, n + 1, len, h,
				   NULL) == -1);
	CHECK_HAS(err, "DATA zstd ");
	{
		size_t i, refused = 0;

		for (i = 0; i < n; i++) {
			enc[i] ^= 0x21;
			refused += codec_decode_guarded(FERRY_CODEC_ZSTD, enc,
							n, len, h, NULL) == -1;
			enc[i] ^= 0x21;
		}
		CHECK_U64(refused, n);
	}
	/* Two frames back to back: the first alone is the payload. */
	{
		size_t n1 = ferry_codec_encode(FERRY_CODEC_ZSTD, 1, src, 512,
					       enc, sizeof(enc));
		size_t n2 = ferry_codec_encode(FERRY_CODEC_ZSTD, 1, src + 512,
					       512, enc + n1, sizeof(enc) - n1);

		CHECK(n1 && n2);
		CHECK(codec_decode_guarded(FERRY_CODEC_ZSTD, enc, n1 + n2,
					   1024, ferry_hash64(src, 1024),
					   NULL) == -1);
		CHECK_HAS(err, "DATA zstd payload has");
		CHECK_HAS(err, "bytes after its frame");
	}
	/* A frame without its content size. */
	{
		ZSTD_CCtx *c = ZSTD_createCCtx();

		ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 0);
		n = ZSTD_compress2(c, enc, sizeof(enc), src, len);
		CHECK(!ZSTD_isError(n));
		ZSTD_freeCCtx(c);
		CHECK(codec_decode_guarded(FERRY_CODEC_ZSTD, enc, n, len, h,
					   NULL) == -1);
		CHECK_HAS(err, "DATA zstd frame does not state its content size");
	}
	/* A skippable frame says it holds nothing. */
	{
		static const uint8_t skip[] = { 0x50, 0x2a, 0x4d, 0x18,
						4, 0, 0, 0, 1, 2, 3, 4 };

		CHECK(codec_decode_guarded(FERRY_CODEC_ZSTD, skip, sizeof(skip),
					   512, 0, NULL) == -1);
	}
	CHECK(codec_decode_guarded(FERRY_CODEC_ZSTD, "garbage!", 8, 512, 0,
				   NULL) == -1);
	CHECK_HAS(err, "DATA zstd frame is malformed");

	/* lz4: a block that decodes to fewer bytes, or cannot decode. */
	n = ferry_codec_encode(FERRY_CODEC_LZ4, 0, src, len, enc, sizeof(enc));
	CHECK(codec_decode_guarded(FERRY_CODEC_LZ4, enc, n, len + 512, h,
				   NULL) == -1);
	CHECK_HAS(err, "DATA lz4 block holds 65536 bytes, raw_len is 66048");
	CHECK(codec_decode_guarded(FERRY_CODEC_LZ4, enc, n, len - 512, h,
				   NULL) == -1);
	CHECK_HAS(err, "DATA lz4 block does not decode");
	{
		size_t i, refused = 0;

		for (i = 0; i < n; i++) {
			enc[i] ^= 0x40;
			refused += codec_decode_guarded(FERRY_CODEC_LZ4, enc,
							n, len, h, NULL) == -1;
			enc[i] ^= 0x40;
		}
		CHECK_U64(refused, n);
	}

	/* Zeros compress to almost nothing and come back. */
	memset(src, 0, len);
	h = ferry_hash64(src, len);
	for (codec = FERRY_CODEC_ZSTD; codec <= FERRY_CODEC_LZ4; codec++) {
		n = ferry_codec_encode(codec, 1, src, len, enc, sizeof(enc));
		CHECK(n > 0 && n < 512);
		CHECK(codec_decode_guarded(codec, enc, n, len, h, out) == 0);
		CHECK(!memcmp(out, src, len));
	}
}

static void test_encoder_bounds(void)
{
	struct ferry_hello h;
	struct ferry_zero z = { .offset = 0, .length = 512 };
	size_t n, cap;

	make_hello(&h);
	n = hello_frame(&h);
	for (cap = 0; cap < n; cap++)
		CHECK_U64(ferry_wire_encode_hello(frame, cap, 1, &h), 0);
	CHECK_U64(ferry_wire_encode_hello(frame, n, 1, &h), n);
	CHECK_U64(ferry_wire_encode_zero(frame, HDR + 23, 1, &z), 0);
	CHECK_U64(ferry_wire_encode_ack(frame, HDR - 1, 1), 0);
	CHECK_U64(ferry_wire_encode_bye(frame, HDR - 1, 1), 0);
	CHECK_U64(ferry_wire_encode_ping(frame, HDR + 7, FERRY_F_PING, 1, 0),
		  0);
	CHECK_U64(ferry_wire_encode_ping(frame, sizeof(frame), FERRY_F_ACK, 1,
					 0), 0);
	CHECK_U64(ferry_wire_encode_error(frame, HDR + 10, 1, 0, FERRY_E_IO,
					  "x"), 0);
	h.n_disks = 65;
	CHECK_U64(ferry_wire_encode_hello(frame, sizeof(frame), 1, &h), 0);
	{
		struct ferry_hash_resp r = { .chunk = 4096, .count = 4097 };
		static uint8_t hs[4097 * 16];

		r.hashes = hs;
		CHECK_U64(ferry_wire_encode_hash_resp(frame, sizeof(frame), 1,
						      &r), 0);
		r.count = 4096;
		CHECK_U64(ferry_wire_encode_hash_resp(frame, sizeof(frame), 1,
						      &r), HDR + 24 + 65536);
		r.hashes = NULL;
		CHECK_U64(ferry_wire_encode_hash_resp(frame, sizeof(frame), 1,
						      &r), 0);
	}
}

static void test_hashes(void)
{
	static uint8_t buf[100000];
	uint8_t h128[16], want128[16];
	XXH128_hash_t x;
	size_t len;

	fill(buf, sizeof(buf), FILL_RANDOM);
	for (len = 0; len < sizeof(buf); len = len * 3 + 1) {
		CHECK_U64(ferry_hash64(buf, len), XXH3_64bits(buf, len));
		x = XXH3_128bits(buf, len);
		be64(want128, x.high64);
		be64(want128 + 8, x.low64);
		ferry_hash128(buf, len, h128);
		CHECK(!memcmp(h128, want128, 16));
	}
	/* Known answers, from the xxhsum tool (its own copy of xxHash):
	 * printf '' | xxhsum -H3; printf ferry | xxhsum -H2 */
	CHECK_U64(ferry_hash64("", 0), 0x2d06800538d394c2ull);
	CHECK_U64(ferry_hash64("ferry", 5), 0xd152ce34ff76fb2bull);
	ferry_hash128("", 0, h128);
	be64(want128, 0x99aa06d3014798d8ull);
	be64(want128 + 8, 0x6001c324468d497full);
	CHECK(!memcmp(h128, want128, 16));
	ferry_hash128("ferry", 5, h128);
	be64(want128, 0x85ca3a0dfcfe5984ull);
	be64(want128 + 8, 0x9331f43fcdbd2eb8ull);
	CHECK(!memcmp(h128, want128, 16));
}

static void test_names(void)
{
	CHECK_STR(ferry_wire_type_name(FERRY_F_HELLO), "HELLO");
	CHECK_STR(ferry_wire_type_name(FERRY_F_HASH_RESP), "HASH_RESP");
	CHECK_STR(ferry_wire_type_name(FERRY_F_BYE), "BYE");
	CHECK_STR(ferry_wire_type_name(0), "UNKNOWN");
	CHECK_STR(ferry_wire_type_name(14), "UNKNOWN");
	CHECK_STR(ferry_wire_error_name(FERRY_E_NOSPC), "NOSPC");
	CHECK_STR(ferry_wire_error_name(FERRY_E_UNKNOWN_DISK), "UNKNOWN_DISK");
	CHECK_STR(ferry_wire_error_name(FERRY_E_INTERNAL), "INTERNAL");
	CHECK_STR(ferry_wire_error_name(0), "UNKNOWN");
	CHECK_STR(ferry_wire_error_name(0xffffffff), "UNKNOWN");
}

int main(void)
{
	RUN(test_known_bytes);
	RUN(test_round_trip_hello);
	RUN(test_round_trip_welcome);
	RUN(test_round_trip_data);
	RUN(test_round_trip_small);
	RUN(test_header_refusals);
	RUN(test_hello_refusals);
	RUN(test_welcome_refusals);
	RUN(test_data_refusals);
	RUN(test_small_refusals);
	RUN(test_error_refusals);
	RUN(test_truncated);
	RUN(test_codecs);
	RUN(test_encoder_bounds);
	RUN(test_hashes);
	RUN(test_names);
	return check_exit();
}
