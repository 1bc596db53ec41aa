// SPDX-License-Identifier: GPL-2.0
/*
 * ferryctl: command-line control of the ferry tracker, and the agent's
 * status.  This file holds the top level: global help, `version`, and the
 * dispatch to command groups.
 *
 * Exit codes: 0 success, 1 the operation failed, 2 usage error.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ferryctl.h"
#include "tracker.h"

static const char top_usage[] =
	"usage: ferryctl [-h] COMMAND ...\n"
	"\n"
	"Control the ferry change tracker (ferry.ko) and see what ferry-agent\n"
	"is doing.\n"
	"\n"
	"commands:\n"
	"  status [--json] [--state-dir DIR]         show the agent's replication status\n"
	"  tracker attach DEV [--granularity BYTES]  start tracking DEV\n"
	"  tracker detach DEV                        stop tracking DEV\n"
	"  tracker drain DEV [--json|--raw]          take and print DEV's dirty set\n"
	"  tracker stats DEV [--json]                show DEV's counters\n"
	"  tracker list                              list tracked devices\n"
	"  version                                   show ferryctl and ferry.ko versions\n"
	"\n"
	"DEV is a block device node (/dev/vdb, /dev/vdb1) or MAJ:MIN.\n"
	"Run `ferryctl COMMAND --help` for details.  Needs root.\n"
	"\n"
	"exit status: 0 success, 1 the operation failed, 2 usage error\n";

static const char version_usage[] =
	"usage: ferryctl version\n"
	"\n"
	"Print the version of ferryctl and, if it is loaded, of ferry.ko (module\n"
	"version, ABI version, load id).  Fails when the module is not loaded or\n"
	"speaks another ABI.\n";

int usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "ferryctl%s%s: ", cmd ? " " : "", cmd ? cmd : "");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see ferryctl%s%s --help)\n", cmd ? " " : "",
		cmd ? cmd : "");
	return EXIT_USAGE;
}

int fail(const char *fmt, ...)
{
	va_list ap;

	fputs("ferryctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return EXIT_FAIL;
}

int bad_option(const char *cmd, char **argv, int c)
{
	const char *arg = optind > 0 ? argv[optind - 1] : "?";

	if (c == ':')
		return usage_error(cmd, "option '%s' needs a value", arg);
	return usage_error(cmd, "unknown option '%s'", arg);
}

static int cmd_version(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct ferry_version v;
	struct ferry_err err;
	struct ferry_ctl ctl;
	int c, rc = EXIT_OK;

	optind = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		if (c == 'h') {
			fputs(version_usage, stdout);
			return EXIT_OK;
		}
		return bad_option("version", argv, c);
	}
	if (optind != argc)
		return usage_error("version", "unexpected argument '%s'",
				   argv[optind]);

	printf("ferryctl %s (ABI %d)\n", FERRY_VERSION, FERRY_ABI_VERSION);
	fflush(stdout);
	if (ferry_ctl_open(&ctl, NULL, &err) < 0)
		return fail("%s", err.msg);
	if (ferry_version_get(&ctl, &v, &err) < 0) {
		rc = fail("%s", err.msg);
	} else {
		printf("ferry.ko %s (ABI %" PRIu32 ", load id %016" PRIx64 ")\n",
		       v.version, v.abi, (uint64_t)v.load_id);
		if (v.abi != FERRY_ABI_VERSION)
			rc = fail("ferry.ko speaks ABI %" PRIu32
				  " but ferryctl speaks ABI %d: install matching versions of the module and the tools",
				  v.abi, FERRY_ABI_VERSION);
	}
	ferry_ctl_close(&ctl);
	return rc;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *cmd;
	int c;

	/* Our own messages say which option and where to find help. */
	opterr = 0;
	/* "+": stop at the command so its options are left to it. */
	while ((c = getopt_long(argc, argv, "+:h", opts, NULL)) != -1) {
		if (c == 'h') {
			fputs(top_usage, stdout);
			return EXIT_OK;
		}
		return bad_option(NULL, argv, c);
	}
	if (optind >= argc)
		return usage_error(NULL, "missing COMMAND");

	cmd = argv[optind];
	argc -= optind;
	argv += optind;
	if (!strcmp(cmd, "tracker"))
		return cmd_tracker(argc, argv);
	if (!strcmp(cmd, "status"))
		return cmd_status(argc, argv);
	if (!strcmp(cmd, "version"))
		return cmd_version(argc, argv);
	if (!strcmp(cmd, "help")) {
		fputs(top_usage, stdout);
		return EXIT_OK;
	}
	return usage_error(NULL, "unknown command '%s'", cmd);
}
