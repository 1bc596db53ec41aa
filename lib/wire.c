// SPDX-License-Identifier: GPL-2.0
/*
 * wire.c - encoder and decoder of the agent <-> replicator frames, and the
 * data codecs (see lib/wire.h; docs/protocol.md is the specification).
 *
 * Decoding reads every field through a bounds-checked reader, then runs
 * the same per-frame checks the encoders run on their arguments, so a
 * frame this code accepts is one it could have written and the other way
 * round (the fuzz target checks that decode -> encode gives back the same
 * bytes).
 */
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <lz4.h>
#include <xxhash.h>
#include <zstd.h>

#include "wire.h"

#define DATA_FIXED (FERRY_WIRE_DATA_HDR_LEN - FERRY_WIRE_HDR_LEN)

/* A maximal DATA frame with either codec's worst case fits in a frame. */
_Static_assert(DATA_FIXED == 32, "DATA fixed fields are 32 bytes");
_Static_assert(DATA_FIXED + LZ4_COMPRESSBOUND(FERRY_WIRE_MAX_DATA) <=
		       FERRY_WIRE_MAX_PAYLOAD,
	       "lz4 worst case does not fit in a DATA frame");
_Static_assert(DATA_FIXED + ZSTD_COMPRESSBOUND(FERRY_WIRE_MAX_DATA) <=
		       FERRY_WIRE_MAX_PAYLOAD,
	       "zstd worst case does not fit in a DATA frame");

/* Payload sizes of the fixed parts. */
#define HELLO_FIXED 16	 /* magic, versions, reserved */
#define HELLO_DISK_FIXED 18 /* name length, size, block_size, reserved */
#define WELCOME_FIXED 16
#define WELCOME_DISK 40
#define HASH_RESP_FIXED 24
#define ERROR_FIXED 10	 /* code, reserved, message length */

#define HELLO_MIN (HELLO_FIXED + 2 * (2 + 1) + 2 + HELLO_DISK_FIXED + 1)
#define HELLO_MAX                                                         \
	(HELLO_FIXED + 2 * (2 + FERRY_WIRE_MAX_NAME) + 2 +                \
	 FERRY_WIRE_MAX_DISKS * (HELLO_DISK_FIXED + FERRY_WIRE_MAX_NAME))

#define MIN_CHUNK 4096u
#define MAX_CHUNK (1u << 20)

static const struct frame_kind {
	const char *name;
	uint32_t min, max; /* payload bytes */
} kinds[] = {
	[FERRY_F_HELLO] = { "HELLO", HELLO_MIN, HELLO_MAX },
	[FERRY_F_WELCOME] = { "WELCOME", WELCOME_FIXED + WELCOME_DISK,
			      WELCOME_FIXED +
				      FERRY_WIRE_MAX_DISKS * WELCOME_DISK },
	[FERRY_F_DATA] = { "DATA", DATA_FIXED + 1, FERRY_WIRE_MAX_PAYLOAD },
	[FERRY_F_ZERO] = { "ZERO", 24, 24 },
	[FERRY_F_HASH_REQ] = { "HASH_REQ", 24, 24 },
	[FERRY_F_HASH_RESP] = { "HASH_RESP",
				HASH_RESP_FIXED + FERRY_WIRE_HASH_LEN,
				HASH_RESP_FIXED + FERRY_WIRE_MAX_HASHES *
							  FERRY_WIRE_HASH_LEN },
	[FERRY_F_SYNC_MARK] = { "SYNC_MARK", 16, 16 },
	[FERRY_F_CP] = { "CP", 16, 16 },
	[FERRY_F_ACK] = { "ACK", 0, 0 },
	[FERRY_F_PING] = { "PING", 8, 8 },
	[FERRY_F_PONG] = { "PONG", 8, 8 },
	[FERRY_F_ERROR] = { "ERROR", ERROR_FIXED,
			    ERROR_FIXED + FERRY_WIRE_MAX_STRING },
	[FERRY_F_BYE] = { "BYE", 0, 0 },
};

static const char *const error_names[] = {
	[FERRY_E_PROTOCOL] = "PROTOCOL",
	[FERRY_E_VERSION] = "VERSION",
	[FERRY_E_DENIED] = "DENIED",
	[FERRY_E_UNKNOWN_DISK] = "UNKNOWN_DISK",
	[FERRY_E_RANGE] = "RANGE",
	[FERRY_E_NOSPC] = "NOSPC",
	[FERRY_E_IO] = "IO",
	[FERRY_E_CORRUPT] = "CORRUPT",
	[FERRY_E_BUSY] = "BUSY",
	[FERRY_E_INTERNAL] = "INTERNAL",
};

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static const struct frame_kind *kind_of(uint8_t type)
{
	if (type >= ARRAY_SIZE(kinds) || !kinds[type].name)
		return NULL;
	return &kinds[type];
}

const char *ferry_wire_type_name(uint8_t type)
{
	const struct frame_kind *k = kind_of(type);

	return k ? k->name : "UNKNOWN";
}

static bool error_known(uint32_t code)
{
	return code < ARRAY_SIZE(error_names) && error_names[code];
}

const char *ferry_wire_error_name(uint32_t code)
{
	return error_known(code) ? error_names[code] : "UNKNOWN";
}

/* Writes the message (if ERR has room) and returns -1. */
__attribute__((format(printf, 3, 4))) static int
errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* Big-endian access. */
static inline void put16(uint8_t *p, uint16_t v)
{
	p[0] = v >> 8;
	p[1] = v;
}

static inline void put32(uint8_t *p, uint32_t v)
{
	put16(p, v >> 16);
	put16(p + 2, v);
}

static inline void put64(uint8_t *p, uint64_t v)
{
	put32(p, v >> 32);
	put32(p + 4, v);
}

