// SPDX-License-Identifier: GPL-2.0
/*
 * ferry-writer: write a seeded random mix to a block device or to files on
 * a mounted filesystem, and log every device range that changed, so that
 * ferry-verify can compare the log with what the tracker drained.
 *
 * Log format, one completed operation per line (offsets relative to the
 * tracked device, i.e. with --base-offset added):
 *   W OFFSET LENGTH direct              O_DIRECT write
 *   B OFFSET LENGTH fsync|fdatasync     buffered write, then the sync
 *   D OFFSET LENGTH discard             BLKDISCARD
 *   Z OFFSET LENGTH zeroout             BLKZEROOUT
 *   P OFFSET LENGTH punch               fallocate(PUNCH_HOLE)
 *   R OFFSET LENGTH zerorange           fallocate(ZERO_RANGE)
 *   F OFFSET LENGTH file=NAME foff=N    file write, mapped with FIEMAP
 * and lines starting with '#' (header, skipped operations).  A line is
 * written only after its operation (and its sync) completed.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <linux/falloc.h>
#include <linux/fs.h>

#include "fiemap_map.h"
#include "kt_common.h"

#define MAX_IO		(1u << 20)	/* largest single operation */
#define MIN_IO		512u
#define FS_DIO_ALIGN	4096u		/* safe O_DIRECT alignment on any fs */

enum op { OP_DIRECT, OP_BUFFERED, OP_DISCARD, OP_ZEROOUT, OP_PUNCH,
	  OP_ZERORANGE, NOPS };

static const struct {
	const char *name;
	char tag;
	unsigned int weight;	/* relative frequency in the default mix */
} ops[NOPS] = {
	[OP_DIRECT]	= { "direct", 'W', 35 },
	[OP_BUFFERED]	= { "buffered", 'B', 35 },
	[OP_DISCARD]	= { "discard", 'D', 8 },
	[OP_ZEROOUT]	= { "zeroout", 'Z', 8 },
	[OP_PUNCH]	= { "punch", 'P', 7 },
	[OP_ZERORANGE]	= { "zerorange", 'R', 7 },
};

struct writer {
	struct kt_rng rng;
	FILE *log;
	const char *log_path;
	uint64_t base;		/* added to every logged offset */
	uint64_t max_io;
	unsigned char *buf;
	bool enabled[NOPS];
	uint64_t done[NOPS];
	uint64_t bytes[NOPS];

	/* device mode */
	const char *dev;
	int fd_direct;
	int fd_buffered;
	uint64_t dev_size;
	uint64_t area_off;
	uint64_t area_len;
	unsigned int lbs;

	/* filesystem mode */
	const char *dir;
	const char *backing;
	uint64_t backing_size;
	unsigned int nfiles;
	uint64_t file_size;
	uint64_t file_ops;
	uint64_t recreates;
};

static const char usage[] =
	"usage: ferry-writer --count N --seed S --log FILE [options] DEV\n"
	"       ferry-writer --count N --seed S --log FILE --dir MOUNTPOINT\n"
	"                    --backing DEV [options]\n"
	"\n"
	"Write a seeded random mix and append every changed device range to\n"
	"FILE (- for stdout).  --count 0 writes until killed or an error.\n"
	"\n"
	"device mode (DEV or --device DEV):\n"
	"  --ops LIST          comma list of direct,buffered,discard,zeroout,\n"
	"                      punch,zerorange (default: all)\n"
	"  --range OFF:LEN     only write inside [OFF, OFF+LEN) of DEV\n"
	"filesystem mode:\n"
	"  --dir MOUNTPOINT    write files there (fsync each write) and log the\n"
	"                      device ranges FIEMAP maps them to\n"
	"  --backing DEV       the device the filesystem is on (checked)\n"
	"  --files N           number of files (default 8)\n"
	"  --file-size BYTES   largest file offset written (default 8M)\n"
	"common:\n"
	"  --base-offset BYTES added to logged offsets: DEV's offset inside the\n"
	"                      tracked device (a partition's start)\n"
	"  --max-size BYTES    largest operation (default and at most 1M)\n";

static void log_op(struct writer *w, enum op op, uint64_t off, uint64_t len,
		   const char *what)
{
	fprintf(w->log, "%c %" PRIu64 " %" PRIu64 " %s\n", ops[op].tag,
		w->base + off, len, what);
	/* Flushed per line so a killed writer leaves a complete log. */
	if (fflush(w->log) != 0)
		kt_die("writing the log %s failed: %s", w->log_path,
		       strerror(errno));
	w->done[op]++;
	w->bytes[op] += len;
}

