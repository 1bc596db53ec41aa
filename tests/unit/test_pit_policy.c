// SPDX-License-Identifier: GPL-2.0
/*
 * test_pit_policy: ferry-control's pitPolicy rules (MGN's model) turned
 * into the replicator's snapshot policy (replicator/pit_policy.c).
 */
#include <jansson.h>

#include "check.h"
#include "../../replicator/pit_policy.h"

/* pit_policy_from_mgn() of the JSON text S: its result, *P and ERR. */
static int from(const char *s, struct snap_policy *p, char *err,
		size_t errlen)
{
	json_error_t jerr;
	json_t *j = json_loads(s, JSON_DECODE_ANY, &jerr);
	int rc;

	if (!j) {
		fprintf(stderr, "bad test JSON %s: %s\n", s, jerr.text);
		return -2;
	}
	rc = pit_policy_from_mgn(p, j, err, errlen);
	json_decref(j);
	return rc;
}

/* MGN's default, the one ferry-control gives a new server. */
static void test_default(void)
{
	struct snap_policy p;
	char err[256], buf[128];

	CHECK(from("[{\"ruleID\":1,\"units\":\"MINUTE\",\"interval\":10,"
		   "\"retentionDuration\":60,\"enabled\":true},"
		   "{\"ruleID\":2,\"units\":\"HOUR\",\"interval\":1,"
		   "\"retentionDuration\":24,\"enabled\":true},"
		   "{\"ruleID\":3,\"units\":\"DAY\",\"interval\":1,"
		   "\"retentionDuration\":7,\"enabled\":true}]",
		   &p, err, sizeof(err)) == 0);
	CHECK_U64(p.n, 3);
	CHECK_U64(p.rule[0].interval_ms, 600000);
	CHECK_U64(p.rule[0].retention_ms, 3600000);
	CHECK_U64(p.rule[1].retention_ms, 86400000);
	CHECK_U64(p.rule[2].retention_ms, 7ull * 86400000);
	pit_policy_format(&p, buf, sizeof(buf));
	CHECK_STR(buf, "10m:1h, 1h:1d, 1d:1w");
}

/* Disabled rules are skipped; "enabled" absent means enabled. */
static void test_disabled(void)
{
	struct snap_policy p;
	char err[256], buf[128];

	CHECK(from("[{\"ruleID\":1,\"units\":\"MINUTE\",\"interval\":10,"
		   "\"retentionDuration\":60,\"enabled\":false},"
		   "{\"units\":\"HOUR\",\"interval\":2,"
		   "\"retentionDuration\":5}]", &p, err, sizeof(err)) == 0);
	CHECK_U64(p.n, 1);
	pit_policy_format(&p, buf, sizeof(buf));
	CHECK_STR(buf, "2h:5h");
}

/* Each refusal names the rule and leaves the policy as it was. */
static void test_refusals(void)
{
	static const struct {
		const char *json, *why;
	} bad[] = {
		{ "null", "not a list" },
		{ "{\"units\":\"DAY\"}", "not a list" },
		{ "[]", "no enabled rule" },
		{ "[{\"ruleID\":4,\"units\":\"DAY\",\"interval\":1,"
		  "\"retentionDuration\":1,\"enabled\":false}]",
		  "no enabled rule" },
		{ "[3]", "rule #1 is not an object" },
		{ "[{\"ruleID\":7,\"units\":\"SECOND\",\"interval\":1,"
		  "\"retentionDuration\":1}]",
		  "rule 7: units SECOND is not MINUTE, HOUR or DAY" },
		{ "[{\"interval\":1,\"retentionDuration\":1}]",
		  "units missing" },
		{ "[{\"units\":\"HOUR\",\"interval\":0,"
		  "\"retentionDuration\":1}]", "whole numbers of HOUR" },
		{ "[{\"units\":\"HOUR\",\"interval\":\"1\","
		  "\"retentionDuration\":1}]", "whole numbers" },
		{ "[{\"units\":\"HOUR\",\"interval\":1,"
		  "\"retentionDuration\":-3}]", "whole numbers" },
		{ "[{\"units\":\"DAY\",\"interval\":1,"
		  "\"retentionDuration\":9223372036854775807}]",
		  "from 1 to a century" },
		{ "[{\"ruleID\":2,\"units\":\"HOUR\",\"interval\":2,"
		  "\"retentionDuration\":1}]",
		  "rule 2: retentionDuration is shorter than interval" },
		{ "[{\"units\":\"HOUR\",\"interval\":1,"
		  "\"retentionDuration\":1,\"enabled\":1}]",
		  "enabled is not true or false" },
		{ "[{\"units\":\"MINUTE\",\"interval\":1,"
		  "\"retentionDuration\":10080}]",
		  "keeps up to 10081 snapshots, more than 4000" },
	};
	struct snap_policy p = { .n = 1, .rule = { { 5000, 9000 } } };
	char err[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		CHECK(from(bad[i].json, &p, err, sizeof(err)) == -1);
		CHECK_HAS(err, bad[i].why);
		CHECK(p.n == 1 && p.rule[0].interval_ms == 5000);
	}
}

/* At most SNAP_MAX_RULES enabled rules; disabled ones do not count. */
static void test_too_many(void)
{
	struct snap_policy p;
	char err[256];
	json_t *list = json_array();
	int rc;

	for (int i = 0; i < SNAP_MAX_RULES; i++)
		json_array_append_new(list, json_pack(
			"{s:i,s:s,s:i,s:i}", "ruleID", i, "units", "MINUTE",
			"interval", i + 1, "retentionDuration", 60));
	json_array_append_new(list, json_pack(
		"{s:s,s:i,s:i,s:b}", "units", "DAY", "interval", 1,
		"retentionDuration", 7, "enabled", 0));
	CHECK(pit_policy_from_mgn(&p, list, err, sizeof(err)) == 0);
	CHECK_U64(p.n, SNAP_MAX_RULES);
	json_array_append_new(list, json_pack(
		"{s:s,s:i,s:i}", "units", "DAY", "interval", 1,
		"retentionDuration", 7));
	rc = pit_policy_from_mgn(&p, list, err, sizeof(err));
	CHECK(rc == -1);
	CHECK_HAS(err, "more than 8 enabled rules");
	json_decref(list);
}

int main(void)
{
	RUN(test_default);
	RUN(test_disabled);
	RUN(test_refusals);
	RUN(test_too_many);
	return check_exit();
}
