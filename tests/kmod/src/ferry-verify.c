// SPDX-License-Identifier: GPL-2.0
/*
 * ferry-verify: check drained extents against a ferry-writer log.  The
 * rules are in verify_core.h; this file is option parsing and exit codes
 * (0 pass, 1 fail, 2 usage or unreadable input).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kt_common.h"
#include "tracker.h"
#include "verify_core.h"

static const char usage[] =
	"usage: ferry-verify --log FILE --granularity G [options]\n"
	"                    --extents FILE [FILE...]\n"
	"\n"
	"Check that the union of the drained extent files (ferryctl tracker\n"
	"drain output) covers every range of the ferry-writer log(s), rounded\n"
	"out to G, and that nothing else was drained.\n"
	"\n"
	"  --log FILE          ferry-writer log (repeatable)\n"
	"  --extents FILE...   drained extents (repeatable; further arguments\n"
	"                      are extent files too)\n"
	"  --granularity G     the tracker's granularity in bytes\n"
	"  --size BYTES        tracked device size: clips the rounding, allows\n"
	"                      a short last extent, flags extents past it\n"
	"  --fs                coverage only: a filesystem writes metadata that\n"
	"                      no log has\n"
	"  --shift BYTES       add BYTES to every logged offset (the log is of\n"
	"                      a device mapped at BYTES inside the tracked one)\n"
	"  --ignore OFF:LEN    drained bytes there are not 'extra' (repeatable;\n"
	"                      e.g. an md superblock)\n"
	"  --max-report N      offending ranges shown per kind (default 10)\n";

static FILE *open_input(const char *path)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;

	if (!f) {
		fprintf(stderr, "ferry-verify: cannot open %s: %s\n", path,
			strerror(errno));
		exit(2);
	}
	return f;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "log", required_argument, NULL, 'l' },
		{ "extents", required_argument, NULL, 'e' },
		{ "granularity", required_argument, NULL, 'g' },
		{ "size", required_argument, NULL, 's' },
		{ "fs", no_argument, NULL, 'f' },
		{ "shift", required_argument, NULL, 'S' },
		{ "ignore", required_argument, NULL, 'i' },
		{ "max-report", required_argument, NULL, 'm' },
		{ NULL, 0, NULL, 0 },
	};
	const char **logs, **exts;
	size_t nlogs = 0, nexts = 0;
	struct verify_cfg cfg;
	struct verify_data d;
	struct verify_result r;
	unsigned int max_show = 10;
	char err[512], verdict[512];
	int c;

	kt_prog = "ferry-verify";
	memset(&cfg, 0, sizeof(cfg));
	extent_set_init(&cfg.ignore);
	logs = calloc((size_t)argc, sizeof(*logs));
	exts = calloc((size_t)argc, sizeof(*exts));
	if (!logs || !exts)
		kt_die("out of memory");

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		uint64_t off, len;

		switch (c) {
		case 'h':
			fputs(usage, stdout);
			return 0;
		case 'l':
			logs[nlogs++] = optarg;
			break;
		case 'e':
			exts[nexts++] = optarg;
			break;
		case 'g':
			cfg.gran = kt_parse_bytes("--granularity", optarg);
			break;
		case 's':
			cfg.size = kt_parse_bytes("--size", optarg);
			break;
		case 'f':
			cfg.fs = true;
			break;
		case 'S':
			cfg.shift = kt_parse_bytes("--shift", optarg);
			break;
		case 'i':
			kt_parse_range("--ignore", optarg, &off, &len);
			if (extent_set_add(&cfg.ignore, off, len) < 0)
				kt_usage("--ignore %s overflows", optarg);
			break;
		case 'm':
			max_show = (unsigned int)kt_parse_bytes("--max-report",
								optarg);
			break;
		case ':':
			kt_usage("option '%s' needs a value", argv[optind - 1]);
		default:
			kt_usage("unknown option '%s'", argv[optind - 1]);
		}
	}
	/* `--extents d.*`: the shell expands to several arguments. */
	while (optind < argc)
		exts[nexts++] = argv[optind++];
	if (!nlogs || !nexts || !cfg.gran)
		kt_usage("--log, --extents and --granularity are required");
	if (!ferry_granularity_valid(cfg.gran))
		kt_usage("--granularity %" PRIu64
			 " is not a power of two from 4096 to 1G", cfg.gran);

	verify_data_init(&d);
	for (size_t i = 0; i < nlogs; i++) {
		FILE *f = open_input(logs[i]);

		if (verify_add_log(&d, &cfg, f, logs[i], err, sizeof(err)))
			kt_usage("%s", err);
		if (f != stdin)
			fclose(f);
	}
	for (size_t i = 0; i < nexts; i++) {
		FILE *f = open_input(exts[i]);

		if (verify_add_extents(&d, &cfg, f, exts[i], err, sizeof(err)))
			kt_usage("%s", err);
		if (f != stdin)
			fclose(f);
	}
	if (verify_check(&d, &cfg, &r))
		kt_die("out of memory comparing the sets");
	verify_report(stdout, &d, &cfg, &r, max_show);
	verify_verdict(verdict, sizeof(verdict), &d, &cfg, &r);
	printf("ferry-verify: %s\n", verdict);
	fflush(stdout);
	c = r.pass ? 0 : 1;
	verify_result_free(&r);
	verify_data_free(&d);
	extent_set_free(&cfg.ignore);
	free(logs);
	free(exts);
	return c;
}