static inline uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t get32(const uint8_t *p)
{
	return (uint32_t)get16(p) << 16 | get16(p + 2);
}

static inline uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) << 32 | get32(p + 4);
}

static bool is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

/*
 * Text rules for strings: valid UTF-8 (no overlong forms, surrogates or
 * code points above U+10FFFF) and no control characters (C0, DEL, C1),
 * NUL included, so that names can be logged and compared safely.
 * Returns NULL, or what is wrong and the byte index in *AT.
 */
static const char *text_fault(const uint8_t *s, size_t len, size_t *at)
{
	size_t i = 0;

	while (i < len) {
		uint8_t c = s[i];
		size_t n, k;
		uint8_t lo = 0x80, hi = 0xbf; /* range of the 2nd byte */

		*at = i;
		if (c < 0x80) {
			if (c < 0x20 || c == 0x7f)
				return "has a control character";
			i++;
			continue;
		}
		if (c < 0xc2 || c > 0xf4)
			return "is not valid UTF-8";
		if (c < 0xe0) {
			n = 1;
			if (c == 0xc2)
				lo = 0xa0; /* U+0080..U+009F: C1 controls */
		} else if (c < 0xf0) {
			n = 2;
			if (c == 0xe0)
				lo = 0xa0; /* overlong */
			else if (c == 0xed)
				hi = 0x9f; /* surrogates */
		} else {
			n = 3;
			if (c == 0xf0)
				lo = 0x90; /* overlong */
			else if (c == 0xf4)
				hi = 0x8f; /* above U+10FFFF */
		}
		if (len - i <= n)
			return "is not valid UTF-8";
		if (c == 0xc2 && s[i + 1] >= 0x80 && s[i + 1] < 0xa0)
			return "has a control character";
		if (s[i + 1] < lo || s[i + 1] > hi)
			return "is not valid UTF-8";
		for (k = 2; k <= n; k++)
			if ((s[i + k] & 0xc0) != 0x80)
				return "is not valid UTF-8";
		i += n + 1;
	}
	return NULL;
}

/* A name, ID or version: 1..FERRY_WIRE_MAX_NAME bytes of text;
 * a message: 0..FERRY_WIRE_MAX_STRING. */
static int check_text(const char *frame, const char *field,
		      struct ferry_str s, bool is_name, char *err,
		      size_t errlen)
{
	unsigned int max = is_name ? FERRY_WIRE_MAX_NAME
				   : FERRY_WIRE_MAX_STRING;
	const char *why;
	size_t at;

	if (is_name && s.len == 0)
		return errf(err, errlen, "%s %s is empty", frame, field);
	if (s.len > max)
		return errf(err, errlen, "%s %s is %u bytes, more than %u",
			    frame, field, s.len, max);
	if (s.len && !s.s)
		return errf(err, errlen, "%s %s has no bytes", frame, field);
	why = text_fault((const uint8_t *)s.s, s.len, &at);
	if (why)
		return errf(err, errlen, "%s %s %s at byte %zu", frame, field,
			    why, at);
	return 0;
}

static int check_sector(const char *frame, const char *field, uint64_t v,
			char *err, size_t errlen)
{
	if (v % FERRY_WIRE_SECTOR)
		return errf(err, errlen,
			    "%s %s %llu is not a multiple of %u", frame, field,
			    (unsigned long long)v, FERRY_WIRE_SECTOR);
	return 0;
}

static int check_no_wrap(const char *frame, const char *what, uint64_t a,
			 uint64_t b, char *err, size_t errlen)
{
	if (a > UINT64_MAX - b)
		return errf(err, errlen,
			    "%s %s %llu + %llu does not fit in 64 bits", frame, what,
			    (unsigned long long)a, (unsigned long long)b);
	return 0;
}

/* Per-frame checks, shared by the decoder and the encoders. */

static int check_hello(const struct ferry_hello *m, char *err, size_t errlen)
{
	char field[40];
	unsigned int i, j;

	if (m->min_version < 1)
		return errf(err, errlen,
			    "HELLO min_version 0 is not a version");
	if (m->min_version > m->max_version)
		return errf(err, errlen,
			    "HELLO min_version %u is above max_version %u",
			    m->min_version, m->max_version);
	if (check_text("HELLO", "agent_version", m->agent_version, true, err,
		       errlen) ||
	    check_text("HELLO", "source_server_id", m->source_server_id, true,
		       err, errlen))
		return -1;
	if (m->n_disks < 1 || m->n_disks > FERRY_WIRE_MAX_DISKS)
		return errf(err, errlen, "HELLO n_disks %u is not in 1..%u",
			    m->n_disks, FERRY_WIRE_MAX_DISKS);
	for (i = 0; i < m->n_disks; i++) {
		const struct ferry_hello_disk *d = &m->disks[i];

		snprintf(field, sizeof(field), "disks[%u].name", i);
		if (check_text("HELLO", field, d->name, true, err, errlen))
			return -1;
		snprintf(field, sizeof(field), "disks[%u].size", i);
		if (d->size == 0)
			return errf(err, errlen, "HELLO %s is 0", field);
		if (check_sector("HELLO", field, d->size, err, errlen))
			return -1;
		if (d->block_size != 512 && d->block_size != 4096)
			return errf(err, errlen,
				    "HELLO disks[%u].block_size %u is not 512 or 4096",
				    i, d->block_size);
		for (j = 0; j < i; j++)
			if (m->disks[j].name.len == d->name.len &&
			    !memcmp(m->disks[j].name.s, d->name.s,
				    d->name.len))
				return errf(err, errlen,
					    "HELLO disks[%u].name \"%.*s\" repeats disks[%u]",
					    i, (int)d->name.len, d->name.s, j);
	}
	return 0;
}

