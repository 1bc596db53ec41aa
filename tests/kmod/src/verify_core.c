// SPDX-License-Identifier: GPL-2.0
/*
 * ferry-verify's comparison: see verify_core.h.
 */
#include "verify_core.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void verify_data_init(struct verify_data *d)
{
	memset(d, 0, sizeof(*d));
	extent_set_init(&d->logged);
	extent_set_init(&d->drained);
}

void verify_data_free(struct verify_data *d)
{
	extent_set_free(&d->logged);
	extent_set_free(&d->drained);
}

static void set_err(char *err, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
}

/* Parse one decimal u64 token at *p (after blanks); advance *p. */
static int parse_u64(const char **p, uint64_t *v)
{
	const char *s = *p;
	char *end;

	while (*s == ' ' || *s == '\t')
		s++;
	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	*v = strtoull(s, &end, 10);
	if (errno)
		return -1;
	if (*end && !isspace((unsigned char)*end))
		return -1;
	*p = end;
	return 0;
}

/* Blank or '#' comment line? */
static bool skip_line(const char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	return !*s || *s == '#';
}

static bool only_blanks(const char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	return !*s;
}

/*
 * One "[TAG] OFFSET LENGTH" record per line ('#' comments and blank lines
 * skipped), each handed to @fn; @format names the expected line in errors.
 */
typedef int (*record_fn)(struct verify_data *d, const struct verify_cfg *cfg,
			 const char *name, unsigned long lineno, uint64_t off,
			 uint64_t len, char *err, size_t errlen);

static int read_records(struct verify_data *d, const struct verify_cfg *cfg,
			FILE *f, const char *name, bool tagged,
			const char *format, record_fn fn, char *err,
			size_t errlen)
{
	char *line = NULL;
	size_t cap = 0;
	unsigned long lineno = 0;
	int ret = 0;

	while (getline(&line, &cap, f) >= 0) {
		const char *p = line;
		uint64_t off, len;

		lineno++;
		if (skip_line(line))
			continue;
		if (tagged) {
			/* The operation tag: one word before the numbers. */
			while (isspace((unsigned char)*p))
				p++;
			while (*p && !isspace((unsigned char)*p))
				p++;
		}
		if (parse_u64(&p, &off) || parse_u64(&p, &len) ||
		    (!tagged && !only_blanks(p))) {
			set_err(err, errlen, "%s:%lu: expected %s", name,
				lineno, format);
			ret = -1;
			break;
		}
		ret = fn(d, cfg, name, lineno, off, len, err, errlen);
		if (ret)
			break;
	}
	if (!ret && ferror(f)) {
		set_err(err, errlen, "%s: read error: %s", name,
			strerror(errno));
		ret = -1;
	}
	free(line);
	return ret;
}

static int add_logged(struct verify_data *d, const struct verify_cfg *cfg,
		      const char *name, unsigned long lineno, uint64_t off,
		      uint64_t len, char *err, size_t errlen)
{
	uint64_t r_off, r_len;

	if (off > UINT64_MAX - cfg->shift ||
	    off + cfg->shift > UINT64_MAX - len) {
		set_err(err, errlen,
			"%s:%lu: offset %" PRIu64 " + shift %" PRIu64
			" + length %" PRIu64 " overflows", name, lineno, off,
			cfg->shift, len);
		return -1;
	}
	off += cfg->shift;
	if (cfg->size && off + len > cfg->size) {
		set_err(err, errlen,
			"%s:%lu: logged range %" PRIu64 "+%" PRIu64
			" ends past the device size %" PRIu64
			" (wrong --shift, --base-offset or --size?)",
			name, lineno, off, len, cfg->size);
		return -1;
	}
	d->log_ops++;
	d->log_bytes += len;
	if (!extent_round_out(off, len, cfg->gran, cfg->size, &r_off, &r_len))
		return 0;
	if (extent_set_add(&d->logged, r_off, r_len) < 0) {
		set_err(err, errlen, "%s:%lu: out of memory", name, lineno);
		return -1;
	}
	return 0;
}