/*
 * Sizes are log-uniform from MIN_IO to max_io (as many small as large
 * operations, as on real disks), multiples of align, and at most limit.
 */
static uint64_t pick_size(struct writer *w, uint64_t align, uint64_t limit)
{
	uint64_t lo = align > MIN_IO ? align : MIN_IO;
	uint64_t hi = (uint64_t)MIN_IO << kt_rng_below(&w->rng, 12);
	uint64_t size;

	if (hi > w->max_io)
		hi = w->max_io;
	if (hi > limit)
		hi = limit;
	if (hi < lo)
		hi = lo;
	size = lo + kt_rng_below(&w->rng, hi - lo + 1);
	size -= size % align;
	return size < align ? align : size;
}

/* An offset in the write area for size bytes, a multiple of align. */
static uint64_t pick_offset(struct writer *w, uint64_t size, uint64_t align)
{
	uint64_t off = w->area_off +
		       kt_rng_below(&w->rng, w->area_len - size + 1);

	return off - (off - w->area_off) % align;
}

static enum op pick_op(struct writer *w)
{
	unsigned int total = 0, r;

	for (int i = 0; i < NOPS; i++)
		if (w->enabled[i])
			total += ops[i].weight;
	if (!total)
		kt_die("%s: every selected operation is unsupported by the device",
		       w->dev);
	r = (unsigned int)kt_rng_below(&w->rng, total);
	for (int i = 0; i < NOPS; i++) {
		if (!w->enabled[i])
			continue;
		if (r < ops[i].weight)
			return (enum op)i;
		r -= ops[i].weight;
	}
	return OP_DIRECT;
}

/* Turn an operation off for the rest of the run when the device lacks it. */
static bool unsupported(struct writer *w, enum op op, int e)
{
	if (e != EOPNOTSUPP && e != ENOTTY && e != ENOSYS)
		return false;
	w->enabled[op] = false;
	fprintf(w->log, "# %s unsupported on %s (%s): no longer used\n",
		ops[op].name, w->dev, strerror(e));
	fflush(w->log);
	return true;
}

/* One device operation; false if it was skipped as unsupported. */
static bool dev_op(struct writer *w, enum op op)
{
	uint64_t lbs = w->lbs, size, off, range[2];
	bool aligned = op != OP_BUFFERED || kt_rng_below(&w->rng, 2);
	uint64_t align = aligned ? lbs : 1;
	int r, mode;

	size = pick_size(w, align, w->area_len);
	off = pick_offset(w, size, align);

	switch (op) {
	case OP_DIRECT:
		kt_rng_fill(&w->rng, w->buf, size);
		if (kt_pwrite_full(w->fd_direct, w->buf, size, off) < 0)
			kt_die("O_DIRECT write of %" PRIu64 " bytes at %" PRIu64
			       " to %s failed: %s", size, off, w->dev,
			       strerror(errno));
		log_op(w, op, off, size, "direct");
		return true;
	case OP_BUFFERED: {
		bool datasync = kt_rng_below(&w->rng, 2);

		kt_rng_fill(&w->rng, w->buf, size);
		if (kt_pwrite_full(w->fd_buffered, w->buf, size, off) < 0)
			kt_die("buffered write of %" PRIu64 " bytes at %"
			       PRIu64 " to %s failed: %s", size, off, w->dev,
			       strerror(errno));
		/* Synced at once: a later discard would drop dirty pages. */
		r = datasync ? fdatasync(w->fd_buffered) :
			       fsync(w->fd_buffered);
		if (r < 0)
			kt_die("%s of %s failed: %s",
			       datasync ? "fdatasync" : "fsync", w->dev,
			       strerror(errno));
		log_op(w, op, off, size, datasync ? "fdatasync" : "fsync");
		return true;
	}
	case OP_DISCARD:
	case OP_ZEROOUT:
		range[0] = off;
		range[1] = size;
		if (ioctl(w->fd_direct, op == OP_DISCARD ? BLKDISCARD :
			  BLKZEROOUT, range) < 0) {
			if (unsupported(w, op, errno))
				return false;
			kt_die("%s of %" PRIu64 " bytes at %" PRIu64
			       " on %s failed: %s", op == OP_DISCARD ?
			       "BLKDISCARD" : "BLKZEROOUT", size, off, w->dev,
			       strerror(errno));
		}
		log_op(w, op, off, size, ops[op].name);
		return true;
	case OP_PUNCH:
	case OP_ZERORANGE:
		mode = FALLOC_FL_KEEP_SIZE | (op == OP_PUNCH ?
			FALLOC_FL_PUNCH_HOLE : FALLOC_FL_ZERO_RANGE);
		if (fallocate(w->fd_direct, mode, (off_t)off,
			      (off_t)size) < 0) {
			if (unsupported(w, op, errno))
				return false;
			kt_die("fallocate(%s) of %" PRIu64 " bytes at %" PRIu64
			       " on %s failed: %s", ops[op].name, size, off,
			       w->dev, strerror(errno));
		}
		log_op(w, op, off, size, ops[op].name);
		return true;
	default:
		return false;
	}
}

