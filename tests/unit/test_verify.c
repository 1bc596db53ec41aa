// SPDX-License-Identifier: GPL-2.0
/*
 * Unit tests of ferry-verify's logic (tests/kmod/src/verify_core.c) and of
 * ferry-writer's FIEMAP range mapping (tests/kmod/src/fiemap_map.c).
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>

#include "check.h"
#include "../kmod/src/fiemap_map.h"
#include "../kmod/src/verify_core.h"

struct run {
	struct verify_cfg cfg;
	struct verify_data d;
	struct verify_result r;
	char err[512];
	char verdict[512];
	int load;		/* 0, or -1 when a file did not parse */
};

static int feed(struct run *t, const char *text, bool is_log)
{
	FILE *f = fmemopen((void *)text, strlen(text), "r");
	int ret;

	if (!f)
		return -1;
	ret = is_log ? verify_add_log(&t->d, &t->cfg, f, "log", t->err,
				      sizeof(t->err)) :
		       verify_add_extents(&t->d, &t->cfg, f, "ext", t->err,
					  sizeof(t->err));
	fclose(f);
	return ret;
}

/*
 * Run a verification: log text, NULL-terminated list of extent texts.
 * Returns pass/fail; t keeps the details (free with done()).
 */
static bool verify(struct run *t, uint64_t gran, uint64_t size, bool fs,
		   const char *log, ...)
{
	va_list ap;
	const char *ext;

	memset(t->err, 0, sizeof(t->err));
	t->cfg.gran = gran;
	t->cfg.size = size;
	t->cfg.fs = fs;
	verify_data_init(&t->d);
	t->load = feed(t, log, true);
	va_start(ap, log);
	while (!t->load && (ext = va_arg(ap, const char *)))
		t->load = feed(t, ext, false);
	va_end(ap);
	if (t->load)
		return false;
	if (verify_check(&t->d, &t->cfg, &t->r))
		return false;
	verify_verdict(t->verdict, sizeof(t->verdict), &t->d, &t->cfg, &t->r);
	return t->r.pass;
}

static void done(struct run *t)
{
	if (!t->load)
		verify_result_free(&t->r);
	verify_data_free(&t->d);
	extent_set_free(&t->cfg.ignore);
	memset(t, 0, sizeof(*t));
}

static void test_exact(void)
{
	struct run t = { 0 };

	/* Unaligned writes round out to whole granules. */
	CHECK(verify(&t, 4096, 0, false,
		     "# header\nW 100 10 direct\n\nB 8191 2 fsync\n",
		     "0 4096\n", "8192 4096\n4096 4096\n", NULL));
	CHECK_HAS(t.verdict, "PASS");
	CHECK_U64(t.d.log_ops, 2);
	CHECK_U64(t.d.log_bytes, 12);
	CHECK_U64(t.d.extents, 3);
	CHECK_U64(t.d.ext_files, 2);
	done(&t);

	/* Overlapping drains (a block dirty in two sets) are fine. */
	CHECK(verify(&t, 4096, 0, false, "W 0 8192\n", "0 8192\n",
		     "4096 4096\n", NULL));
	done(&t);

	/* Nothing written, nothing drained. */
	CHECK(verify(&t, 4096, 0, false, "# empty\n", "", NULL));
	done(&t);
}

static void test_missing(void)
{
	struct run t = { 0 };

	CHECK(!verify(&t, 4096, 0, false, "W 0 4096\nW 65536 100\n",
		      "0 4096\n", NULL));
	CHECK_U64(extent_set_count(&t.r.missing), 1);
	CHECK_U64(t.r.missing.v[0].start, 65536);
	CHECK_U64(t.r.missing.v[0].end, 69632);
	CHECK_HAS(t.verdict, "FAIL: 1 missing ranges (4096 bytes, first at 65536)");
	done(&t);

	/* Partly covered: only the uncovered granule is missing. */
	CHECK(!verify(&t, 4096, 0, false, "W 0 12288\n", "0 4096\n",
		      "8192 4096\n", NULL));
	CHECK_U64(extent_set_bytes(&t.r.missing), 4096);
	CHECK_U64(t.r.missing.v[0].start, 4096);
	done(&t);
}