static int check_welcome(const struct ferry_welcome *m, char *err,
			 size_t errlen)
{
	char field[40];
	unsigned int i;

	if (m->version < 1)
		return errf(err, errlen, "WELCOME version 0 is not a version");
	if (m->n_disks < 1 || m->n_disks > FERRY_WIRE_MAX_DISKS)
		return errf(err, errlen, "WELCOME n_disks %u is not in 1..%u",
			    m->n_disks, FERRY_WIRE_MAX_DISKS);
	if (m->window < 1)
		return errf(err, errlen, "WELCOME window is 0");
	/* Else the largest frame could never be sent. */
	if (m->window_bytes < FERRY_WIRE_MAX_PAYLOAD)
		return errf(err, errlen,
			    "WELCOME window_bytes %llu is below the largest payload, %u",
			    (unsigned long long)m->window_bytes,
			    FERRY_WIRE_MAX_PAYLOAD);
	for (i = 0; i < m->n_disks; i++) {
		const struct ferry_welcome_disk *d = &m->disks[i];

		snprintf(field, sizeof(field), "disks[%u].size", i);
		if (d->size == 0)
			return errf(err, errlen, "WELCOME %s is 0", field);
		if (check_sector("WELCOME", field, d->size, err, errlen))
			return -1;
		snprintf(field, sizeof(field), "disks[%u].sync_mark", i);
		if (check_sector("WELCOME", field, d->sync_mark, err, errlen))
			return -1;
		if (d->sync_mark > d->size)
			return errf(err, errlen,
				    "WELCOME %s %llu is beyond the size, %llu",
				    field, (unsigned long long)d->sync_mark,
				    (unsigned long long)d->size);
	}
	return 0;
}

static int check_data(const struct ferry_data *m, char *err, size_t errlen)
{
	size_t bound;

	if (m->codec != FERRY_CODEC_RAW && m->codec != FERRY_CODEC_ZSTD &&
	    m->codec != FERRY_CODEC_LZ4)
		return errf(err, errlen, "DATA codec %u is unknown", m->codec);
	if (m->raw_len < 1 || m->raw_len > FERRY_WIRE_MAX_DATA)
		return errf(err, errlen, "DATA raw_len %u is not in 1..%u",
			    m->raw_len, FERRY_WIRE_MAX_DATA);
	if (check_sector("DATA", "raw_len", m->raw_len, err, errlen) ||
	    check_sector("DATA", "offset", m->offset, err, errlen) ||
	    check_no_wrap("DATA", "offset + raw_len", m->offset, m->raw_len,
			  err, errlen))
		return -1;
	if (m->codec == FERRY_CODEC_RAW) {
		if (m->payload_len != m->raw_len)
			return errf(err, errlen,
				    "DATA raw payload is %u bytes, raw_len is %u",
				    m->payload_len, m->raw_len);
		return 0;
	}
	bound = ferry_codec_bound(m->codec, m->raw_len);
	if (m->payload_len < 1 || m->payload_len > bound)
		return errf(err, errlen,
			    "DATA %s payload is %u bytes, not in 1..%zu for raw_len %u",
			    m->codec == FERRY_CODEC_ZSTD ? "zstd" : "lz4",
			    m->payload_len, bound, m->raw_len);
	return 0;
}

static int check_zero(const struct ferry_zero *m, char *err, size_t errlen)
{
	if (check_sector("ZERO", "offset", m->offset, err, errlen))
		return -1;
	if (m->length == 0)
		return errf(err, errlen, "ZERO length is 0");
	if (check_sector("ZERO", "length", m->length, err, errlen) ||
	    check_no_wrap("ZERO", "offset + length", m->offset, m->length, err,
			  errlen))
		return -1;
	return 0;
}

static int check_chunk(const char *frame, uint32_t chunk, uint64_t offset,
		       char *err, size_t errlen)
{
	if (!is_pow2(chunk) || chunk < MIN_CHUNK || chunk > MAX_CHUNK)
		return errf(err, errlen,
			    "%s chunk %u is not a power of two in %u..%u",
			    frame, chunk, MIN_CHUNK, MAX_CHUNK);
	if (offset % chunk)
		return errf(err, errlen,
			    "%s offset %llu is not a multiple of the chunk, %u",
			    frame, (unsigned long long)offset, chunk);
	return 0;
}

static int check_hash_req(const struct ferry_hash_req *m, char *err,
			  size_t errlen)
{
	uint64_t max = (uint64_t)m->chunk * FERRY_WIRE_MAX_HASHES;

	if (check_chunk("HASH_REQ", m->chunk, m->offset, err, errlen))
		return -1;
	if (m->length == 0)
		return errf(err, errlen, "HASH_REQ length is 0");
	if (m->length > max)
		return errf(err, errlen,
			    "HASH_REQ length %llu is more than %u chunks of %u",
			    (unsigned long long)m->length,
			    FERRY_WIRE_MAX_HASHES, m->chunk);
	return check_no_wrap("HASH_REQ", "offset + length", m->offset,
			     m->length, err, errlen);
}

static int check_hash_resp(const struct ferry_hash_resp *m, char *err,
			   size_t errlen)
{
	if (check_chunk("HASH_RESP", m->chunk, m->offset, err, errlen))
		return -1;
	if (m->count < 1 || m->count > FERRY_WIRE_MAX_HASHES)
		return errf(err, errlen, "HASH_RESP count %u is not in 1..%u",
			    m->count, FERRY_WIRE_MAX_HASHES);
	/* The start of the last chunk must be an offset. */
	if (check_no_wrap("HASH_RESP", "offset + chunks", m->offset,
			  (uint64_t)(m->count - 1) * m->chunk, err, errlen))
		return -1;
	if (!m->hashes)
		return errf(err, errlen, "HASH_RESP has no hashes");
	return 0;
}