static void dev_open(struct writer *w)
{
	struct stat st;

	w->fd_direct = open(w->dev, O_WRONLY | O_DIRECT | O_CLOEXEC);
	if (w->fd_direct < 0)
		kt_die("cannot open %s with O_DIRECT: %s", w->dev,
		       strerror(errno));
	if (fstat(w->fd_direct, &st) < 0 || !S_ISBLK(st.st_mode))
		kt_die("%s is not a block device: for files use --dir", w->dev);
	w->fd_buffered = open(w->dev, O_WRONLY | O_CLOEXEC);
	if (w->fd_buffered < 0)
		kt_die("cannot open %s: %s", w->dev, strerror(errno));
	if (kt_blkdev_size(w->fd_direct, &w->dev_size) < 0 ||
	    kt_blkdev_lbs(w->fd_direct, &w->lbs) < 0)
		kt_die("cannot read the size of %s: %s", w->dev,
		       strerror(errno));
	if (!w->area_len) {
		w->area_len = w->dev_size - w->area_off;
		if (w->area_off > w->dev_size)
			w->area_len = 0;
	}
	if (w->area_off % FS_DIO_ALIGN || w->area_len < MAX_IO / 16 ||
	    w->area_off > w->dev_size ||
	    w->area_len > w->dev_size - w->area_off)
		kt_die("--range %" PRIu64 ":%" PRIu64 " does not fit %s (%"
		       PRIu64 " bytes): it must start at a multiple of 4096, be at least 64K, and end inside the device",
		       w->area_off, w->area_len, w->dev, w->dev_size);
	/* Keep aligned ops inside the area after rounding. */
	w->area_len -= w->area_len % w->lbs;
}

/* FIEMAP callback: log one device piece of a file write. */
struct file_piece_ctx {
	struct writer *w;
	const char *name;
};

static int log_file_piece(void *arg, uint64_t phys, uint64_t len,
			  uint64_t logical)
{
	struct file_piece_ctx *c = arg;
	struct writer *w = c->w;
	char what[PATH_MAX + 64];

	if (w->backing_size && phys + len > w->backing_size)
		kt_die("FIEMAP mapped %s offset %" PRIu64 " to %" PRIu64
		       "+%" PRIu64 ", past the end of %s (%" PRIu64
		       " bytes): is --backing the filesystem's device?",
		       c->name, logical, phys, len, w->backing,
		       w->backing_size);
	snprintf(what, sizeof(what), "file=%s foff=%" PRIu64, c->name,
		 logical);
	fprintf(w->log, "F %" PRIu64 " %" PRIu64 " %s\n", w->base + phys, len,
		what);
	return 0;
}

