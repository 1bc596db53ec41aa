// SPDX-License-Identifier: GPL-2.0
/*
 * snap_policy.c - point-in-time policies: "INTERVAL:RETENTION" rules, as
 * the replicator's pit_policy setting spells them, and the bound on how
 * many snapshots one may keep (snap_policy.h).
 */
#include "snap_policy.h"

#include <inttypes.h>
#include <string.h>

#include "errmsg.h"

static int parse_dur(const char *s, const char *end, uint64_t *ms)
{
	uint64_t v = 0, unit;
	const char *p = s;

	while (p < end && *p >= '0' && *p <= '9') {
		if (v > UINT64_MAX / 10 / 1000 / 604800)
			return -1;
		v = v * 10 + (uint64_t)(*p++ - '0');
	}
	if (p == s || p + 1 != end)
		return -1;
	switch (*p) {
	case 's': unit = 1000; break;
	case 'm': unit = 60000; break;
	case 'h': unit = 3600000; break;
	case 'd': unit = 86400000; break;
	case 'w': unit = 604800000; break;
	default: return -1;
	}
	*ms = v * unit;
	return v ? 0 : -1;
}

int snap_policy_parse(struct snap_policy *p, const char *s, char *err,
		      size_t errlen)
{
	struct snap_policy out = { 0 };
	const char *q = s;

	while (*q) {
		const char *a, *colon, *b;
		struct snap_rule r;

		while (*q == ' ' || *q == '\t' || *q == ',')
			q++;
		if (!*q)
			break;
		a = q;
		while (*q && *q != ',' && *q != ' ' && *q != '\t')
			q++;
		b = q;
		colon = memchr(a, ':', (size_t)(b - a));
		if (!colon || parse_dur(a, colon, &r.interval_ms) ||
		    parse_dur(colon + 1, b, &r.retention_ms) ||
		    r.retention_ms < r.interval_ms) {
			set_err(err, errlen, "pit_policy: bad rule '%.*s': "
				"want INTERVAL:RETENTION, e.g. 10m:1h (units s "
				"m h d w, retention >= interval)",
				(int)(b - a), a);
			return -1;
		}
		if (out.n == SNAP_MAX_RULES) {
			set_err(err, errlen, "pit_policy: more than %d rules",
				SNAP_MAX_RULES);
			return -1;
		}
		out.rule[out.n++] = r;
	}
	if (!out.n) {
		set_err(err, errlen, "pit_policy: no rule (want e.g. '"
			SNAP_DEFAULT_POLICY "')");
		return -1;
	}
	if (snap_policy_check(&out, err, errlen))
		return -1;
	*p = out;
	return 0;
}

uint64_t snap_policy_kept(const struct snap_policy *p)
{
	uint64_t kept = 0;

	/* Retention / interval per rule, and one more for the interval
	 * the retention window starts in. */
	for (unsigned int r = 0; r < p->n; r++)
		kept += p->rule[r].retention_ms / p->rule[r].interval_ms + 1;
	return kept;
}

int snap_policy_check(const struct snap_policy *p, char *err, size_t errlen)
{
	uint64_t kept = snap_policy_kept(p);

	if (kept > SNAP_MAX_KEPT) {
		set_err(err, errlen, "the point-in-time policy keeps up to %"
			PRIu64 " snapshots, more than %d: reading the oldest "
			"goes through every later one; take them less often "
			"or keep them for less time", kept, SNAP_MAX_KEPT);
		return -1;
	}
	return 0;
}