static int check_sync_mark(const struct ferry_sync_mark *m, char *err,
			   size_t errlen)
{
	return check_sector("SYNC_MARK", "offset", m->offset, err, errlen);
}

static int check_cp(const struct ferry_cp *m, char *err, size_t errlen)
{
	/* 0 means "none" in WELCOME's last_cp. */
	if (m->cp_id == 0)
		return errf(err, errlen, "CP cp_id is 0");
	return 0;
}

static int check_error(const struct ferry_error *m, char *err,
		       size_t errlen)
{
	if (!error_known(m->code))
		return errf(err, errlen, "ERROR code %u is unknown", m->code);
	return check_text("ERROR", "message", m->message, false, err, errlen);
}

/* Header */

static int check_hdr_len(const struct frame_kind *k, uint32_t len, char *err,
			 size_t errlen)
{
	if (k->min == k->max && len != k->min)
		return errf(err, errlen,
			    "%s payload length %u is not %u", k->name, len,
			    k->min);
	if (len < k->min)
		return errf(err, errlen,
			    "%s payload length %u is below the minimum, %u",
			    k->name, len, k->min);
	if (len > k->max)
		return errf(err, errlen,
			    "%s payload length %u is above the limit, %u",
			    k->name, len, k->max);
	return 0;
}

static int check_hdr(const struct ferry_hdr *h, char *err, size_t errlen)
{
	const struct frame_kind *k = kind_of(h->type);
	uint8_t allowed = h->type == FERRY_F_ERROR ? FERRY_ERR_FATAL : 0;

	if (!k)
		return errf(err, errlen, "frame type %u is unknown", h->type);
	if (h->flags & ~allowed)
		return errf(err, errlen, "%s flags 0x%02x are not defined",
			    k->name, h->flags);
	if (check_hdr_len(k, h->len, err, errlen))
		return -1;
	/* The handshake is the first frame each way. */
	if ((h->type == FERRY_F_HELLO || h->type == FERRY_F_WELCOME) &&
	    h->seq != 1)
		return errf(err, errlen, "%s seq %llu is not 1", k->name,
			    (unsigned long long)h->seq);
	return 0;
}

int ferry_wire_decode_hdr(const uint8_t buf[FERRY_WIRE_HDR_LEN],
			  struct ferry_hdr *h, char *err, size_t errlen)
{
	uint16_t reserved = get16(buf + 6);

	h->len = get32(buf);
	h->type = buf[4];
	h->flags = buf[5];
	h->seq = get64(buf + 8);
	if (reserved && kind_of(h->type))
		return errf(err, errlen,
			    "%s header reserved bytes are 0x%04x, not 0",
			    kinds[h->type].name, reserved);
	if (reserved)
		return errf(err, errlen,
			    "header reserved bytes are 0x%04x, not 0",
			    reserved);
	return check_hdr(h, err, errlen);
}

/* Bounds-checked reader of a payload. */
struct rd {
	const uint8_t *p;
	size_t len, pos;
	const char *frame;
	char *err;
	size_t errlen;
};

static const uint8_t *rd_take(struct rd *r, size_t n, const char *field)
{
	const uint8_t *p;

	if (r->len - r->pos < n) {
		errf(r->err, r->errlen,
		     "%s is truncated in %s: %zu bytes needed, %zu left",
		     r->frame, field, n, r->len - r->pos);
		return NULL;
	}
	p = r->p + r->pos;
	r->pos += n;
	return p;
}

static bool rd_u8(struct rd *r, const char *field, uint8_t *v)
{
	const uint8_t *p = rd_take(r, 1, field);

	if (p)
		*v = *p;
	return p;
}

static bool rd_u16(struct rd *r, const char *field, uint16_t *v)
{
	const uint8_t *p = rd_take(r, 2, field);

	if (p)
		*v = get16(p);
	return p;
}

static bool rd_u32(struct rd *r, const char *field, uint32_t *v)
{
	const uint8_t *p = rd_take(r, 4, field);

	if (p)
		*v = get32(p);
	return p;
}

static bool rd_u64(struct rd *r, const char *field, uint64_t *v)
{
	const uint8_t *p = rd_take(r, 8, field);

	if (p)
		*v = get64(p);
	return p;
}

/* N reserved bytes, which must be zero. */
static bool rd_reserved(struct rd *r, size_t n, const char *field)
{
	const uint8_t *p = rd_take(r, n, field);
	size_t i;

	if (!p)
		return false;
	for (i = 0; i < n; i++)
		if (p[i]) {
			errf(r->err, r->errlen,
			     "%s %s byte %zu is 0x%02x, not 0", r->frame,
			     field, i, p[i]);
			return false;
		}
	return true;
}

/* A u16 length and that many bytes (checked later by check_text). */
static bool rd_str(struct rd *r, const char *field, struct ferry_str *s)
{
	const uint8_t *p;
	uint16_t len;

	if (!rd_u16(r, field, &len))
		return false;
	p = rd_take(r, len, field);
	if (!p)
		return false;
	s->s = (const char *)p;
	s->len = len;
	return true;
}

static int rd_end(struct rd *r)
{
	if (r->pos != r->len)
		return errf(r->err, r->errlen, "%s has %zu trailing bytes",
			    r->frame, r->len - r->pos);
	return 0;
}

