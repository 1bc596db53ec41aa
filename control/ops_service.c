// SPDX-License-Identifier: GPL-2.0
/*
 * ops_service.c - InitializeService, and the check that every other
 * public operation makes that it has been called.
 */
#include "api_service.h"

#include <stdlib.h>

#include "model.h"
#include "replication.h"
#include "store.h"

/* The meta key whose presence means InitializeService was called; its
 * value is when, first. */
#define META_INITIALIZED "initialized"

int api_require_initialized(struct api_ctx *ctx)
{
	char *v = store_meta_get(ctx->st, META_INITIALIZED);

	if (v) {
		free(v);
		return 0;
	}
	api_error(ctx, API_UNINITIALIZED,
		  "Account not initialized. Call InitializeService first.");
	api_error_field(ctx, "code", json_string("UNINITIALIZED_ACCOUNT"));
	return -1;
}

/*
 * Idempotent, as MGN's: a second call keeps the first time and makes no
 * second default template.
 */
static int op_initialize_service(struct api_ctx *ctx, json_t *in,
				 json_t **out)
{
	static const char *const known[] = { NULL };
	char *v, when[32];

	if (model_only_keys(ctx, in, known))
		return -1;
	v = store_meta_get(ctx->st, META_INITIALIZED);
	if (!v) {
		model_time(ctx->now, when, sizeof(when));
		if (store_meta_set(ctx->st, META_INITIALIZED, when))
			return api_error(ctx, API_INTERNAL,
					 "cannot record the initialisation");
	}
	free(v);
	/* MGN makes the default replication template at initialisation. */
	return repl_default_template(ctx);
}

static const struct api_op service_ops[] = {
	{ "InitializeService", "POST", "/InitializeService", ROLE_ADMIN, 204,
	  op_initialize_service, false },
};

const struct api_module api_module_service = {
	.name = "service",
	.schema_sql = NULL,
	.ops = service_ops,
	.n_ops = sizeof(service_ops) / sizeof(service_ops[0]),
};