static void test_extra_and_fs(void)
{
	struct run t = { 0 };

	CHECK(!verify(&t, 4096, 0, false, "W 0 4096\n", "0 8192\n", NULL));
	CHECK_U64(extent_set_count(&t.r.extra), 1);
	CHECK_U64(t.r.extra.v[0].start, 4096);
	CHECK_HAS(t.verdict, "extra");
	done(&t);

	/* --fs: extra allowed, missing still not. */
	CHECK(verify(&t, 4096, 0, true, "F 0 4096 file=a foff=0\n",
		     "0 8192\n", NULL));
	CHECK_HAS(t.verdict, "coverage only");
	done(&t);
	CHECK(!verify(&t, 4096, 0, true, "F 0 4096 file=a foff=0\n",
		      "4096 4096\n", NULL));
	done(&t);

	/* --ignore: the md superblock area is not extra. */
	extent_set_add(&t.cfg.ignore, 0, 1 << 20);
	CHECK(verify(&t, 4096, 0, false, "W 2097152 4096\n", "4096 4096\n",
		     "2097152 4096\n", NULL));
	done(&t);
	extent_set_add(&t.cfg.ignore, 0, 1 << 20);
	CHECK(!verify(&t, 4096, 0, false, "W 2097152 4096\n",
		      "2097152 8192\n", NULL));
	done(&t);
}

static void test_granularity_and_end(void)
{
	struct run t = { 0 };

	/* 64K granularity: a 512-byte write needs its whole granule. */
	CHECK(verify(&t, 65536, 0, false, "W 70000 512\n", "65536 65536\n",
		     NULL));
	done(&t);
	CHECK(!verify(&t, 65536, 1 << 26, false, "W 70000 512\n",
		      "65536 4096\n", NULL));
	/* ...and a 4K extent is malformed at 64K granularity. */
	CHECK_U64(t.d.bad, 1);
	done(&t);
	/* Without --size a short length may be the device end: allowed. */
	CHECK(!verify(&t, 65536, 0, false, "W 70000 512\n",
		      "65536 4096\n", NULL));
	CHECK_U64(t.d.bad, 0);
	CHECK_U64(extent_set_bytes(&t.r.missing), 61440);
	done(&t);

	/* The last granule is short at the device end. */
	CHECK(verify(&t, 4096, 10000, false, "W 9000 1000\n",
		     "8192 1808\n", NULL));
	done(&t);
	/* A short extent that does not end at the device end. */
	CHECK(!verify(&t, 4096, 20000, false, "W 9000 1000\n",
		      "8192 1808\n", NULL));
	CHECK_U64(t.d.bad, 1);
	CHECK_HAS(t.d.notes[0], "not a multiple");
	done(&t);
	/* Past the device end. */
	CHECK(!verify(&t, 4096, 8192, false, "W 0 100\n", "0 4096\n",
		      "8192 4096\n", NULL));
	CHECK_HAS(t.d.notes[0], "past the device size");
	done(&t);
	/* Misaligned start, and an empty extent. */
	CHECK(!verify(&t, 4096, 0, false, "W 0 100\n", "0 4096\n100 4096\n",
		      "0 0\n", NULL));
	CHECK_U64(t.d.bad, 2);
	done(&t);
}

static void test_shift(void)
{
	struct run t = { 0 };

	/* A log of a device mapped 8 MiB into the tracked one. */
	t.cfg.shift = 8 << 20;
	CHECK(verify(&t, 4096, 0, false, "W 0 4096\n", "8388608 4096\n",
		     NULL));
	done(&t);
	t.cfg.shift = 8 << 20;
	CHECK(!verify(&t, 4096, 0, false, "W 0 4096\n", "0 4096\n", NULL));
	done(&t);
}

static void test_parse_errors(void)
{
	struct run t = { 0 };

	CHECK(!verify(&t, 4096, 0, false, "W 0 4096\nW zero 1\n", "0 4096\n",
		      NULL));
	CHECK(t.load == -1);
	CHECK_HAS(t.err, "log:2:");
	done(&t);
	CHECK(!verify(&t, 4096, 0, false, "W 0 4096\n", "0 4096 12\n", NULL));
	CHECK_HAS(t.err, "ext:1:");
	done(&t);
	CHECK(!verify(&t, 4096, 0, false, "W 0 4096\n", "0\n", NULL));
	CHECK_HAS(t.err, "OFFSET LENGTH");
	done(&t);
	CHECK(!verify(&t, 4096, 0, false, "W 0 4096\n",
		      "18446744073709551615 2\n", NULL));
	CHECK_HAS(t.err, "overflows");
	done(&t);
	/* A logged range past the device: wrong --base-offset or --size. */
	CHECK(!verify(&t, 4096, 4096, false, "W 4000 200\n", "0 4096\n",
		      NULL));
	CHECK_HAS(t.err, "past the device size");
	done(&t);
	/* Comments and blank lines, with CRLF and trailing blanks. */
	CHECK(verify(&t, 4096, 0, false, "  # c\r\n\nW 0 1 x y z\r\n",
		     "# drained\n0 4096  \r\n\n", NULL));
	done(&t);
}

