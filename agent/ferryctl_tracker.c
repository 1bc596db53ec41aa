// SPDX-License-Identifier: GPL-2.0
/*
 * ferryctl tracker ...: attach, detach, drain, stats and list, thin
 * wrappers around lib/tracker.c that format for people (text) and programs
 * (--json, --raw).
 */
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ferryctl.h"
#include "tracker.h"

static const char tracker_usage[] =
	"usage: ferryctl tracker [-h] SUBCOMMAND ...\n"
	"\n"
	"subcommands:\n"
	"  attach DEV [--granularity BYTES]  start tracking writes to DEV\n"
	"  detach DEV                        stop tracking DEV, drop its set\n"
	"  drain DEV [--json|--raw]          take DEV's dirty set and print it\n"
	"  stats DEV [--json]                show DEV's counters and status\n"
	"  list                              list tracked devices\n"
	"\n"
	"DEV is a block device node or MAJ:MIN (a removed device has no node).\n";

static const char attach_usage[] =
	"usage: ferryctl tracker attach DEV [-g|--granularity BYTES]\n"
	"\n"
	"Start recording which blocks of DEV are written.  BYTES is the size of\n"
	"one tracked block: a power of two from 4096 to 1G (suffixes K, M, G);\n"
	"default 4096.  Prints the attach generation.\n";

static const char detach_usage[] =
	"usage: ferryctl tracker detach DEV\n"
	"\n"
	"Stop tracking DEV and drop its dirty set.  Also the way to release a\n"
	"device whose status is 'gone'.\n";

static const char drain_usage[] =
	"usage: ferryctl tracker drain DEV [--json | --raw]\n"
	"\n"
	"Atomically take DEV's dirty set (a new one starts empty) and print all\n"
	"of it.  Default output: one `OFFSET LENGTH` line per extent, decimal\n"
	"bytes from the start of DEV.  --json: one JSON object with the extents\n"
	"as [offset, length] pairs.  --raw: the struct ferry_extent records\n"
	"(two native-endian u64 each), for programs; not to a terminal.  A\n"
	"summary (extents, bytes, generation, sequence, status) goes to stderr.\n"
	"\n"
	"status: overflow = writes were not recorded, rescan the device;\n"
	"gone = the device was removed, detach it; resized = the size changed,\n"
	"rescan and re-attach.\n";

static const char stats_usage[] =
	"usage: ferryctl tracker stats DEV [--json]\n"
	"\n"
	"Show DEV's tracker counters as `key: value` lines (or one JSON object):\n"
	"device, granularity, generation, size, writes, write_bytes, discards,\n"
	"dirty_blocks, memory_bytes, drains, overflows, status.\n";

static const char list_usage[] =
	"usage: ferryctl tracker list\n"
	"\n"
	"List tracked devices, one per line: MAJ:MIN, node, granularity,\n"
	"generation, dirty blocks, status.\n";

enum out_mode { OUT_TEXT, OUT_JSON, OUT_RAW };

/* JSON string literal; device names are paths, but be correct anyway. */
static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static void json_status(FILE *f, uint32_t status)
{
	bool first = true;

	fputc('[', f);
	/* "more" is paging state, not a property of the set. */
	status &= ~FERRY_STATUS_MORE;
	for (unsigned int i = 0; i < 32; i++) {
		const char *name = ferry_status_bit_name(1u << i);

		if ((status & (1u << i)) && name) {
			fprintf(f, "%s\"%s\"", first ? "" : ",", name);
			first = false;
		}
	}
	fputc(']', f);
}

/* Explain the status bits that need action, on stderr. */
static void warn_status(const struct ferry_blkdev *dev, uint32_t status)
{
	if (status & FERRY_STATUS_OVERFLOW)
		fprintf(stderr,
			"ferryctl: warning: %s: some writes could not be recorded (overflow): the set is incomplete, rescan the device\n",
			dev->name);
	if (status & FERRY_STATUS_GONE)
		fprintf(stderr,
			"ferryctl: warning: %s: the device was removed: detach it\n",
			dev->name);
	if (status & FERRY_STATUS_RESIZED)
		fprintf(stderr,
			"ferryctl: warning: %s: the device changed size since attach: rescan and re-attach it\n",
			dev->name);
}