static void file_op(struct writer *w)
{
	unsigned int idx = (unsigned int)kt_rng_below(&w->rng, w->nfiles);
	bool direct = kt_rng_below(&w->rng, 2);
	bool datasync = kt_rng_below(&w->rng, 2);
	bool recreate = kt_rng_below(&w->rng, 10) == 0;
	uint64_t align = direct ? FS_DIO_ALIGN : 1, size, off, bad = 0;
	struct file_piece_ctx ctx;
	struct fiemap_extent *ext;
	char path[PATH_MAX], name[64];
	int fd, flags = O_WRONLY | O_CREAT | O_CLOEXEC, r;
	size_t n;

	snprintf(name, sizeof(name), "ferry-writer.%u", idx);
	snprintf(path, sizeof(path), "%s/%s", w->dir, name);
	/* Truncating frees blocks: later writes land on new ones. */
	if (recreate) {
		flags |= O_TRUNC;
		w->recreates++;
	}
	if (direct)
		flags |= O_DIRECT;
	fd = open(path, flags, 0644);
	if (fd < 0)
		kt_die("cannot open %s: %s", path, strerror(errno));

	size = pick_size(w, align, w->file_size);
	off = kt_rng_below(&w->rng, w->file_size - size + 1);
	off -= off % align;
	kt_rng_fill(&w->rng, w->buf, size);
	if (kt_pwrite_full(fd, w->buf, size, off) < 0)
		kt_die("%s write of %" PRIu64 " bytes at %" PRIu64
		       " to %s failed: %s", direct ? "O_DIRECT" : "buffered",
		       size, off, path, strerror(errno));
	r = datasync ? fdatasync(fd) : fsync(fd);
	if (r < 0)
		kt_die("%s of %s failed: %s", datasync ? "fdatasync" : "fsync",
		       path, strerror(errno));

	if (fm_fetch(fd, off, size, &ext, &n) < 0)
		kt_die("FIEMAP of %s failed: %s (the filesystem must support FIEMAP, e.g. ext4)",
		       path, strerror(errno));
	ctx.w = w;
	ctx.name = name;
	r = fm_map_range(ext, n, off, size, log_file_piece, &ctx, &bad);
	if (r == -1)
		kt_die("FIEMAP left byte %" PRIu64 " of %s unmapped after %s: cannot tell where the write went",
		       bad, path, datasync ? "fdatasync" : "fsync");
	if (r == -2)
		kt_die("FIEMAP maps byte %" PRIu64 " of %s to an extent without a device location (unwritten, inline, encoded or delayed) after a sync",
		       bad, path);
	free(ext);
	close(fd);
	if (fflush(w->log) != 0)
		kt_die("writing the log %s failed: %s", w->log_path,
		       strerror(errno));
	w->file_ops++;
	w->done[direct ? OP_DIRECT : OP_BUFFERED]++;
	w->bytes[direct ? OP_DIRECT : OP_BUFFERED] += size;
}

static void fs_open(struct writer *w)
{
	struct stat dst, bst;
	int fd;

	if (!w->backing)
		kt_usage("--dir needs --backing DEV, the filesystem's device");
	if (stat(w->dir, &dst) < 0 || !S_ISDIR(dst.st_mode))
		kt_die("--dir %s is not a directory", w->dir);
	if (stat(w->backing, &bst) < 0 || !S_ISBLK(bst.st_mode))
		kt_die("--backing %s is not a block device", w->backing);
	/* FIEMAP offsets are relative to the filesystem's own device. */
	if (dst.st_dev != bst.st_rdev)
		kt_die("%s is not on %s (its filesystem is on device %u:%u): FIEMAP offsets would be meaningless",
		       w->dir, w->backing, major(dst.st_dev),
		       minor(dst.st_dev));
	fd = open(w->backing, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || kt_blkdev_size(fd, &w->backing_size) < 0)
		kt_die("cannot read the size of %s: %s", w->backing,
		       strerror(errno));
	close(fd);
	if (w->file_size < FS_DIO_ALIGN * 2)
		kt_usage("--file-size must be at least 8K");
	w->dev = w->backing;
}