static int decode_hello(struct rd *r, struct ferry_hello *m)
{
	char field[40];
	const uint8_t *magic = rd_take(r, 8, "magic");
	unsigned int i;

	if (!magic)
		return -1;
	if (memcmp(magic, FERRY_WIRE_MAGIC, 8))
		return errf(r->err, r->errlen,
			    "HELLO magic is not \"%s\": not a ferry agent",
			    FERRY_WIRE_MAGIC);
	if (!rd_u16(r, "min_version", &m->min_version) ||
	    !rd_u16(r, "max_version", &m->max_version) ||
	    !rd_reserved(r, 4, "reserved") ||
	    !rd_str(r, "agent_version", &m->agent_version) ||
	    !rd_str(r, "source_server_id", &m->source_server_id) ||
	    !rd_u16(r, "n_disks", &m->n_disks))
		return -1;
	if (m->n_disks < 1 || m->n_disks > FERRY_WIRE_MAX_DISKS)
		return errf(r->err, r->errlen,
			    "HELLO n_disks %u is not in 1..%u", m->n_disks,
			    FERRY_WIRE_MAX_DISKS);
	for (i = 0; i < m->n_disks; i++) {
		struct ferry_hello_disk *d = &m->disks[i];

		snprintf(field, sizeof(field), "disks[%u]", i);
		if (!rd_str(r, field, &d->name) ||
		    !rd_u64(r, field, &d->size) ||
		    !rd_u32(r, field, &d->block_size) ||
		    !rd_reserved(r, 4, field))
			return -1;
	}
	if (rd_end(r))
		return -1;
	return check_hello(m, r->err, r->errlen);
}

static int decode_welcome(struct rd *r, struct ferry_welcome *m)
{
	char field[40];
	unsigned int i;

	if (!rd_u16(r, "version", &m->version) ||
	    !rd_u16(r, "n_disks", &m->n_disks) ||
	    !rd_u32(r, "window", &m->window) ||
	    !rd_u64(r, "window_bytes", &m->window_bytes))
		return -1;
	if (m->n_disks < 1 || m->n_disks > FERRY_WIRE_MAX_DISKS)
		return errf(r->err, r->errlen,
			    "WELCOME n_disks %u is not in 1..%u", m->n_disks,
			    FERRY_WIRE_MAX_DISKS);
	if (r->len != WELCOME_FIXED + (size_t)m->n_disks * WELCOME_DISK)
		return errf(r->err, r->errlen,
			    "WELCOME payload is %zu bytes, %u disks need %u",
			    r->len, m->n_disks,
			    WELCOME_FIXED + m->n_disks * WELCOME_DISK);
	for (i = 0; i < m->n_disks; i++) {
		struct ferry_welcome_disk *d = &m->disks[i];
		const uint8_t *id;

		snprintf(field, sizeof(field), "disks[%u]", i);
		id = rd_take(r, 16, field);
		if (!id)
			return -1;
		memcpy(d->volume_id, id, 16);
		if (!rd_u64(r, field, &d->size) ||
		    !rd_u64(r, field, &d->sync_mark) ||
		    !rd_u64(r, field, &d->last_cp))
			return -1;
	}
	if (rd_end(r))
		return -1;
	return check_welcome(m, r->err, r->errlen);
}

static int decode_data(struct rd *r, struct ferry_data *m)
{
	if (!rd_u32(r, "disk", &m->disk) || !rd_u8(r, "codec", &m->codec) ||
	    !rd_reserved(r, 3, "reserved") ||
	    !rd_u32(r, "raw_len", &m->raw_len) ||
	    !rd_reserved(r, 4, "reserved") ||
	    !rd_u64(r, "offset", &m->offset) || !rd_u64(r, "xxh3", &m->xxh3))
		return -1;
	/* The rest is the data. */
	m->payload = r->p + r->pos;
	m->payload_len = (uint32_t)(r->len - r->pos);
	r->pos = r->len;
	return check_data(m, r->err, r->errlen);
}

static int decode_hash_resp(struct rd *r, struct ferry_hash_resp *m)
{
	if (!rd_u32(r, "disk", &m->disk) || !rd_u32(r, "chunk", &m->chunk) ||
	    !rd_u64(r, "offset", &m->offset) ||
	    !rd_u32(r, "count", &m->count) || !rd_reserved(r, 4, "reserved"))
		return -1;
	if (m->count > FERRY_WIRE_MAX_HASHES ||
	    r->len - r->pos != (size_t)m->count * FERRY_WIRE_HASH_LEN)
		return errf(r->err, r->errlen,
			    "HASH_RESP count %u does not match its %zu bytes of hashes",
			    m->count, r->len - r->pos);
	m->hashes = r->p + r->pos;
	r->pos = r->len;
	return check_hash_resp(m, r->err, r->errlen);
}

int ferry_wire_decode(const struct ferry_hdr *h, const uint8_t *payload,
		      struct ferry_msg *m, char *err, size_t errlen)
{
	struct rd r = {
		.p = payload, .len = h->len, .err = err, .errlen = errlen,
	};

	/* Again: the caller may not have used ferry_wire_decode_hdr(). */
	if (check_hdr(h, err, errlen))
		return -1;
	r.frame = kinds[h->type].name;
	m->hdr = *h;

