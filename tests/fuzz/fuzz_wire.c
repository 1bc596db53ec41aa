// SPDX-License-Identifier: GPL-2.0
/*
 * fuzz_wire.c - libFuzzer target for the agent <-> replicator frame
 * decoder (lib/wire.c): headers, payloads and the DATA codecs, as the
 * replicator and the agent meet them on a connection.
 *
 * Input:
 *   byte 0  mode: even = a stream of frames, odd = one codec payload
 *   stream: frames back to back, each a 16-byte header and its payload;
 *           the stream ends at the first refused or cut-short frame.
 *   codec:  u8 codec; u32 raw_len (big-endian, any value); u64 xxh3;
 *           the rest is the encoded data.
 *
 * Beyond "no crash, no sanitizer report", the target checks properties
 * and aborts when one fails:
 *   - a frame the decoder accepts is encoded back to the same bytes (the
 *     encoders check what the decoder checks, the layout is one);
 *   - data that decodes but fails only its hash decodes when given the
 *     right hash, and the bytes written never exceed raw_len (DST is a
 *     heap block of exactly raw_len bytes: ASan sees any overrun).
 * Payloads are copied to heap blocks of exactly their length, so a read
 * past the end is reported too.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"

static uint8_t out[FERRY_WIRE_HDR_LEN + FERRY_WIRE_MAX_PAYLOAD];

static void fail(const char *what, const struct ferry_hdr *h)
{
	fprintf(stderr, "fuzz_wire: %s (frame %s, %u payload bytes)\n", what,
		h ? ferry_wire_type_name(h->type) : "-", h ? h->len : 0);
	abort();
}

/* Decode ENC as CODEC; if only the hash is wrong, it must pass with the
 * right one and give the same bytes. */
static void codec(uint8_t c, const uint8_t *enc, size_t len, size_t raw_len,
		  uint64_t xxh3, const struct ferry_hdr *h)
{
	char err[256];
	uint8_t *dst, *again;
	uint64_t right;

	if (raw_len == 0 || raw_len > FERRY_WIRE_MAX_DATA) {
		/* Refused before DST is touched. */
		if (!ferry_codec_decode(c, enc, len, out, raw_len, xxh3, err,
					sizeof(err)))
			fail("codec accepted a raw_len out of bounds", h);
		return;
	}
	dst = malloc(raw_len);
	if (!dst)
		abort();
	if (!ferry_codec_decode(c, enc, len, dst, raw_len, xxh3, err,
				sizeof(err))) {
		if (ferry_hash64(dst, raw_len) != xxh3)
			fail("codec accepted data that fails its hash", h);
		free(dst);
		return;
	}
	if (strncmp(err, "DATA xxh3 ", 10)) {
		free(dst);
		return;
	}
	right = ferry_hash64(dst, raw_len);
	again = malloc(raw_len);
	if (!again)
		abort();
	if (ferry_codec_decode(c, enc, len, again, raw_len, right, err,
			       sizeof(err)))
		fail("codec refused data with its right hash", h);
	if (memcmp(dst, again, raw_len))
		fail("codec gave different bytes twice", h);
	free(again);
	free(dst);
}

/* The accepted frame M, encoded again, must be FRAME (header and
 * payload) byte for byte. */