/* Output to a pipe can fail late (EPIPE, ENOSPC): report it. */
static int finish_stdout(int rc)
{
	if (fflush(stdout) != 0 || ferror(stdout))
		return fail("writing the output failed (disk full or closed pipe?)");
	return rc;
}

static int open_ctl(struct ferry_ctl *ctl)
{
	struct ferry_err err;

	if (ferry_ctl_open(ctl, NULL, &err) < 0)
		return fail("%s", err.msg);
	return EXIT_OK;
}

/* Resolve the device argument, then open the control device. */
static int open_dev_ctl(const char *arg, struct ferry_blkdev *dev,
			struct ferry_ctl *ctl)
{
	struct ferry_err err;

	if (ferry_blkdev_resolve(arg, dev, &err) < 0)
		return fail("%s", err.msg);
	return open_ctl(ctl);
}

/*
 * Parse "SUB [options] DEV" for the subcommands taking one device and at
 * most the flags in allowed (a subset of "gjr").  Returns -1 when parsing
 * succeeded, otherwise the exit code to return (help or usage error).
 */
struct dev_args {
	const char *dev;
	enum out_mode mode;
	uint64_t granularity;
};

static int parse_dev_args(const char *cmd, const char *usage,
			  const char *allowed, int argc, char **argv,
			  struct dev_args *a)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "granularity", required_argument, NULL, 'g' },
		{ "json", no_argument, NULL, 'j' },
		{ "raw", no_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	memset(a, 0, sizeof(*a));
	optind = 0;
	while ((c = getopt_long(argc, argv, ":hg:", opts, NULL)) != -1) {
		if (c == 'h') {
			fputs(usage, stdout);
			return EXIT_OK;
		}
		if (c == '?' || c == ':')
			return bad_option(cmd, argv, c);
		if (!strchr(allowed, c))
			return usage_error(cmd, "option '%s' does not apply here",
					   argv[optind - 1]);
		switch (c) {
		case 'g':
			if (ferry_parse_bytes(optarg, &a->granularity) < 0 ||
			    !ferry_granularity_valid(a->granularity))
				return usage_error(cmd,
						   "granularity '%s' must be a power of two from %u to %u bytes",
						   optarg, FERRY_GRAN_MIN,
						   FERRY_GRAN_MAX);
			break;
		case 'j':
		case 'r':
			if (a->mode != OUT_TEXT)
				return usage_error(cmd,
						   "--json and --raw exclude each other");
			a->mode = c == 'j' ? OUT_JSON : OUT_RAW;
			break;
		}
	}
	if (optind >= argc)
		return usage_error(cmd, "missing DEV");
	if (optind + 1 < argc)
		return usage_error(cmd, "unexpected argument '%s'",
				   argv[optind + 1]);
	a->dev = argv[optind];
	return -1;
}

static int tracker_attach(int argc, char **argv)
{
	struct ferry_blkdev dev;
	struct ferry_stats st;
	struct ferry_err err;
	struct ferry_ctl ctl;
	struct dev_args a;
	char label[300];
	uint64_t gen;
	int rc;

	rc = parse_dev_args("tracker attach", attach_usage, "g", argc, argv,
			    &a);
	if (rc >= 0)
		return rc;
	rc = open_dev_ctl(a.dev, &dev, &ctl);
	if (rc)
		return rc;
	if (ferry_attach(&ctl, &dev, (uint32_t)a.granularity, &gen,
			 &err) < 0) {
		ferry_ctl_close(&ctl);
		return fail("%s", err.msg);
	}
	/* Report what the module chose when asked for the default. */
	if (ferry_stats_get(&ctl, &dev, &st, &err) == 0)
		a.granularity = st.granularity;
	printf("attached %s: granularity %" PRIu64 ", generation %016" PRIx64
	       "\n", ferry_blkdev_label(&dev, label, sizeof(label)),
	       a.granularity ? a.granularity : FERRY_GRAN_DEFAULT, gen);
	ferry_ctl_close(&ctl);
	return finish_stdout(EXIT_OK);
}