	switch (h->type) {
	case FERRY_F_HELLO:
		return decode_hello(&r, &m->u.hello);
	case FERRY_F_WELCOME:
		return decode_welcome(&r, &m->u.welcome);
	case FERRY_F_DATA:
		return decode_data(&r, &m->u.data);
	case FERRY_F_ZERO: {
		struct ferry_zero *z = &m->u.zero;

		if (!rd_u32(&r, "disk", &z->disk) ||
		    !rd_reserved(&r, 4, "reserved") ||
		    !rd_u64(&r, "offset", &z->offset) ||
		    !rd_u64(&r, "length", &z->length) || rd_end(&r))
			return -1;
		return check_zero(z, err, errlen);
	}
	case FERRY_F_HASH_REQ: {
		struct ferry_hash_req *q = &m->u.hash_req;

		if (!rd_u32(&r, "disk", &q->disk) ||
		    !rd_u32(&r, "chunk", &q->chunk) ||
		    !rd_u64(&r, "offset", &q->offset) ||
		    !rd_u64(&r, "length", &q->length) || rd_end(&r))
			return -1;
		return check_hash_req(q, err, errlen);
	}
	case FERRY_F_HASH_RESP:
		return decode_hash_resp(&r, &m->u.hash_resp);
	case FERRY_F_SYNC_MARK: {
		struct ferry_sync_mark *s = &m->u.sync_mark;

		if (!rd_u32(&r, "disk", &s->disk) ||
		    !rd_reserved(&r, 4, "reserved") ||
		    !rd_u64(&r, "offset", &s->offset) || rd_end(&r))
			return -1;
		return check_sync_mark(s, err, errlen);
	}
	case FERRY_F_CP:
		if (!rd_u64(&r, "cp_id", &m->u.cp.cp_id) ||
		    !rd_u64(&r, "time_ms", &m->u.cp.time_ms) || rd_end(&r))
			return -1;
		return check_cp(&m->u.cp, err, errlen);
	case FERRY_F_PING:
	case FERRY_F_PONG:
		if (!rd_u64(&r, "nonce", &m->u.nonce) || rd_end(&r))
			return -1;
		return 0;
	case FERRY_F_ERROR:
		if (!rd_u32(&r, "code", &m->u.error.code) ||
		    !rd_reserved(&r, 4, "reserved") ||
		    !rd_str(&r, "message", &m->u.error.message) || rd_end(&r))
			return -1;
		return check_error(&m->u.error, err, errlen);
	case FERRY_F_ACK:
	case FERRY_F_BYE:
		return rd_end(&r);
	}
	return errf(err, errlen, "frame type %u is unknown", h->type);
}

/* Encoders */

struct wr {
	uint8_t *p;
};

static void w8(struct wr *w, uint8_t v)
{
	*w->p++ = v;
}

static void w16(struct wr *w, uint16_t v)
{
	put16(w->p, v);
	w->p += 2;
}

static void w32(struct wr *w, uint32_t v)
{
	put32(w->p, v);
	w->p += 4;
}

static void w64(struct wr *w, uint64_t v)
{
	put64(w->p, v);
	w->p += 8;
}

static void wbytes(struct wr *w, const void *p, size_t n)
{
	if (n)
		memcpy(w->p, p, n);
	w->p += n;
}

static void wstr(struct wr *w, struct ferry_str s)
{
	w16(w, s.len);
	wbytes(w, s.s, s.len);
}

/*
 * Writes the header of a frame of TYPE with LEN payload bytes, after
 * checking that the frame fits in CAP and its header is valid.  Returns
 * false if not.
 */
static bool frame_start(struct wr *w, uint8_t *out, size_t cap, uint8_t type,
			uint8_t flags, uint64_t seq, size_t len)
{
	struct ferry_hdr h = {
		.len = (uint32_t)len, .type = type, .flags = flags, .seq = seq,
	};

	if (!out || len > UINT32_MAX || cap < FERRY_WIRE_HDR_LEN ||
	    cap - FERRY_WIRE_HDR_LEN < len || check_hdr(&h, NULL, 0))
		return false;
	put32(out, (uint32_t)len);
	out[4] = type;
	out[5] = flags;
	put16(out + 6, 0);
	put64(out + 8, seq);
	w->p = out + FERRY_WIRE_HDR_LEN;
	return true;
}

size_t ferry_wire_encode_hello(uint8_t *out, size_t cap, uint64_t seq,
			       const struct ferry_hello *m)
{
	size_t len = HELLO_FIXED + 2 + m->agent_version.len + 2 +
		     m->source_server_id.len + 2;
	struct wr w;
	unsigned int i;

	if (check_hello(m, NULL, 0))
		return 0;
	for (i = 0; i < m->n_disks; i++)
		len += HELLO_DISK_FIXED + m->disks[i].name.len;
	if (!frame_start(&w, out, cap, FERRY_F_HELLO, 0, seq, len))
		return 0;
	wbytes(&w, FERRY_WIRE_MAGIC, 8);
	w16(&w, m->min_version);
	w16(&w, m->max_version);
	w32(&w, 0);
	wstr(&w, m->agent_version);
	wstr(&w, m->source_server_id);
	w16(&w, m->n_disks);
	for (i = 0; i < m->n_disks; i++) {
		wstr(&w, m->disks[i].name);
		w64(&w, m->disks[i].size);
		w32(&w, m->disks[i].block_size);
		w32(&w, 0);
	}
	return FERRY_WIRE_HDR_LEN + len;
}

size_t ferry_wire_encode_welcome(uint8_t *out, size_t cap, uint64_t seq,
				 const struct ferry_welcome *m)
{
	size_t len = WELCOME_FIXED + (size_t)m->n_disks * WELCOME_DISK;
	struct wr w;
	unsigned int i;

	if (check_welcome(m, NULL, 0) ||
	    !frame_start(&w, out, cap, FERRY_F_WELCOME, 0, seq, len))
		return 0;
	w16(&w, m->version);
	w16(&w, m->n_disks);
	w32(&w, m->window);
	w64(&w, m->window_bytes);
	for (i = 0; i < m->n_disks; i++) {
		wbytes(&w, m->disks[i].volume_id, 16);
		w64(&w, m->disks[i].size);
		w64(&w, m->disks[i].sync_mark);
		w64(&w, m->disks[i].last_cp);
	}
	return FERRY_WIRE_HDR_LEN + len;
}