static void reencode(const struct ferry_msg *m, const uint8_t *frame)
{
	const struct ferry_hdr *h = &m->hdr;
	size_t want = FERRY_WIRE_HDR_LEN + h->len, n = 0, cmp = want;
	char message[FERRY_WIRE_MAX_STRING + 1];

	switch (h->type) {
	case FERRY_F_HELLO:
		n = ferry_wire_encode_hello(out, sizeof(out), h->seq,
					    &m->u.hello);
		break;
	case FERRY_F_WELCOME:
		n = ferry_wire_encode_welcome(out, sizeof(out), h->seq,
					      &m->u.welcome);
		break;
	case FERRY_F_DATA:
		n = ferry_wire_encode_data_hdr(out, sizeof(out), h->seq,
					       &m->u.data);
		/* The data itself is the caller's, not encoded here. */
		cmp = FERRY_WIRE_DATA_HDR_LEN;
		if (n == cmp)
			n = want;
		break;
	case FERRY_F_ZERO:
		n = ferry_wire_encode_zero(out, sizeof(out), h->seq,
					   &m->u.zero);
		break;
	case FERRY_F_HASH_REQ:
		n = ferry_wire_encode_hash_req(out, sizeof(out), h->seq,
					       &m->u.hash_req);
		break;
	case FERRY_F_HASH_RESP:
		n = ferry_wire_encode_hash_resp(out, sizeof(out), h->seq,
						&m->u.hash_resp);
		break;
	case FERRY_F_SYNC_MARK:
		n = ferry_wire_encode_sync_mark(out, sizeof(out), h->seq,
						&m->u.sync_mark);
		break;
	case FERRY_F_CP:
		n = ferry_wire_encode_cp(out, sizeof(out), h->seq, &m->u.cp);
		break;
	case FERRY_F_ACK:
		n = ferry_wire_encode_ack(out, sizeof(out), h->seq);
		break;
	case FERRY_F_PING:
	case FERRY_F_PONG:
		n = ferry_wire_encode_ping(out, sizeof(out), h->type, h->seq,
					   m->u.nonce);
		break;
	case FERRY_F_ERROR:
		memcpy(message, m->u.error.message.s, m->u.error.message.len);
		message[m->u.error.message.len] = 0;
		n = ferry_wire_encode_error(out, sizeof(out), h->seq, h->flags,
					    m->u.error.code, message);
		break;
	case FERRY_F_BYE:
		n = ferry_wire_encode_bye(out, sizeof(out), h->seq);
		break;
	default:
		fail("decoder accepted an unknown type", h);
	}
	if (n != want)
		fail("the encoder refuses or resizes an accepted frame", h);
	if (memcmp(out, frame, cmp))
		fail("the encoder writes an accepted frame differently", h);
}

static void stream(const uint8_t *p, size_t len)
{
	char err[256];

	while (len >= FERRY_WIRE_HDR_LEN) {
		struct ferry_msg m;
		uint8_t *payload;
		int rc;

		if (ferry_wire_decode_hdr(p, &m.hdr, err, sizeof(err)))
			return;
		if (len - FERRY_WIRE_HDR_LEN < m.hdr.len)
			return;
		payload = malloc(m.hdr.len ? m.hdr.len : 1);
		if (!payload)
			abort();
		memcpy(payload, p + FERRY_WIRE_HDR_LEN, m.hdr.len);
		rc = ferry_wire_decode(&m.hdr, payload, &m, err, sizeof(err));
		if (rc == 0) {
			reencode(&m, p);
			if (m.hdr.type == FERRY_F_DATA)
				codec(m.u.data.codec, m.u.data.payload,
				      m.u.data.payload_len, m.u.data.raw_len,
				      m.u.data.xxh3, &m.hdr);
		} else if (!err[0]) {
			fail("refused without a message", &m.hdr);
		}
		free(payload);
		if (rc)
			return;
		p += FERRY_WIRE_HDR_LEN + m.hdr.len;
		len -= FERRY_WIRE_HDR_LEN + m.hdr.len;
	}
}

static uint64_t be(const uint8_t *p, int n)
{
	uint64_t v = 0;

	while (n--)
		v = v << 8 | *p++;
	return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *enc;

	if (size < 1)
		return 0;
	if (!(data[0] & 1)) {
		stream(data + 1, size - 1);
		return 0;
	}
	if (size < 14)
		return 0;
	/* Exactly the encoded bytes, on the heap. */
	enc = malloc(size - 14 ? size - 14 : 1);
	if (!enc)
		abort();
	memcpy(enc, data + 14, size - 14);
	codec(data[1], enc, size - 14, (size_t)be(data + 2, 4),
	      be(data + 6, 8), NULL);
	free(enc);
	return 0;
}
