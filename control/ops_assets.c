// SPDX-License-Identifier: GPL-2.0
/*
 * ops_assets.c - GetAgentInstallationAssetsForMgn: what install.sh
 * installs, with the SHA-512 it checks each download against (assets.h).
 *
 *   {"packageFormat": "deb"|"rpm", "architecture": "x86_64"}
 *   -> {"agentVersion": "0.1.0-1",
 *       "assets": [{"name", "url", "sha512", "size"}, ...]}
 *
 * The assets are ferry-dkms and ferry-agent, in the order they install.
 * The URLs are ferry-control's own (/assets/latest/linux/FORMAT/NAME, on
 * the host the caller reached); install.sh takes the names and digests
 * and may download from --s3-endpoint instead.  Signed with the
 * installer's key (as RegisterAgentForMgn): the digests travel over the
 * control plane, apart from where the files come from.
 */
#include <stdio.h>
#include <string.h>

#include "api.h"
#include "assets.h"
#include "config.h"
#include "model.h"

/* NAME is PACKAGE's file: "ferry-agent_..." (deb) or "ferry-agent-0..."
 * (rpm: a version starts with a digit). */
static bool is_package(const char *name, const char *package)
{
	size_t n = strlen(package);

	return !strncmp(name, package, n) &&
	       (name[n] == '_' || (name[n] == '-' && name[n + 1] >= '0' &&
				   name[n + 1] <= '9'));
}

/* The version in an agent package's name: 0.1.0-1. */
static void version_of(const char *name, const char *format, char *out,
		       size_t len)
{
	const char *v = name + strlen("ferry-agent") + 1, *end;

	if (!strcmp(format, "deb"))
		end = strchr(v, '_');
	else
		end = strrchr(v, '.') ? strrchr(v, '.') : v;
	if (!strcmp(format, "rpm") && end > v) {
		/* ferry-agent-0.1.0-1.x86_64.rpm: drop ".rpm", then ".ARCH" */
		const char *p = end - 1;

		while (p > v && *p != '.')
			p--;
		end = p > v ? p : end;
	}
	snprintf(out, len, "%.*s", end && end > v ? (int)(end - v) : 0, v);
}

static int op_assets(struct api_ctx *ctx, json_t *in, json_t **out)
{
	static const char *const known[] = { "packageFormat", "architecture",
					     NULL };
	static const char *const formats[] = { "deb", "rpm", NULL };
	static const char *const arches[] = { "x86_64", NULL };
	static const char *const order[] = { "ferry-dkms", "ferry-agent",
					     NULL };
	struct asset list[ASSETS_MAX];
	const char *format, *arch;
	char err[1024], version[64] = "", url[768];
	json_t *assets;
	int n;

	if (model_only_keys(ctx, in, known) ||
	    model_get_enum(ctx, in, "packageFormat", true, formats,
			   &format) ||
	    model_get_enum(ctx, in, "architecture", true, arches, &arch))
		return -1;
	n = assets_list(ctx->cfg->assets_dir, format, list, ASSETS_MAX, err,
			sizeof(err));
	if (n < 0)
		return api_error(ctx, API_NOT_FOUND, "%s", err);
	assets = json_array();
	for (int k = 0; order[k]; k++) {
		int i;

		for (i = 0; i < n && !is_package(list[i].name, order[k]); i++)
			;
		if (i == n) {
			json_decref(assets);
			return api_error(ctx, API_NOT_FOUND,
					 "no %s package for %s in %s/%s: "
					 "copy the packages of make %s there",
					 order[k], format,
					 ctx->cfg->assets_dir, format, format);
		}
		if (!strcmp(order[k], "ferry-agent"))
			version_of(list[i].name, format, version,
				   sizeof(version));
		snprintf(url, sizeof(url), "https://%s" ASSETS_URL_PREFIX
			 "%s/%s", ctx->host && *ctx->host ? ctx->host :
			 "localhost", format, list[i].name);
		json_array_append_new(assets, json_pack(
			"{s:s,s:s,s:s,s:I}", "name", list[i].name, "url", url,
			"sha512", list[i].sha512, "size",
			(json_int_t)list[i].size));
	}
	*out = json_pack("{s:s,s:o}", "agentVersion", version, "assets",
			 assets);
	return 0;
}

static const struct api_op assets_ops[] = {
	{ "GetAgentInstallationAssetsForMgn", "POST",
	  "/GetAgentInstallationAssetsForMgn", ROLE_INSTALLER | ROLE_ADMIN,
	  200, op_assets, false },
};

const struct api_module api_module_assets = {
	.name = "assets",
	.schema_sql = NULL,
	.ops = assets_ops,
	.n_ops = sizeof(assets_ops) / sizeof(assets_ops[0]),
};