int verify_add_log(struct verify_data *d, const struct verify_cfg *cfg,
		   FILE *f, const char *name, char *err, size_t errlen)
{
	return read_records(d, cfg, f, name, true,
			    "'OP OFFSET LENGTH ...' (a ferry-writer log)",
			    add_logged, err, errlen);
}

static void note_bad(struct verify_data *d, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void note_bad(struct verify_data *d, const char *fmt, ...)
{
	va_list ap;

	d->bad++;
	if (d->nnotes >= VERIFY_MAX_NOTES)
		return;
	va_start(ap, fmt);
	vsnprintf(d->notes[d->nnotes], sizeof(d->notes[0]), fmt, ap);
	va_end(ap);
	d->nnotes++;
}

/* Record what is wrong with one drained extent, if anything. */
static void check_extent(struct verify_data *d, const struct verify_cfg *cfg,
			 const char *name, unsigned long lineno, uint64_t off,
			 uint64_t len)
{
	uint64_t end = off + len;

	if (!len) {
		note_bad(d, "%s:%lu: empty extent at %" PRIu64, name, lineno,
			 off);
		return;
	}
	if (off % cfg->gran)
		note_bad(d, "%s:%lu: extent %" PRIu64 "+%" PRIu64
			 " starts off the %" PRIu64 "-byte granularity",
			 name, lineno, off, len, cfg->gran);
	else if (len % cfg->gran && cfg->size && end != cfg->size)
		note_bad(d, "%s:%lu: extent %" PRIu64 "+%" PRIu64
			 " is not a multiple of the %" PRIu64
			 "-byte granularity and does not end at the device end",
			 name, lineno, off, len, cfg->gran);
	if (cfg->size && end > cfg->size)
		note_bad(d, "%s:%lu: extent %" PRIu64 "+%" PRIu64
			 " ends past the device size %" PRIu64, name, lineno,
			 off, len, cfg->size);
}

static int add_drained(struct verify_data *d, const struct verify_cfg *cfg,
		       const char *name, unsigned long lineno, uint64_t off,
		       uint64_t len, char *err, size_t errlen)
{
	if (off > UINT64_MAX - len) {
		set_err(err, errlen,
			"%s:%lu: extent %" PRIu64 "+%" PRIu64
			" overflows 64 bits", name, lineno, off, len);
		return -1;
	}
	d->extents++;
	d->ext_bytes += len;
	check_extent(d, cfg, name, lineno, off, len);
	if (extent_set_add(&d->drained, off, len) < 0) {
		set_err(err, errlen, "%s:%lu: out of memory", name, lineno);
		return -1;
	}
	return 0;
}

int verify_add_extents(struct verify_data *d, const struct verify_cfg *cfg,
		       FILE *f, const char *name, char *err, size_t errlen)
{
	d->ext_files++;
	return read_records(d, cfg, f, name, false,
			    "'OFFSET LENGTH' (ferryctl tracker drain output)",
			    add_drained, err, errlen);
}

int verify_check(const struct verify_data *d, const struct verify_cfg *cfg,
		 struct verify_result *r)
{
	struct extent_set tmp = EXTENT_SET_INIT;
	int err;

	extent_set_init(&r->missing);
	extent_set_init(&r->extra);
	r->pass = false;

	err = extent_set_subtract(&r->missing, &d->logged, &d->drained);
	if (err)
		goto fail;
	if (!cfg->fs) {
		err = extent_set_subtract(&tmp, &d->drained, &d->logged);
		if (err)
			goto fail;
		err = extent_set_subtract(&r->extra, &tmp, &cfg->ignore);
		if (err)
			goto fail;
	}
	extent_set_free(&tmp);
	r->pass = !r->missing.n && !r->extra.n && !d->bad;
	return 0;
fail:
	extent_set_free(&tmp);
	verify_result_free(r);
	return err;
}

void verify_result_free(struct verify_result *r)
{
	extent_set_free(&r->missing);
	extent_set_free(&r->extra);
}

static void show_ranges(FILE *out, const char *what,
			const struct extent_set *s, unsigned int max_show)
{
	size_t n = extent_set_count(s);

	for (size_t i = 0; i < n && i < max_show; i++)
		fprintf(out, "  %s %" PRIu64 " %" PRIu64 "\n", what,
			s->v[i].start, s->v[i].end - s->v[i].start);
	if (n > max_show)
		fprintf(out, "  ... and %zu more %s ranges\n", n - max_show,
			what);
}

void verify_report(FILE *out, const struct verify_data *d,
		   const struct verify_cfg *cfg,
		   const struct verify_result *r, unsigned int max_show)
{
	fprintf(out, "log: %" PRIu64 " operations, %" PRIu64
		" bytes; rounded to %" PRIu64 ": %zu ranges, %" PRIu64
		" bytes\n", d->log_ops, d->log_bytes, cfg->gran,
		extent_set_count(&d->logged), extent_set_bytes(&d->logged));
	fprintf(out, "drained: %" PRIu64 " files, %" PRIu64 " extents, %"
		PRIu64 " bytes; union %zu ranges, %" PRIu64 " bytes\n",
		d->ext_files, d->extents, d->ext_bytes,
		extent_set_count(&d->drained), extent_set_bytes(&d->drained));
	if (r->missing.n) {
		fprintf(out,
			"missing (written but never drained): %zu ranges, %"
			PRIu64 " bytes\n", extent_set_count(&r->missing),
			extent_set_bytes(&r->missing));
		show_ranges(out, "missing", &r->missing, max_show);
	}
	if (cfg->fs) {
		struct extent_set extra = EXTENT_SET_INIT;

		/* Informational: the filesystem's own writes. */
		if (!extent_set_subtract(&extra, &d->drained, &d->logged))
			fprintf(out,
				"not logged (filesystem metadata, allowed with --fs): %zu ranges, %"
				PRIu64 " bytes\n", extent_set_count(&extra),
				extent_set_bytes(&extra));
		extent_set_free(&extra);
	} else if (r->extra.n) {
		fprintf(out,
			"extra (drained but never written): %zu ranges, %"
			PRIu64 " bytes\n", extent_set_count(&r->extra),
			extent_set_bytes(&r->extra));
		show_ranges(out, "extra", &r->extra, max_show);
	}
	if (d->bad) {
		fprintf(out, "malformed extents: %" PRIu64 "\n", d->bad);
		for (unsigned int i = 0; i < d->nnotes && i < max_show; i++)
			fprintf(out, "  %s\n", d->notes[i]);
	}
}

void verify_verdict(char *buf, size_t len, const struct verify_data *d,
		    const struct verify_cfg *cfg,
		    const struct verify_result *r)
{
	size_t used;

	if (r->pass) {
		snprintf(buf, len, "PASS %" PRIu64 " logged bytes covered%s",
			 extent_set_bytes(&d->logged),
			 cfg->fs ? " (coverage only)" : ", nothing extra");
		return;
	}
	used = (size_t)snprintf(buf, len, "FAIL:");
	if (r->missing.n && used < len)
		used += (size_t)snprintf(buf + used, len - used,
			" %zu missing ranges (%" PRIu64 " bytes, first at %"
			PRIu64 ");", extent_set_count(&r->missing),
			extent_set_bytes(&r->missing), r->missing.v[0].start);
	if (r->extra.n && used < len)
		used += (size_t)snprintf(buf + used, len - used,
			" %zu extra ranges (%" PRIu64 " bytes, first at %"
			PRIu64 ");", extent_set_count(&r->extra),
			extent_set_bytes(&r->extra), r->extra.v[0].start);
	if (d->bad && used < len)
		snprintf(buf + used, len - used, " %" PRIu64
			 " malformed extents;", d->bad);
}
