/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The agent <-> replicator protocol, version 1: the constants and the
 * layout of every frame.  docs/protocol.md is the specification; the
 * codec is lib/wire.{h,c}.
 *
 * A connection is TLS 1.3 over TCP (port 1500) with certificates of
 * ferry-control's CA on both sides.  On it travel frames: a 16-byte
 * header and a payload of at most FERRY_WIRE_MAX_PAYLOAD bytes.  All
 * integers are big-endian; strings are a u16 length and that many bytes
 * of UTF-8 (no NUL); reserved fields are sent as zero and a receiver
 * refuses a frame whose reserved fields are not.
 *
 * Header:
 *   u32 length    payload bytes that follow (<= FERRY_WIRE_MAX_PAYLOAD)
 *   u8  type      enum ferry_frame_type
 *   u8  flags     per type (0 unless said)
 *   u16 reserved
 *   u64 seq       client frames: 1, 2, 3 ... in sending order (HELLO is
 *                 1); server frames: the client seq they refer to
 */
#ifndef FERRY_WIRE_H
#define FERRY_WIRE_H

#define FERRY_WIRE_VERSION 1	  /* the version this code speaks */
#define FERRY_WIRE_MIN_VERSION 1 /* the oldest it accepts */
#define FERRY_WIRE_PORT 1500
#define FERRY_WIRE_MAGIC "FERRYWP1" /* first 8 bytes of HELLO */

#define FERRY_WIRE_HDR_LEN 16
#define FERRY_WIRE_MAX_DATA (1u << 20)	 /* decoded bytes in one DATA */
/* Room for DATA's 32 fixed bytes and the worst case of zstd and lz4 on
 * FERRY_WIRE_MAX_DATA bytes (lz4: + 1/255 + 16; lib/wire.c asserts it). */
#define FERRY_WIRE_MAX_PAYLOAD (FERRY_WIRE_MAX_DATA + 8192)
#define FERRY_WIRE_MAX_DISKS 64
#define FERRY_WIRE_MAX_STRING 1024	 /* any string */
#define FERRY_WIRE_MAX_NAME 128		 /* disk names, IDs, versions */
#define FERRY_WIRE_MAX_HASHES 4096	 /* hashes in one HASH_RESP */
#define FERRY_WIRE_SECTOR 512		 /* offsets and lengths align */
#define FERRY_WIRE_HASH_LEN 16		 /* XXH3-128, high then low u64 */

enum ferry_frame_type {
	/*
	 * HELLO (client, first frame, seq 1):
	 *   u8[8] magic FERRY_WIRE_MAGIC; u16 min_version; u16 max_version;
	 *   u32 reserved; string agent_version; string source_server_id;
	 *   u16 n_disks (1..FERRY_WIRE_MAX_DISKS); n_disks times:
	 *     string name ("/dev/vda": MGN's deviceName); u64 size_bytes;
	 *     u32 block_size (512 or 4096); u32 reserved.
	 *   The source_server_id must be the one in the client certificate.
	 */
	FERRY_F_HELLO = 1,
	/*
	 * WELCOME (server, answers HELLO, seq 1):
	 *   u16 version (chosen); u16 n_disks (as HELLO); u32 window (client
	 *   frames it may send beyond the last acknowledged one);
	 *   u64 window_bytes (payload bytes likewise); n_disks times, in
	 *   HELLO's order:
	 *     u8[16] volume_id (random, made with the staging volume: a new
	 *       one means the replica was lost: resend everything);
	 *     u64 size_bytes (the volume's size);
	 *     u64 sync_mark (the initial copy is durable below this offset);
	 *     u64 last_cp (last durable consistency point, 0: none).
	 */
	FERRY_F_WELCOME = 2,
	/*
	 * DATA (client): u32 disk (index in HELLO); u8 codec (enum
	 *   ferry_codec); u8[3] reserved; u32 raw_len (decoded bytes,
	 *   1..FERRY_WIRE_MAX_DATA, multiple of FERRY_WIRE_SECTOR);
	 *   u32 reserved; u64 offset (multiple of FERRY_WIRE_SECTOR;
	 *   offset + raw_len <= disk size); u64 xxh3_64 of the decoded
	 *   bytes; then the data: raw_len bytes (raw) or a zstd frame / an
	 *   lz4 block.
	 */
	FERRY_F_DATA = 3,
	/* ZERO (client): u32 disk; u32 reserved; u64 offset; u64 length
	 *   (both multiples of FERRY_WIRE_SECTOR; length >= 1 sector): the
	 *   range reads as zeros (the server punches a hole). */
	FERRY_F_ZERO = 4,
	/* HASH_REQ (client): u32 disk; u32 chunk (power of two, 4 KiB to
	 *   1 MiB); u64 offset (multiple of chunk); u64 length (<= chunk *
	 *   FERRY_WIRE_MAX_HASHES): hash these chunks of the volume. */
	FERRY_F_HASH_REQ = 5,
	/* HASH_RESP (server, seq of the HASH_REQ): u32 disk; u32 chunk;
	 *   u64 offset; u32 count; u32 reserved; count hashes of
	 *   FERRY_WIRE_HASH_LEN bytes (the last chunk may be short at the
	 *   end of the volume: it is hashed as it is). */
	FERRY_F_HASH_RESP = 6,
	/* SYNC_MARK (client): u32 disk; u32 reserved; u64 offset: the
	 *   initial copy has been sent below OFFSET; the server makes it
	 *   durable with the data and returns it in WELCOME. */
	FERRY_F_SYNC_MARK = 7,
	/* CP (client): u64 cp_id (increasing); u64 time_ms (source clock,
	 *   Unix ms): everything sent before this frame, on every disk of
	 *   the connection, forms one crash-consistent image. */
	FERRY_F_CP = 8,
	/* ACK (server): no payload; seq N: every client frame up to N is
	 *   applied and durable (cumulative). */
	FERRY_F_ACK = 9,
	/* PING / PONG (either side): u64 nonce; PONG echoes it. */
	FERRY_F_PING = 10,
	FERRY_F_PONG = 11,
	/* ERROR (either side, seq of the frame at fault or 0): u32 code
	 *   (enum ferry_wire_error); u32 reserved; string message.  With
	 *   flags FERRY_ERR_FATAL the sender closes after it. */
	FERRY_F_ERROR = 12,
	/* BYE (either side): no payload; the sender is closing cleanly. */
	FERRY_F_BYE = 13,
};

#define FERRY_ERR_FATAL 0x01

enum ferry_codec {
	FERRY_CODEC_RAW = 0,
	FERRY_CODEC_ZSTD = 1,
	FERRY_CODEC_LZ4 = 2,
};

enum ferry_wire_error {
	FERRY_E_PROTOCOL = 1,	/* malformed, truncated, oversized frame */
	FERRY_E_VERSION = 2,	/* no common version */
	FERRY_E_DENIED = 3,	/* certificate does not allow this */
	FERRY_E_UNKNOWN_DISK = 4,
	FERRY_E_RANGE = 5,	/* offset or length beyond the volume */
	FERRY_E_NOSPC = 6,	/* staging storage full: retry later */
	FERRY_E_IO = 7,		/* staging storage I/O error */
	FERRY_E_CORRUPT = 8,	/* data does not decode or match its hash */
	FERRY_E_BUSY = 9,	/* another connection holds the disk */
	FERRY_E_INTERNAL = 10,
};

#endif
