// SPDX-License-Identifier: GPL-2.0
/* api.c - the operation table and AWS-style errors. */
#include "api.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const struct api_module *const api_modules[] = {
	&api_module_service,	&api_module_source_servers,
	&api_module_replication, &api_module_tags,
	&api_module_jobs,	&api_module_agent,
	&api_module_replicator,	&api_module_assets,
	&api_module_launch,
};
const size_t api_n_modules = sizeof(api_modules) / sizeof(api_modules[0]);

static const struct {
	int status;
	const char *type;
} api_errors[API_ERR_COUNT] = {
	[API_OK] = { 200, "" },
	[API_VALIDATION] = { 400, "ValidationException" },
	[API_UNINITIALIZED] = { 400, "UninitializedAccountException" },
	[API_NOT_FOUND] = { 404, "ResourceNotFoundException" },
	[API_CONFLICT] = { 409, "ConflictException" },
	[API_ACCESS_DENIED] = { 403, "AccessDeniedException" },
	[API_QUOTA] = { 402, "ServiceQuotaExceededException" },
	[API_THROTTLING] = { 429, "ThrottlingException" },
	[API_INTERNAL] = { 500, "InternalServerException" },
	[API_UNKNOWN_OPERATION] = { 404, "UnknownOperationException" },
	[API_SERIALIZATION] = { 400, "SerializationException" },
	[API_TOO_LARGE] = { 413, "RequestEntityTooLargeException" },
	[API_MISSING_AUTH] = { 403, "MissingAuthenticationTokenException" },
	[API_INCOMPLETE_SIGNATURE] = { 400, "IncompleteSignatureException" },
	[API_INVALID_SIGNATURE] = { 403, "InvalidSignatureException" },
	[API_UNRECOGNIZED_CLIENT] = { 403, "UnrecognizedClientException" },
	[API_EXPIRED_TOKEN] = { 403, "ExpiredTokenException" },
};

int api_err_status(enum api_err err)
{
	return err < API_ERR_COUNT ? api_errors[err].status : 500;
}

const char *api_err_type(enum api_err err)
{
	return err < API_ERR_COUNT ? api_errors[err].type :
				     "InternalServerException";
}

const struct api_op *api_find_op(const char *method, const char *path,
				 const char **param)
{
	size_t m, i;

	*param = NULL;
	for (m = 0; m < api_n_modules; m++) {
		const struct api_module *mod = api_modules[m];

		if (!mod)
			continue;
		for (i = 0; i < mod->n_ops; i++) {
			const struct api_op *op = &mod->ops[i];
			size_t n = strlen(op->path);

			if (strcmp(op->method, method))
				continue;
			/* "/tags/" takes the rest of the path as parameter */
			if (op->path[n - 1] == '/') {
				if (!strncmp(path, op->path, n) && path[n]) {
					*param = path + n;
					return op;
				}
			} else if (!strcmp(path, op->path)) {
				return op;
			}
		}
	}
	return NULL;
}

__attribute__((format(printf, 3, 0)))
static int api_verror(struct api_ctx *ctx, enum api_err err, const char *fmt,
		      va_list ap)
{
	if (ctx->err != API_OK)
		return -1;
	ctx->err = err;
	vsnprintf(ctx->message, sizeof(ctx->message), fmt, ap);
	return -1;
}

int api_error(struct api_ctx *ctx, enum api_err err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	api_verror(ctx, err, fmt, ap);
	va_end(ap);
	return -1;
}

void api_error_field(struct api_ctx *ctx, const char *key, json_t *value)
{
	if (!ctx->err_fields)
		ctx->err_fields = json_object();
	json_object_set_new(ctx->err_fields, key, value);
}

int api_not_found(struct api_ctx *ctx, const char *type, const char *id)
{
	if (ctx->err != API_OK)
		return -1;
	api_error(ctx, API_NOT_FOUND, "%s %s not found", type, id);
	api_error_field(ctx, "code", json_string("RESOURCE_NOT_FOUND"));
	api_error_field(ctx, "resourceId", json_string(id));
	api_error_field(ctx, "resourceType", json_string(type));
	return -1;
}

int api_invalid_field(struct api_ctx *ctx, const char *field,
		      const char *fmt, ...)
{
	va_list ap;
	json_t *list;

	if (ctx->err != API_OK)
		return -1;
	va_start(ap, fmt);
	api_verror(ctx, API_VALIDATION, fmt, ap);
	va_end(ap);
	api_error_field(ctx, "code", json_string("INVALID_PARAMETER"));
	api_error_field(ctx, "reason", json_string("fieldValidationFailed"));
	list = json_array();
	json_array_append_new(list, json_pack("{s:s,s:s}", "name", field,
					      "message", ctx->message));
	api_error_field(ctx, "fieldList", list);
	return -1;
}
