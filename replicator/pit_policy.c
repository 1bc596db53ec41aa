// SPDX-License-Identifier: GPL-2.0
/*
 * pit_policy.c - MGN's pitPolicy rules as a struct snap_policy
 * (pit_policy.h).
 */
#include "pit_policy.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "errmsg.h"

/* Beyond a century a rule means nothing; the bound also keeps the
 * snapshot code's time sums far from overflowing. */
#define MAX_MS (100ull * 366 * 86400000)

static const struct {
	const char *name;
	uint64_t ms;
} units[] = {
	{ "MINUTE", 60000 },
	{ "HOUR", 3600000 },
	{ "DAY", 86400000 },
};

/* Member KEY of rule R: a whole number of UNIT_MS from 1 up to MAX_MS. */
static int rule_ms(json_t *r, const char *key, uint64_t unit_ms,
		   uint64_t *ms)
{
	json_t *v = json_object_get(r, key);
	json_int_t n;

	if (!json_is_integer(v))
		return -1;
	n = json_integer_value(v);
	if (n < 1 || (uint64_t)n > MAX_MS / unit_ms)
		return -1;
	*ms = (uint64_t)n * unit_ms;
	return 0;
}

int pit_policy_from_mgn(struct snap_policy *p, json_t *rules, char *err,
			size_t errlen)
{
	struct snap_policy out = { 0 };
	char name[48];
	json_t *r, *v;
	size_t i, k;

	if (!json_is_array(rules)) {
		set_err(err, errlen, "pitPolicy is not a list of rules");
		return -1;
	}
	json_array_foreach(rules, i, r) {
		struct snap_rule ru;
		const char *u;

		v = json_object_get(r, "ruleID");
		if (json_is_integer(v))
			snprintf(name, sizeof(name), "rule %" JSON_INTEGER_FORMAT,
				 json_integer_value(v));
		else
			snprintf(name, sizeof(name), "rule #%zu", i + 1);
		if (!json_is_object(r)) {
			set_err(err, errlen, "pitPolicy %s is not an object",
				name);
			return -1;
		}
		v = json_object_get(r, "enabled");
		if (v && !json_is_boolean(v)) {
			set_err(err, errlen, "pitPolicy %s: enabled is not "
				"true or false", name);
			return -1;
		}
		if (json_is_false(v))
			continue;
		u = json_string_value(json_object_get(r, "units"));
		for (k = 0; u && k < sizeof(units) / sizeof(units[0]); k++)
			if (!strcmp(u, units[k].name))
				break;
		if (!u || k == sizeof(units) / sizeof(units[0])) {
			set_err(err, errlen, "pitPolicy %s: units %s is not "
				"MINUTE, HOUR or DAY", name, u ? u : "missing");
			return -1;
		}
		if (rule_ms(r, "interval", units[k].ms, &ru.interval_ms) ||
		    rule_ms(r, "retentionDuration", units[k].ms,
			    &ru.retention_ms)) {
			set_err(err, errlen, "pitPolicy %s: interval and "
				"retentionDuration must be whole numbers of "
				"%s from 1 to a century", name, u);
			return -1;
		}
		if (ru.retention_ms < ru.interval_ms) {
			set_err(err, errlen, "pitPolicy %s: retentionDuration "
				"is shorter than interval", name);
			return -1;
		}
		if (out.n == SNAP_MAX_RULES) {
			set_err(err, errlen, "pitPolicy has more than %d "
				"enabled rules", SNAP_MAX_RULES);
			return -1;
		}
		out.rule[out.n++] = ru;
	}
	/* With no rule only the first snapshot would ever be taken: the
	 * caller falls back to a policy that takes some. */
	if (!out.n) {
		set_err(err, errlen, "pitPolicy has no enabled rule");
		return -1;
	}
	if (snap_policy_check(&out, err, errlen))
		return -1;
	*p = out;
	return 0;
}

static void dur(uint64_t ms, char *buf, size_t len)
{
	static const struct {
		char c;
		uint64_t ms;
	} u[] = {
		{ 'w', 604800000 }, { 'd', 86400000 }, { 'h', 3600000 },
		{ 'm', 60000 }, { 's', 1000 },
	};

	for (size_t i = 0; i < sizeof(u) / sizeof(u[0]); i++) {
		if (ms && ms % u[i].ms == 0) {
			snprintf(buf, len, "%" PRIu64 "%c", ms / u[i].ms,
				 u[i].c);
			return;
		}
	}
	snprintf(buf, len, "%" PRIu64 "ms", ms);
}

void pit_policy_format(const struct snap_policy *p, char *buf, size_t len)
{
	size_t off = 0;

	if (len)
		buf[0] = '\0';
	for (unsigned int i = 0; i < p->n && off < len; i++) {
		char a[32], b[32];

		dur(p->rule[i].interval_ms, a, sizeof(a));
		dur(p->rule[i].retention_ms, b, sizeof(b));
		off += (size_t)snprintf(buf + off, len - off, "%s%s:%s",
					i ? ", " : "", a, b);
	}
}
