// SPDX-License-Identifier: GPL-2.0
/*
 * peer_id.c - the source server ID in a client certificate, the
 * replicator ID in a replicator's (see peer_id.h).
 */
#include "peer_id.h"

#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

bool ferry_id_valid(const char *id)
{
	size_t n = strlen(id);

	/* IDs name directories: ".", ".." or a hidden name would climb
	 * out of the data directory or hide in it. */
	if (n == 0 || n > FERRY_ID_MAX || id[0] == '.')
		return false;
	return strspn(id, "abcdefghijklmnopqrstuvwxyz"
			  "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

static int copy_id(const unsigned char *s, int n, char *id, size_t len)
{
	if (n <= 0 || (size_t)n >= len || memchr(s, '\0', (size_t)n))
		return -1;
	memcpy(id, s, (size_t)n);
	id[n] = '\0';
	return ferry_id_valid(id) ? 0 : -1;
}

/* The one URI SAN starting with PREFIX in GENS, the rest copied to ID;
 * -1 if none or more than one (a certificate naming two source servers,
 * or two replicators, is nobody's). */
static int id_from_sans(GENERAL_NAMES *gens, const char *prefix, char *id,
			size_t len)
{
	const size_t plen = strlen(prefix);
	const unsigned char *found = NULL;
	int found_len = 0, n_found = 0;

	for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		const ASN1_STRING *v;
		const unsigned char *d;
		int type, n;

		v = GENERAL_NAME_get0_value(g, &type);
		if (type != GEN_URI || !v)
			continue;
		d = ASN1_STRING_get0_data(v);
		n = ASN1_STRING_length(v);
		if (n > 0 && (size_t)n > plen && !memcmp(d, prefix, plen)) {
			found = d + plen;
			found_len = n - (int)plen;
			n_found++;
		}
	}
	if (n_found != 1)
		return -1;
	return copy_id(found, found_len, id, len);
}

int ferry_peer_source_server(X509 *cert, char *id, size_t len)
{
	const ASN1_STRING *cn;
	GENERAL_NAMES *gens;
	X509_NAME *subj;
	int rc, crit = 0, pos;

	if (!cert || !id || !len)
		return -1;
	gens = X509_get_ext_d2i(cert, NID_subject_alt_name, &crit, NULL);
	if (gens) {
		/* Only the URI decides, never the CN next to it. */
		rc = id_from_sans(gens, FERRY_URN_SOURCE_SERVER, id, len);
		GENERAL_NAMES_free(gens);
		return rc;
	}
	if (crit != -1) {
		/* The extension is present but unparsable. */
		ERR_clear_error();
		return -1;
	}
	/* No SAN at all: the subject CN, if there is exactly one. */
	subj = X509_get_subject_name(cert);
	pos = X509_NAME_get_index_by_NID(subj, NID_commonName, -1);
	if (pos < 0 ||
	    X509_NAME_get_index_by_NID(subj, NID_commonName, pos) >= 0)
		return -1;
	cn = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, pos));
	return copy_id(ASN1_STRING_get0_data(cn), ASN1_STRING_length(cn), id,
		       len);
}

int ferry_peer_replicator(X509 *cert, char *id, size_t len)
{
	GENERAL_NAMES *gens;
	int rc;

	if (!cert || !id || !len)
		return -1;
	/* No CN fallback: every replicator certificate ferry-control
	 * issues has the URI, and a CN is no one's exclusive claim. */
	gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	if (!gens) {
		ERR_clear_error();
		return -1;
	}
	rc = id_from_sans(gens, FERRY_URN_REPLICATOR, id, len);
	GENERAL_NAMES_free(gens);
	return rc;
}

bool ferry_cert_is_replicator(X509 *cert)
{
	EXTENDED_KEY_USAGE *eku = X509_get_ext_d2i(cert, NID_ext_key_usage,
						   NULL, NULL);
	ASN1_OBJECT *want = OBJ_txt2obj(FERRY_OID_REPLICATOR_EKU, 1);
	bool found = false;

	for (int i = 0; eku && want && i < sk_ASN1_OBJECT_num(eku); i++)
		if (!OBJ_cmp(sk_ASN1_OBJECT_value(eku, i), want))
			found = true;
	EXTENDED_KEY_USAGE_free(eku);
	ASN1_OBJECT_free(want);
	ERR_clear_error();
	return found;
}