static void test_report(void)
{
	struct run t = { 0 };
	char *buf = NULL;
	size_t len = 0;
	FILE *f;

	CHECK(!verify(&t, 4096, 0, false,
		      "W 0 4096\nW 16384 4096\nW 32768 4096\n", "0 4096\n",
		      "65536 4096\n", NULL));
	f = open_memstream(&buf, &len);
	verify_report(f, &t.d, &t.cfg, &t.r, 1);
	fclose(f);
	CHECK_HAS(buf, "missing (written but never drained): 2 ranges");
	CHECK_HAS(buf, "  missing 16384 4096\n");
	CHECK_HAS(buf, "... and 1 more missing ranges");
	CHECK_HAS(buf, "  extra 65536 4096\n");
	free(buf);
	done(&t);
}

/* ---- FIEMAP mapping ------------------------------------------------- */

struct pieces {
	uint64_t phys[8], len[8], logical[8];
	int n;
	int stop_after;
};

static int piece_cb(void *arg, uint64_t phys, uint64_t len, uint64_t logical)
{
	struct pieces *p = arg;

	if (p->n < 8) {
		p->phys[p->n] = phys;
		p->len[p->n] = len;
		p->logical[p->n] = logical;
	}
	p->n++;
	return p->stop_after && p->n == p->stop_after ? 9 : 0;
}

static void test_fiemap_map(void)
{
	struct fiemap_extent ext[3];
	struct pieces p;
	uint64_t bad = 0;

	memset(ext, 0, sizeof(ext));
	ext[0].fe_logical = 0;
	ext[0].fe_physical = 1 << 20;
	ext[0].fe_length = 8192;
	ext[1].fe_logical = 8192;
	ext[1].fe_physical = 5 << 20;
	ext[1].fe_length = 8192;
	ext[2].fe_logical = 32768;
	ext[2].fe_physical = 9 << 20;
	ext[2].fe_length = 4096;
	ext[2].fe_flags = FIEMAP_EXTENT_UNWRITTEN | FIEMAP_EXTENT_LAST;

	/* Inside one extent. */
	memset(&p, 0, sizeof(p));
	CHECK(fm_map_range(ext, 3, 100, 1000, piece_cb, &p, &bad) == 0);
	CHECK(p.n == 1);
	CHECK_U64(p.phys[0], (1 << 20) + 100);
	CHECK_U64(p.len[0], 1000);
	CHECK_U64(p.logical[0], 100);

	/* Across two extents that are apart on the device. */
	memset(&p, 0, sizeof(p));
	CHECK(fm_map_range(ext, 3, 8000, 1000, piece_cb, &p, &bad) == 0);
	CHECK(p.n == 2);
	CHECK_U64(p.phys[0], (1 << 20) + 8000);
	CHECK_U64(p.len[0], 192);
	CHECK_U64(p.phys[1], 5 << 20);
	CHECK_U64(p.len[1], 808);
	CHECK_U64(p.logical[1], 8192);

	/* Into the hole after the second extent. */
	memset(&p, 0, sizeof(p));
	CHECK(fm_map_range(ext, 3, 16000, 1000, piece_cb, &p, &bad) == -1);
	CHECK_U64(bad, 16384);
	/* Entirely in the hole. */
	CHECK(fm_map_range(ext, 3, 20000, 100, piece_cb, &p, &bad) == -1);
	CHECK_U64(bad, 20000);
	/* Past every extent. */
	CHECK(fm_map_range(ext, 3, 40000, 100, piece_cb, &p, &bad) == -1);
	CHECK_U64(bad, 40000);
	/* Unwritten after a sync: cannot be trusted. */
	CHECK(fm_map_range(ext, 3, 32768, 100, piece_cb, &p, &bad) == -2);
	CHECK_U64(bad, 32768);
	/* No extents at all. */
	CHECK(fm_map_range(ext, 0, 0, 100, piece_cb, &p, &bad) == -1);
	CHECK_U64(bad, 0);

	/* The callback stops the walk. */
	memset(&p, 0, sizeof(p));
	p.stop_after = 1;
	CHECK(fm_map_range(ext, 3, 0, 16384, piece_cb, &p, &bad) == 9);
	CHECK(p.n == 1);
}

int main(void)
{
	RUN(test_exact);
	RUN(test_missing);
	RUN(test_extra_and_fs);
	RUN(test_granularity_and_end);
	RUN(test_shift);
	RUN(test_parse_errors);
	RUN(test_report);
	RUN(test_fiemap_map);
	return check_exit();
}