size_t ferry_wire_encode_data_hdr(uint8_t *out, size_t cap, uint64_t seq,
				  const struct ferry_data *m)
{
	struct wr w;

	/* The payload follows; only the first DATA_FIXED bytes are ours. */
	if (check_data(m, NULL, 0) || cap < FERRY_WIRE_DATA_HDR_LEN ||
	    !frame_start(&w, out, SIZE_MAX, FERRY_F_DATA, 0, seq,
			 DATA_FIXED + (size_t)m->payload_len))
		return 0;
	w32(&w, m->disk);
	w8(&w, m->codec);
	wbytes(&w, "\0\0", 3);
	w32(&w, m->raw_len);
	w32(&w, 0);
	w64(&w, m->offset);
	w64(&w, m->xxh3);
	return FERRY_WIRE_DATA_HDR_LEN;
}

size_t ferry_wire_encode_zero(uint8_t *out, size_t cap, uint64_t seq,
			      const struct ferry_zero *m)
{
	struct wr w;

	if (check_zero(m, NULL, 0) ||
	    !frame_start(&w, out, cap, FERRY_F_ZERO, 0, seq, 24))
		return 0;
	w32(&w, m->disk);
	w32(&w, 0);
	w64(&w, m->offset);
	w64(&w, m->length);
	return FERRY_WIRE_HDR_LEN + 24;
}

size_t ferry_wire_encode_hash_req(uint8_t *out, size_t cap, uint64_t seq,
				  const struct ferry_hash_req *m)
{
	struct wr w;

	if (check_hash_req(m, NULL, 0) ||
	    !frame_start(&w, out, cap, FERRY_F_HASH_REQ, 0, seq, 24))
		return 0;
	w32(&w, m->disk);
	w32(&w, m->chunk);
	w64(&w, m->offset);
	w64(&w, m->length);
	return FERRY_WIRE_HDR_LEN + 24;
}

size_t ferry_wire_encode_hash_resp(uint8_t *out, size_t cap, uint64_t seq,
				   const struct ferry_hash_resp *m)
{
	size_t len;
	struct wr w;

	if (check_hash_resp(m, NULL, 0))
		return 0;
	len = HASH_RESP_FIXED + (size_t)m->count * FERRY_WIRE_HASH_LEN;
	if (!frame_start(&w, out, cap, FERRY_F_HASH_RESP, 0, seq, len))
		return 0;
	w32(&w, m->disk);
	w32(&w, m->chunk);
	w64(&w, m->offset);
	w32(&w, m->count);
	w32(&w, 0);
	wbytes(&w, m->hashes, (size_t)m->count * FERRY_WIRE_HASH_LEN);
	return FERRY_WIRE_HDR_LEN + len;
}

size_t ferry_wire_encode_sync_mark(uint8_t *out, size_t cap, uint64_t seq,
				   const struct ferry_sync_mark *m)
{
	struct wr w;

	if (check_sync_mark(m, NULL, 0) ||
	    !frame_start(&w, out, cap, FERRY_F_SYNC_MARK, 0, seq, 16))
		return 0;
	w32(&w, m->disk);
	w32(&w, 0);
	w64(&w, m->offset);
	return FERRY_WIRE_HDR_LEN + 16;
}

size_t ferry_wire_encode_cp(uint8_t *out, size_t cap, uint64_t seq,
			    const struct ferry_cp *m)
{
	struct wr w;

	if (check_cp(m, NULL, 0) ||
	    !frame_start(&w, out, cap, FERRY_F_CP, 0, seq, 16))
		return 0;
	w64(&w, m->cp_id);
	w64(&w, m->time_ms);
	return FERRY_WIRE_HDR_LEN + 16;
}

size_t ferry_wire_encode_ack(uint8_t *out, size_t cap, uint64_t seq)
{
	struct wr w;

	if (!frame_start(&w, out, cap, FERRY_F_ACK, 0, seq, 0))
		return 0;
	return FERRY_WIRE_HDR_LEN;
}

size_t ferry_wire_encode_ping(uint8_t *out, size_t cap, uint8_t type,
			      uint64_t seq, uint64_t nonce)
{
	struct wr w;

	if ((type != FERRY_F_PING && type != FERRY_F_PONG) ||
	    !frame_start(&w, out, cap, type, 0, seq, 8))
		return 0;
	w64(&w, nonce);
	return FERRY_WIRE_HDR_LEN + 8;
}

/*
 * Error messages are made by our own code from errno strings, paths and
 * peer input, so rather than refusing one that breaks the text rules
 * (and sending no error at all), the encoder cuts it to
 * FERRY_WIRE_MAX_STRING bytes at a character boundary and replaces each
 * byte that is not valid text with '?'.
 */
size_t ferry_wire_encode_error(uint8_t *out, size_t cap, uint64_t seq,
			       uint8_t flags, uint32_t code,
			       const char *message)
{
	const uint8_t *s = (const uint8_t *)(message ? message : "");
	size_t n = strlen((const char *)s), i = 0, len, at;
	struct ferry_error e = { .code = code };
	struct wr w;
	uint8_t *text;

	if (!error_known(code))
		return 0;
	if (n > FERRY_WIRE_MAX_STRING) {
		n = FERRY_WIRE_MAX_STRING;
		while (n && (s[n] & 0xc0) == 0x80)
			n--;
	}
	len = ERROR_FIXED + n;
	if (!frame_start(&w, out, cap, FERRY_F_ERROR, flags, seq, len))
		return 0;
	w32(&w, code);
	w32(&w, 0);
	w16(&w, (uint16_t)n);
	text = w.p;
	wbytes(&w, s, n);
	/* Replace faults one by one: a fixed byte moves the scan on. */
	while (i < n && text_fault(text + i, n - i, &at)) {
		text[i + at] = '?';
		i += at + 1;
	}
	e.message.s = (const char *)text;
	e.message.len = (uint16_t)n;
	if (check_error(&e, NULL, 0))
		return 0;
	return FERRY_WIRE_HDR_LEN + len;
}