static int tracker_detach(int argc, char **argv)
{
	struct ferry_blkdev dev;
	struct ferry_err err;
	struct ferry_ctl ctl;
	struct dev_args a;
	char label[300];
	int rc;

	rc = parse_dev_args("tracker detach", detach_usage, "", argc, argv,
			    &a);
	if (rc >= 0)
		return rc;
	rc = open_dev_ctl(a.dev, &dev, &ctl);
	if (rc)
		return rc;
	rc = ferry_detach(&ctl, &dev, &err);
	ferry_ctl_close(&ctl);
	if (rc < 0)
		return fail("%s", err.msg);
	printf("detached %s\n", ferry_blkdev_label(&dev, label, sizeof(label)));
	return finish_stdout(EXIT_OK);
}

struct drain_out {
	enum out_mode mode;
	uint64_t n;
};

static int print_extent(void *arg, const struct ferry_extent *e)
{
	struct drain_out *o = arg;

	switch (o->mode) {
	case OUT_TEXT:
		printf("%" PRIu64 " %" PRIu64 "\n", (uint64_t)e->offset,
		       (uint64_t)e->length);
		break;
	case OUT_JSON:
		printf("%s[%" PRIu64 ",%" PRIu64 "]", o->n ? "," : "",
		       (uint64_t)e->offset, (uint64_t)e->length);
		break;
	case OUT_RAW:
		if (fwrite(e, sizeof(*e), 1, stdout) != 1)
			return 1;
		break;
	}
	o->n++;
	/* A closed pipe should stop the drain, not spin through it. */
	return ferror(stdout) ? 1 : 0;
}

static int tracker_drain(int argc, char **argv)
{
	struct ferry_drain_info info;
	struct drain_out out = { OUT_TEXT, 0 };
	struct ferry_blkdev dev;
	struct ferry_err err;
	struct ferry_ctl ctl;
	struct dev_args a;
	char sbuf[64], label[300];
	int rc, r;

	rc = parse_dev_args("tracker drain", drain_usage, "jr", argc, argv,
			    &a);
	if (rc >= 0)
		return rc;
	if (a.mode == OUT_RAW && isatty(STDOUT_FILENO))
		return usage_error("tracker drain",
				   "--raw writes binary records: redirect stdout to a file or pipe");
	rc = open_dev_ctl(a.dev, &dev, &ctl);
	if (rc)
		return rc;

	out.mode = a.mode;
	if (a.mode == OUT_JSON) {
		fputs("{\"device\":", stdout);
		json_str(stdout, dev.name);
		printf(",\"major\":%" PRIu32 ",\"minor\":%" PRIu32
		       ",\"extents\":[", dev.major, dev.minor);
	}
	r = ferry_drain(&ctl, &dev, 0, print_extent, &out, &info, &err);
	ferry_ctl_close(&ctl);
	if (r > 0) {
		r = -1;
		snprintf(err.msg, sizeof(err.msg),
			 "drain %.200s: writing the extents failed after %" PRIu64
			 " of them: the set is incomplete, rescan the device (pages not read yet go into the next drain)",
			 dev.name, out.n);
	}
	if (a.mode == OUT_JSON) {
		/* Close the object even on failure so it stays valid JSON. */
		printf("],\"generation\":\"%016" PRIx64 "\",\"sequence\":%" PRIu64
		       ",\"set_bytes\":%" PRIu64 ",\"nr_extents\":%" PRIu64
		       ",\"bytes\":%" PRIu64 ",\"status\":",
		       info.generation, info.sequence, info.set_bytes,
		       info.extents, info.bytes);
		json_status(stdout, info.status);
		if (r < 0) {
			fputs(",\"error\":", stdout);
			json_str(stdout, err.msg);
		}
		fputs("}\n", stdout);
	}
	if (r < 0) {
		finish_stdout(EXIT_FAIL);
		return fail("%s", err.msg);
	}
	fprintf(stderr,
		"drained %s: %" PRIu64 " extents, %" PRIu64 " bytes, generation %016"
		PRIx64 ", sequence %" PRIu64 ", status %s\n",
		ferry_blkdev_label(&dev, label, sizeof(label)), info.extents,
		info.bytes, info.generation, info.sequence,
		ferry_status_str(info.status, sbuf, sizeof(sbuf)));
	warn_status(&dev, info.status);
	return finish_stdout(EXIT_OK);
}

