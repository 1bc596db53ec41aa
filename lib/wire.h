/* SPDX-License-Identifier: GPL-2.0 */
/*
 * wire.h - encoder and decoder of the agent <-> replicator frames
 * (include/ferry/wire.h has the layout, docs/protocol.md the rules).
 *
 * Decoding never trusts the peer: every length is checked against the
 * bytes present and the protocol's bounds before it is used, and a frame
 * that fails any check is refused with a message naming the field.
 * Decoded messages point into the caller's payload buffer (no copies);
 * they are valid while that buffer is.
 */
#ifndef FERRY_LIB_WIRE_H
#define FERRY_LIB_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "ferry/wire.h"

struct ferry_hdr {
	uint32_t len;
	uint8_t type;
	uint8_t flags;
	uint64_t seq;
};

struct ferry_str {
	const char *s; /* not NUL-terminated */
	uint16_t len;
};

struct ferry_hello_disk {
	struct ferry_str name;
	uint64_t size;
	uint32_t block_size;
};

struct ferry_hello {
	uint16_t min_version, max_version;
	struct ferry_str agent_version;
	struct ferry_str source_server_id;
	uint16_t n_disks;
	struct ferry_hello_disk disks[FERRY_WIRE_MAX_DISKS];
};

struct ferry_welcome_disk {
	uint8_t volume_id[16];
	uint64_t size;
	uint64_t sync_mark;
	uint64_t last_cp;
};

struct ferry_welcome {
	uint16_t version;
	uint16_t n_disks;
	uint32_t window;
	uint64_t window_bytes;
	struct ferry_welcome_disk disks[FERRY_WIRE_MAX_DISKS];
};

struct ferry_data {
	uint32_t disk;
	uint8_t codec;
	uint32_t raw_len;
	uint64_t offset;
	uint64_t xxh3;
	const uint8_t *payload; /* encoded bytes */
	uint32_t payload_len;
};

struct ferry_zero {
	uint32_t disk;
	uint64_t offset, length;
};

struct ferry_hash_req {
	uint32_t disk, chunk;
	uint64_t offset, length;
};

struct ferry_hash_resp {
	uint32_t disk, chunk;
	uint64_t offset;
	uint32_t count;
	const uint8_t *hashes; /* count * FERRY_WIRE_HASH_LEN */
};

struct ferry_sync_mark {
	uint32_t disk;
	uint64_t offset;
};

struct ferry_cp {
	uint64_t cp_id, time_ms;
};

struct ferry_error {
	uint32_t code;
	struct ferry_str message;
};

struct ferry_msg {
	struct ferry_hdr hdr;
	union {
		struct ferry_hello hello;
		struct ferry_welcome welcome;
		struct ferry_data data;
		struct ferry_zero zero;
		struct ferry_hash_req hash_req;
		struct ferry_hash_resp hash_resp;
		struct ferry_sync_mark sync_mark;
		struct ferry_cp cp;
		struct ferry_error error;
		uint64_t nonce; /* PING, PONG */
	} u;
};

/* Decode the 16 header bytes; checks type, reserved bits and the
 * per-type payload bound.  0, or -1 with a message in ERR. */
int ferry_wire_decode_hdr(const uint8_t buf[FERRY_WIRE_HDR_LEN],
			  struct ferry_hdr *h, char *err, size_t errlen);

/* Decode PAYLOAD (H->len bytes) of a frame whose header is H into M,
 * checking every field (but not against a volume: the receiver checks
 * disk indexes and ranges).  0, or -1 with a message in ERR. */
int ferry_wire_decode(const struct ferry_hdr *h, const uint8_t *payload,
		      struct ferry_msg *m, char *err, size_t errlen);

/*
 * Encoders write a whole frame (header and payload) into OUT of CAP
 * bytes and return its length, or 0 if it does not fit or an argument
 * breaks the protocol's bounds.  DATA is written in two parts so that
 * the payload need not be copied: ferry_wire_encode_data_hdr() writes
 * the header and DATA's fixed fields, the caller sends PAYLOAD after.
 * ferry_wire_encode_error() mends rather than refuses its MESSAGE (NULL
 * is ""): cut to FERRY_WIRE_MAX_STRING bytes at a character boundary,
 * control characters and invalid UTF-8 replaced by '?'.
 */
size_t ferry_wire_encode_hello(uint8_t *out, size_t cap, uint64_t seq,
			       const struct ferry_hello *m);
size_t ferry_wire_encode_welcome(uint8_t *out, size_t cap, uint64_t seq,
				 const struct ferry_welcome *m);
#define FERRY_WIRE_DATA_HDR_LEN (FERRY_WIRE_HDR_LEN + 32)
size_t ferry_wire_encode_data_hdr(uint8_t *out, size_t cap, uint64_t seq,
				  const struct ferry_data *m);
size_t ferry_wire_encode_zero(uint8_t *out, size_t cap, uint64_t seq,
			      const struct ferry_zero *m);
size_t ferry_wire_encode_hash_req(uint8_t *out, size_t cap, uint64_t seq,
				  const struct ferry_hash_req *m);
size_t ferry_wire_encode_hash_resp(uint8_t *out, size_t cap, uint64_t seq,
				   const struct ferry_hash_resp *m);
size_t ferry_wire_encode_sync_mark(uint8_t *out, size_t cap, uint64_t seq,
				   const struct ferry_sync_mark *m);
size_t ferry_wire_encode_cp(uint8_t *out, size_t cap, uint64_t seq,
			    const struct ferry_cp *m);
size_t ferry_wire_encode_ack(uint8_t *out, size_t cap, uint64_t seq);
size_t ferry_wire_encode_ping(uint8_t *out, size_t cap, uint8_t type,
			      uint64_t seq, uint64_t nonce);
size_t ferry_wire_encode_error(uint8_t *out, size_t cap, uint64_t seq,
			       uint8_t flags, uint32_t code,
			       const char *message);
size_t ferry_wire_encode_bye(uint8_t *out, size_t cap, uint64_t seq);

/* Name of a frame type / error code for logs ("DATA", "NOSPC"). */
const char *ferry_wire_type_name(uint8_t type);
const char *ferry_wire_error_name(uint32_t code);

/*
 * Data codecs: zstd and lz4 (the libraries), raw.  Encode SRC into DST
 * (capacity ferry_codec_bound(LEN)); returns the encoded length or 0.
 * Decode checks that exactly RAW_LEN bytes come out and that their
 * XXH3-64 equals XXH3; 0 or -1 with a message in ERR.
 */
size_t ferry_codec_bound(uint8_t codec, size_t len);
size_t ferry_codec_encode(uint8_t codec, int level, const void *src,
			  size_t len, void *dst, size_t cap);
int ferry_codec_decode(uint8_t codec, const void *src, size_t len,
		       void *dst, size_t raw_len, uint64_t xxh3, char *err,
		       size_t errlen);
uint64_t ferry_hash64(const void *data, size_t len);	/* XXH3-64 */
void ferry_hash128(const void *data, size_t len,
		   uint8_t out[FERRY_WIRE_HASH_LEN]);	/* XXH3-128, BE */

#endif