size_t ferry_wire_encode_bye(uint8_t *out, size_t cap, uint64_t seq)
{
	struct wr w;

	if (!frame_start(&w, out, cap, FERRY_F_BYE, 0, seq, 0))
		return 0;
	return FERRY_WIRE_HDR_LEN;
}

/* Codecs */

size_t ferry_codec_bound(uint8_t codec, size_t len)
{
	size_t bound;

	switch (codec) {
	case FERRY_CODEC_RAW:
		return len;
	case FERRY_CODEC_ZSTD:
		bound = ZSTD_compressBound(len);
		return ZSTD_isError(bound) ? 0 : bound;
	case FERRY_CODEC_LZ4:
		if (len > LZ4_MAX_INPUT_SIZE)
			return 0;
		return (size_t)LZ4_compressBound((int)len);
	}
	return 0;
}

size_t ferry_codec_encode(uint8_t codec, int level, const void *src,
			  size_t len, void *dst, size_t cap)
{
	size_t n;
	int got;

	if (len == 0)
		return 0;
	switch (codec) {
	case FERRY_CODEC_RAW:
		if (cap < len)
			return 0;
		memcpy(dst, src, len);
		return len;
	case FERRY_CODEC_ZSTD:
		/* ZSTD_compress() records the content size, which the
		 * decoder requires. */
		n = ZSTD_compress(dst, cap, src, len, level);
		return ZSTD_isError(n) ? 0 : n;
	case FERRY_CODEC_LZ4:
		/* lz4 has no levels in its fast mode: LEVEL is unused. */
		if (len > LZ4_MAX_INPUT_SIZE)
			return 0;
		got = LZ4_compress_default(src, dst, (int)len,
					   cap > INT_MAX ? INT_MAX : (int)cap);
		return got > 0 ? (size_t)got : 0;
	}
	return 0;
}

static int decode_zstd(const void *src, size_t len, void *dst,
		       size_t raw_len, char *err, size_t errlen)
{
	size_t frame = ZSTD_findFrameCompressedSize(src, len);
	unsigned long long content;
	size_t got;

	if (ZSTD_isError(frame))
		return errf(err, errlen, "DATA zstd frame is malformed: %s",
			    ZSTD_getErrorName(frame));
	/* Exactly one frame: no second frame, skippable or not. */
	if (frame != len)
		return errf(err, errlen,
			    "DATA zstd payload has %zu bytes after its frame",
			    len - frame);
	content = ZSTD_getFrameContentSize(src, len);
	if (content == ZSTD_CONTENTSIZE_UNKNOWN ||
	    content == ZSTD_CONTENTSIZE_ERROR)
		return errf(err, errlen,
			    "DATA zstd frame does not state its content size");
	if (content != raw_len)
		return errf(err, errlen,
			    "DATA zstd frame holds %llu bytes, raw_len is %zu",
			    content, raw_len);
	got = ZSTD_decompress(dst, raw_len, src, len);
	if (ZSTD_isError(got))
		return errf(err, errlen, "DATA zstd frame does not decode: %s",
			    ZSTD_getErrorName(got));
	if (got != raw_len)
		return errf(err, errlen,
			    "DATA zstd frame gave %zu bytes, raw_len is %zu",
			    got, raw_len);
	return 0;
}

int ferry_codec_decode(uint8_t codec, const void *src, size_t len,
		       void *dst, size_t raw_len, uint64_t xxh3, char *err,
		       size_t errlen)
{
	uint64_t got;
	int n;

	if (raw_len < 1 || raw_len > FERRY_WIRE_MAX_DATA)
		return errf(err, errlen, "DATA raw_len %zu is not in 1..%u",
			    raw_len, FERRY_WIRE_MAX_DATA);
	switch (codec) {
	case FERRY_CODEC_RAW:
		if (len != raw_len)
			return errf(err, errlen,
				    "DATA raw payload is %zu bytes, raw_len is %zu",
				    len, raw_len);
		if (dst != src)
			memmove(dst, src, raw_len);
		break;
	case FERRY_CODEC_ZSTD:
		if (decode_zstd(src, len, dst, raw_len, err, errlen))
			return -1;
		break;
	case FERRY_CODEC_LZ4:
		if (len > INT_MAX)
			return errf(err, errlen,
				    "DATA lz4 payload of %zu bytes is too long",
				    len);
		/* The block must decode whole and fill DST exactly. */
		n = LZ4_decompress_safe(src, dst, (int)len, (int)raw_len);
		if (n < 0)
			return errf(err, errlen,
				    "DATA lz4 block does not decode (error %d)",
				    n);
		if ((size_t)n != raw_len)
			return errf(err, errlen,
				    "DATA lz4 block holds %d bytes, raw_len is %zu",
				    n, raw_len);
		break;
	default:
		return errf(err, errlen, "DATA codec %u is unknown", codec);
	}
	got = XXH3_64bits(dst, raw_len);
	if (got != xxh3)
		return errf(err, errlen,
			    "DATA xxh3 of the decoded bytes is %016llx, the frame says %016llx",
			    (unsigned long long)got, (unsigned long long)xxh3);
	return 0;
}

uint64_t ferry_hash64(const void *data, size_t len)
{
	return XXH3_64bits(data, len);
}

void ferry_hash128(const void *data, size_t len,
		   uint8_t out[FERRY_WIRE_HASH_LEN])
{
	XXH128_hash_t h = XXH3_128bits(data, len);

	put64(out, h.high64);
	put64(out + 8, h.low64);
}