static void print_stats_text(const struct ferry_blkdev *dev,
			     const struct ferry_stats *st)
{
	char sbuf[64], label[300];


	printf("device: %s\n", ferry_blkdev_label(dev, label, sizeof(label)));
	printf("granularity: %" PRIu32 "\n", st->granularity);
	printf("generation: %016" PRIx64 "\n", (uint64_t)st->generation);
	printf("size: %" PRIu64 "\n", (uint64_t)st->size);
	printf("writes: %" PRIu64 "\n", (uint64_t)st->writes);
	printf("write_bytes: %" PRIu64 "\n", (uint64_t)st->write_bytes);
	printf("discards: %" PRIu64 "\n", (uint64_t)st->discards);
	printf("dirty_blocks: %" PRIu64 "\n", (uint64_t)st->dirty_blocks);
	printf("memory_bytes: %" PRIu64 "\n", (uint64_t)st->memory_bytes);
	printf("drains: %" PRIu64 "\n", (uint64_t)st->drains);
	printf("overflows: %" PRIu64 "\n", (uint64_t)st->overflows);
	printf("status: %s\n",
	       ferry_status_str(st->status, sbuf, sizeof(sbuf)));
}

static void print_stats_json(const struct ferry_blkdev *dev,
			     const struct ferry_stats *st)
{
	fputs("{\"device\":", stdout);
	json_str(stdout, dev->name);
	printf(",\"major\":%" PRIu32 ",\"minor\":%" PRIu32
	       ",\"granularity\":%" PRIu32 ",\"generation\":\"%016" PRIx64 "\""
	       ",\"size\":%" PRIu64 ",\"writes\":%" PRIu64
	       ",\"write_bytes\":%" PRIu64 ",\"discards\":%" PRIu64
	       ",\"dirty_blocks\":%" PRIu64 ",\"memory_bytes\":%" PRIu64
	       ",\"drains\":%" PRIu64 ",\"overflows\":%" PRIu64
	       ",\"status\":", dev->major, dev->minor, st->granularity,
	       (uint64_t)st->generation, (uint64_t)st->size,
	       (uint64_t)st->writes, (uint64_t)st->write_bytes,
	       (uint64_t)st->discards, (uint64_t)st->dirty_blocks,
	       (uint64_t)st->memory_bytes, (uint64_t)st->drains,
	       (uint64_t)st->overflows);
	json_status(stdout, st->status);
	printf(",\"status_bits\":%" PRIu32 "}\n", st->status);
}

static int tracker_stats(int argc, char **argv)
{
	struct ferry_blkdev dev;
	struct ferry_stats st;
	struct ferry_err err;
	struct ferry_ctl ctl;
	struct dev_args a;
	int rc;

	rc = parse_dev_args("tracker stats", stats_usage, "j", argc, argv,
			    &a);
	if (rc >= 0)
		return rc;
	rc = open_dev_ctl(a.dev, &dev, &ctl);
	if (rc)
		return rc;
	rc = ferry_stats_get(&ctl, &dev, &st, &err);
	ferry_ctl_close(&ctl);
	if (rc < 0)
		return fail("%s", err.msg);
	if (a.mode == OUT_JSON)
		print_stats_json(&dev, &st);
	else
		print_stats_text(&dev, &st);
	return finish_stdout(EXIT_OK);
}