static void parse_ops(struct writer *w, const char *list)
{
	char *copy = strdup(list), *save = NULL, *tok;

	if (!copy)
		kt_die("out of memory");
	memset(w->enabled, 0, sizeof(w->enabled));
	for (tok = strtok_r(copy, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		int i;

		for (i = 0; i < NOPS; i++)
			if (!strcmp(tok, ops[i].name))
				break;
		if (i == NOPS)
			kt_usage("--ops: unknown operation '%s'", tok);
		w->enabled[i] = true;
	}
	free(copy);
}

static void summary(const struct writer *w, uint64_t count)
{
	fprintf(stderr, "%s: %" PRIu64 " operations on %s:", kt_prog, count,
		w->dir ? w->dir : w->dev);
	for (int i = 0; i < NOPS; i++)
		if (w->done[i])
			fprintf(stderr, " %s %" PRIu64 " (%" PRIu64 " bytes)",
				ops[i].name, w->done[i], w->bytes[i]);
	if (w->dir)
		fprintf(stderr, ", %" PRIu64 " files recreated", w->recreates);
	fputc('\n', stderr);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "count", required_argument, NULL, 'n' },
		{ "seed", required_argument, NULL, 's' },
		{ "log", required_argument, NULL, 'l' },
		{ "device", required_argument, NULL, 'd' },
		{ "base-offset", required_argument, NULL, 'b' },
		{ "range", required_argument, NULL, 'r' },
		{ "ops", required_argument, NULL, 'o' },
		{ "max-size", required_argument, NULL, 'm' },
		{ "dir", required_argument, NULL, 'D' },
		{ "backing", required_argument, NULL, 'B' },
		{ "files", required_argument, NULL, 'f' },
		{ "file-size", required_argument, NULL, 'F' },
		{ NULL, 0, NULL, 0 },
	};
	struct writer w;
	uint64_t count = 0, seed = 0, done = 0;
	bool have_count = false, have_seed = false;
	int c;

	kt_prog = "ferry-writer";
	memset(&w, 0, sizeof(w));
	w.max_io = MAX_IO;
	w.nfiles = 8;
	w.file_size = 8u << 20;
	for (int i = 0; i < NOPS; i++)
		w.enabled[i] = true;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			fputs(usage, stdout);
			return 0;
		case 'n':
			count = kt_parse_bytes("--count", optarg);
			have_count = true;
			break;
		case 's':
			seed = kt_parse_bytes("--seed", optarg);
			have_seed = true;
			break;
		case 'l':
			w.log_path = optarg;
			break;
		case 'd':
			w.dev = optarg;
			break;
		case 'b':
			w.base = kt_parse_bytes("--base-offset", optarg);
			break;
		case 'r':
			kt_parse_range("--range", optarg, &w.area_off,
				       &w.area_len);
			break;
		case 'o':
			parse_ops(&w, optarg);
			break;
		case 'm':
			w.max_io = kt_parse_bytes("--max-size", optarg);
			if (w.max_io < MIN_IO || w.max_io > MAX_IO)
				kt_usage("--max-size must be from 512 to 1M");
			break;
		case 'D':
			w.dir = optarg;
			break;
		case 'B':
			w.backing = optarg;
			break;
		case 'f':
			w.nfiles = (unsigned int)kt_parse_bytes("--files",
								optarg);
			if (!w.nfiles || w.nfiles > 10000)
				kt_usage("--files must be from 1 to 10000");
			break;
		case 'F':
			w.file_size = kt_parse_bytes("--file-size", optarg);
			break;
		case ':':
			kt_usage("option '%s' needs a value", argv[optind - 1]);
		default:
			kt_usage("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc) {
		if (w.dev || optind + 1 < argc)
			kt_usage("unexpected argument '%s'", argv[optind]);
		w.dev = argv[optind];
	}
	if (!have_count || !have_seed || !w.log_path)
		kt_usage("--count, --seed and --log are required");
	if (!w.dir == !w.dev)
		kt_usage("give either a device or --dir (not both)");

	if (!strcmp(w.log_path, "-"))
		w.log = stdout;
	else
		w.log = fopen(w.log_path, "a");
	if (!w.log)
		kt_die("cannot open the log %s: %s", w.log_path,
		       strerror(errno));
	w.buf = kt_aligned_alloc(FS_DIO_ALIGN, MAX_IO);
	kt_rng_seed(&w.rng, seed);

	if (w.dir)
		fs_open(&w);
	else
		dev_open(&w);
	fprintf(w.log, "# ferry-writer seed=%" PRIu64 " count=%" PRIu64
		" target=%s base=%" PRIu64, seed, count,
		w.dir ? w.dir : w.dev, w.base);
	if (!w.dir)
		fprintf(w.log, " range=%" PRIu64 ":%" PRIu64 " size=%" PRIu64
			" lbs=%u", w.area_off, w.area_len, w.dev_size, w.lbs);
	fputc('\n', w.log);

	while (!count || done < count) {
		if (w.dir) {
			file_op(&w);
			done++;
		} else if (dev_op(&w, pick_op(&w))) {
			done++;
		}
	}
	summary(&w, done);
	if (w.log != stdout && fclose(w.log) != 0)
		kt_die("closing the log %s failed: %s", w.log_path,
		       strerror(errno));
	free(w.buf);
	return 0;
}
