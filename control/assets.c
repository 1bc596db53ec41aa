// SPDX-License-Identifier: GPL-2.0
/* assets.c - the installation assets ferry-control serves (assets.h). */
#include "assets.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Digests already computed, by file identity: packages are a few hundred
 * KiB to a few MiB and install.sh asks for each at every installation. */
struct digest_cache {
	char path[4352];
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
	char hex[129];
};

static struct digest_cache cache[ASSETS_MAX * 2];
static unsigned int cache_next;
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;

static bool same_file(const struct digest_cache *c, const char *path,
		      const struct stat *st)
{
	return !strcmp(c->path, path) && c->dev == st->st_dev &&
	       c->ino == st->st_ino && c->size == st->st_size &&
	       c->mtime.tv_sec == st->st_mtim.tv_sec &&
	       c->mtime.tv_nsec == st->st_mtim.tv_nsec;
}

static int sha512_file(int fd, char hex[129])
{
	unsigned char buf[65536], md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	ssize_t n;
	int rc = -1;

	if (!m || !EVP_DigestInit_ex(m, EVP_sha512(), NULL))
		goto out;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		if (!EVP_DigestUpdate(m, buf, (size_t)n))
			goto out;
	if (n < 0 || !EVP_DigestFinal_ex(m, md, &mdlen) || mdlen != 64)
		goto out;
	for (unsigned int i = 0; i < mdlen; i++)
		sprintf(hex + 2 * i, "%02x", md[i]);
	rc = 0;
out:
	EVP_MD_CTX_free(m);
	return rc;
}

/* Fill A's size and digest from the file at A->path. */
static int digest(struct asset *a, char *err, size_t errlen)
{
	struct stat st;
	int fd = open(a->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	int rc = -1;

	if (fd < 0 || fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: %s", a->path,
			 fd < 0 ? strerror(errno) : "not a regular file");
		goto out;
	}
	a->size = (long long)st.st_size;
	pthread_mutex_lock(&cache_lock);
	for (unsigned int i = 0; i < ASSETS_MAX * 2; i++) {
		if (same_file(&cache[i], a->path, &st)) {
			memcpy(a->sha512, cache[i].hex, sizeof(a->sha512));
			pthread_mutex_unlock(&cache_lock);
			rc = 0;
			goto out;
		}
	}
	pthread_mutex_unlock(&cache_lock);
	if (sha512_file(fd, a->sha512)) {
		snprintf(err, errlen, "%s: cannot compute its SHA-512",
			 a->path);
		goto out;
	}
	pthread_mutex_lock(&cache_lock);
	{
		struct digest_cache *c = &cache[cache_next++ % (ASSETS_MAX * 2)];

		snprintf(c->path, sizeof(c->path), "%s", a->path);
		c->dev = st.st_dev;
		c->ino = st.st_ino;
		c->size = st.st_size;
		c->mtime = st.st_mtim;
		memcpy(c->hex, a->sha512, sizeof(c->hex));
	}
	pthread_mutex_unlock(&cache_lock);
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	return rc;
}

/* A file name as a package has one: no path, no dot first, a short
 * alphabet (what dpkg and rpm file names use). */
static bool good_name(const char *s)
{
	size_t n = strlen(s);

	if (!n || n >= sizeof(((struct asset *)0)->name) || s[0] == '.')
		return false;
	for (; *s; s++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			    "0123456789._+~-", *s))
			return false;
	return true;
}

static bool good_format(const char *f)
{
	return !strcmp(f, "deb") || !strcmp(f, "rpm");
}

int assets_list(const char *dir, const char *format, struct asset *out,
		int max, char *err, size_t errlen)
{
	char sums[4352], line[512], hex[160], name[300];
	FILE *f;
	int n = 0;

	if (!good_format(format)) {
		snprintf(err, errlen, "no package format %s", format);
		return -1;
	}
	snprintf(sums, sizeof(sums), "%s/%s/SHA512SUMS", dir, format);
	f = fopen(sums, "re");
	if (!f) {
		snprintf(err, errlen, "no installation assets in %s/%s (%s: "
			 "%s): copy the packages of make %s there, with their "
			 "SHA512SUMS", dir, format, sums, strerror(errno),
			 format);
		return -1;
	}
	while (n < max && fgets(line, sizeof(line), f)) {
		struct asset *a = &out[n];
		char *nm = name;

		/* "HEX  NAME" or "HEX *NAME" (sha512sum's binary mode). */
		if (sscanf(line, "%159s %299s", hex, name) != 2)
			continue;
		if (*nm == '*')
			nm++;
		if (!good_name(nm))
			continue;
		memset(a, 0, sizeof(*a));
		snprintf(a->name, sizeof(a->name), "%.127s", nm);
		snprintf(a->path, sizeof(a->path), "%s/%s/%s", dir, format,
			 nm);
		if (digest(a, err, errlen)) {
			fclose(f);
			return -1;
		}
		n++;
	}
	fclose(f);
	return n;
}

int assets_lookup(const char *dir, const char *uri, struct asset *a,
		  bool *want_digest)
{
	static const char prefix[] = ASSETS_URL_PREFIX;
	struct asset list[ASSETS_MAX];
	char format[8], name[160], err[512];
	const char *rest, *slash;
	size_t len;
	int n;

	/* The raw target: any escape, query or dot segment is refused. */
	if (strncmp(uri, prefix, sizeof(prefix) - 1) ||
	    strpbrk(uri, "%?#\\") || strstr(uri, ".."))
		return -1;
	rest = uri + sizeof(prefix) - 1;
	slash = strchr(rest, '/');
	if (!slash || (size_t)(slash - rest) >= sizeof(format))
		return -1;
	snprintf(format, sizeof(format), "%.*s", (int)(slash - rest), rest);
	snprintf(name, sizeof(name), "%s", slash + 1);
	if (!good_format(format) || !good_name(name))
		return -1;
	*want_digest = false;
	len = strlen(name);
	if (len > 7 && !strcmp(name + len - 7, ".sha512")) {
		name[len - 7] = '\0';
		*want_digest = true;
	}
	n = assets_list(dir, format, list, ASSETS_MAX, err, sizeof(err));
	for (int i = 0; i < n; i++) {
		if (!strcmp(list[i].name, name)) {
			*a = list[i];
			return 0;
		}
	}
	return -1;
}