/* /dev/NAME for a device number, from sysfs; "MAJ:MIN" if unknown. */
static void dev_name(const struct ferry_dev *d, char *buf, size_t len)
{
	char link[64], target[PATH_MAX];
	const char *base;
	ssize_t n;

	snprintf(link, sizeof(link), "/sys/dev/block/%" PRIu32 ":%" PRIu32,
		 (uint32_t)d->major, (uint32_t)d->minor);
	n = readlink(link, target, sizeof(target) - 1);
	if (n <= 0) {
		snprintf(buf, len, "%" PRIu32 ":%" PRIu32, (uint32_t)d->major,
			 (uint32_t)d->minor);
		return;
	}
	target[n] = '\0';
	base = strrchr(target, '/');
	/* Block device names are short; the precision keeps gcc calm. */
	snprintf(buf, len, "/dev/%.200s", base ? base + 1 : target);
}

static int tracker_list(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct ferry_dev *devs;
	struct ferry_err err;
	struct ferry_ctl ctl;
	size_t nr;
	int c, rc;

	optind = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		if (c == 'h') {
			fputs(list_usage, stdout);
			return EXIT_OK;
		}
		return bad_option("tracker list", argv, c);
	}
	if (optind < argc)
		return usage_error("tracker list", "unexpected argument '%s'",
				   argv[optind]);
	rc = open_ctl(&ctl);
	if (rc)
		return rc;
	if (ferry_list(&ctl, &devs, &nr, &err) < 0) {
		ferry_ctl_close(&ctl);
		return fail("%s", err.msg);
	}
	for (size_t i = 0; i < nr; i++) {
		struct ferry_blkdev dev;
		struct ferry_stats st;
		char sbuf[64];

		dev.major = devs[i].major;
		dev.minor = devs[i].minor;
		dev_name(&devs[i], dev.name, sizeof(dev.name));
		printf("%" PRIu32 ":%" PRIu32 " %s", dev.major, dev.minor,
		       dev.name);
		/* It may be detached between LIST and STATS. */
		if (ferry_stats_get(&ctl, &dev, &st, &err) < 0)
			printf(" (%s)\n", ferry_strerror(FERRY_OP_STATS,
							 err.errnum));
		else
			printf(" granularity %" PRIu32 " generation %016" PRIx64
			       " dirty_blocks %" PRIu64 " status %s\n",
			       st.granularity, (uint64_t)st.generation,
			       (uint64_t)st.dirty_blocks,
			       ferry_status_str(st.status, sbuf, sizeof(sbuf)));
	}
	free(devs);
	ferry_ctl_close(&ctl);
	return finish_stdout(EXIT_OK);
}

int cmd_tracker(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *sub;
	int c;

	optind = 0;
	while ((c = getopt_long(argc, argv, "+:h", opts, NULL)) != -1) {
		if (c == 'h') {
			fputs(tracker_usage, stdout);
			return EXIT_OK;
		}
		return bad_option("tracker", argv, c);
	}
	if (optind >= argc)
		return usage_error("tracker", "missing SUBCOMMAND");
	sub = argv[optind];
	argc -= optind;
	argv += optind;
	if (!strcmp(sub, "attach"))
		return tracker_attach(argc, argv);
	if (!strcmp(sub, "detach"))
		return tracker_detach(argc, argv);
	if (!strcmp(sub, "drain"))
		return tracker_drain(argc, argv);
	if (!strcmp(sub, "stats"))
		return tracker_stats(argc, argv);
	if (!strcmp(sub, "list"))
		return tracker_list(argc, argv);
	if (!strcmp(sub, "help")) {
		fputs(tracker_usage, stdout);
		return EXIT_OK;
	}
	return usage_error("tracker", "unknown subcommand '%s'", sub);
}
