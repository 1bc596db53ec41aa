// SPDX-License-Identifier: GPL-2.0
/*
 * Unit tests of lib/tracker.c against a fake module: the drain pager,
 * list growth, error messages, parsing and formatting helpers, and the
 * ABI's struct layout.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "check.h"
#include "tracker.h"

/* ---- the fake module ---------------------------------------------- */

struct fake {
	/* drain */
	struct ferry_extent *set;	/* the set being handed out */
	uint32_t set_len;
	uint64_t sequence;
	uint64_t cursor;
	bool paging;
	uint64_t generation;
	uint32_t status_on_page;	/* extra status for page 2 */
	int fail_drain_at;		/* page number (1-based) that fails */
	int fail_errno;
	int eintr_once;
	bool bad_sequence_on_page2;
	bool too_many_on_page1;
	bool more_but_empty;
	int pages;
	uint32_t last_flags;
	bool reserved_dirty;		/* a request had non-zero reserved */

	/* attach/detach/stats */
	uint32_t attached_major, attached_minor, attached_gran;
	bool attached;
	int next_errno;

	/* list */
	uint32_t list_nr;
	int list_calls;
};

static bool zero(const void *p, size_t len)
{
	const unsigned char *c = p;

	for (size_t i = 0; i < len; i++)
		if (c[i])
			return false;
	return true;
}

static int fake_drain(struct fake *f, struct ferry_drain *d)
{
	struct ferry_extent *out = (struct ferry_extent *)(uintptr_t)d->extents;
	uint32_t n;

	f->pages++;
	f->last_flags = d->flags;
	if (!zero(d->reserved, sizeof(d->reserved)))
		f->reserved_dirty = true;
	if (f->eintr_once) {
		f->eintr_once = 0;
		errno = EINTR;
		return -1;
	}
	if (f->fail_drain_at == f->pages) {
		errno = f->fail_errno;
		return -1;
	}
	if (!d->max_extents) {
		errno = ENOBUFS;
		return -1;
	}
	if (d->flags & FERRY_DRAIN_CONTINUE) {
		if (!f->paging || d->sequence != f->sequence ||
		    d->cursor != f->cursor) {
			errno = ESTALE;
			return -1;
		}
	} else {
		f->sequence++;
		f->cursor = 0;
		f->paging = true;
		if (d->sequence || d->cursor)
			f->reserved_dirty = true; /* lib should send zeros */
	}
	n = f->set_len - (uint32_t)f->cursor;
	if (n > d->max_extents)
		n = d->max_extents;
	memcpy(out, f->set + f->cursor, n * sizeof(*out));
	f->cursor += n;
	d->nr_extents = n;
	d->sequence = f->sequence;
	d->cursor = f->cursor;
	d->generation = f->generation;
	d->set_bytes = 4096ull * f->set_len;
	d->status = f->cursor < f->set_len ? FERRY_STATUS_MORE : 0;
	if (f->pages == 2)
		d->status |= f->status_on_page;
	if (f->pages == 2 && f->bad_sequence_on_page2)
		d->sequence++;
	if (f->pages == 1 && f->too_many_on_page1)
		d->nr_extents = d->max_extents + 1;
	if (f->more_but_empty) {
		d->nr_extents = 0;
		d->status |= FERRY_STATUS_MORE;
	}
	if (!(d->status & FERRY_STATUS_MORE))
		f->paging = false;
	return 0;
}

static int fake_ioctl(struct ferry_ctl *ctl, unsigned long req, void *arg)
{
	struct fake *f = ctl->priv;

	if (f->next_errno) {
		errno = f->next_errno;
		f->next_errno = 0;
		return -1;
	}
	switch (req) {
	case FERRY_IOC_DRAIN:
		return fake_drain(f, arg);
	case FERRY_IOC_ATTACH: {
		struct ferry_attach *a = arg;

		if (a->flags || !zero(a->reserved, sizeof(a->reserved))) {
			errno = EINVAL;
			return -1;
		}
		if (f->attached) {
			errno = EEXIST;
			return -1;
		}
		f->attached = true;
		f->attached_major = a->major;
		f->attached_minor = a->minor;
		f->attached_gran = a->granularity;
		a->generation = ++f->generation;
		return 0;
	}
	case FERRY_IOC_DETACH: {
		struct ferry_detach *d = arg;

		if (!f->attached || d->major != f->attached_major) {
			errno = ENOENT;
			return -1;
		}
		f->attached = false;
		return 0;
	}
	case FERRY_IOC_STATS: {
		struct ferry_stats *st = arg;

		if (!f->attached) {
			errno = ENOENT;
			return -1;
		}
		st->granularity = f->attached_gran ? f->attached_gran : 4096;
		st->generation = f->generation;
		return 0;
	}
	case FERRY_IOC_VERSION: {
		struct ferry_version *v = arg;

		v->abi = FERRY_ABI_VERSION;
		memset(v->version, 'x', sizeof(v->version)); /* no NUL */
		return 0;
	}
	case FERRY_IOC_LIST: {
		struct ferry_list *l = arg;
		struct ferry_dev *devs = (struct ferry_dev *)(uintptr_t)l->devs;

		f->list_calls++;
		for (uint32_t i = 0; i < l->max && i < f->list_nr; i++) {
			devs[i].major = 8;
			devs[i].minor = i;
		}
		l->nr = f->list_nr;
		/* The list grows once while the caller reallocates. */
		if (f->list_calls == 1)
			f->list_nr += 10;
		return 0;
	}
	}
	errno = ENOTTY;
	return -1;
}

static struct fake fk;
static struct ferry_ctl fctl;
static struct ferry_blkdev fdev = { 254, 16, "/dev/vdb" };

static void fake_reset(uint32_t set_len)
{
	free(fk.set);
	memset(&fk, 0, sizeof(fk));
	fk.generation = 77;
	fk.set_len = set_len;
	fk.set = calloc(set_len ? set_len : 1, sizeof(*fk.set));
	for (uint32_t i = 0; i < set_len; i++) {
		fk.set[i].offset = 8192ull * i;
		fk.set[i].length = 4096;
	}
	fctl.fd = -1;
	fctl.ioctl = fake_ioctl;
	fctl.priv = &fk;
}

/* ---- drain ---------------------------------------------------------- */

struct collect {
	uint64_t n;
	bool in_order;
	uint64_t stop_at;
};

static int collect_cb(void *arg, const struct ferry_extent *e)
{
	struct collect *c = arg;

	if (e->offset != 8192ull * c->n)
		c->in_order = false;
	c->n++;
	return c->stop_at && c->n == c->stop_at ? 42 : 0;
}

static void test_drain_pages(void)
{
	struct ferry_drain_info info;
	struct collect c = { 0, true, 0 };
	struct ferry_err err;

	fake_reset(10000);
	fk.status_on_page = FERRY_STATUS_OVERFLOW;
	CHECK(ferry_drain(&fctl, &fdev, 4096, collect_cb, &c, &info,
			  &err) == 0);
	CHECK_U64(c.n, 10000);
	CHECK(c.in_order);
	CHECK_U64(info.extents, 10000);
	CHECK_U64(info.bytes, 10000ull * 4096);
	CHECK_U64(info.pages, 3);
	CHECK_U64(info.sequence, 1);
	CHECK_U64(info.generation, 77);
	CHECK_U64(info.set_bytes, 10000ull * 4096);
	/* Status bits of every page, but never MORE. */
	CHECK_U64(info.status, FERRY_STATUS_OVERFLOW);
	CHECK(fk.last_flags == FERRY_DRAIN_CONTINUE);
	CHECK(!fk.reserved_dirty);

	/* Default page size, and an empty set. */
	fake_reset(0);
	c.n = 0;
	CHECK(ferry_drain(&fctl, &fdev, 0, collect_cb, &c, &info, &err) == 0);
	CHECK_U64(c.n, 0);
	CHECK_U64(info.pages, 1);
	CHECK_U64(info.status, 0);
	CHECK(fk.last_flags == 0);

	/* One extent per page. */
	fake_reset(5);
	c.n = 0;
	CHECK(ferry_drain(&fctl, &fdev, 1, collect_cb, &c, &info, &err) == 0);
	CHECK_U64(c.n, 5);
	CHECK_U64(info.pages, 5);
	CHECK(c.in_order);
	free(fk.set);
	fk.set = NULL;
}

static void test_drain_stop_and_errors(void)
{
	struct ferry_drain_info info;
	struct collect c = { 0, true, 3 };
	struct ferry_err err;

	/* The callback stops the drain: its value comes back. */
	fake_reset(10);
	CHECK(ferry_drain(&fctl, &fdev, 2, collect_cb, &c, &info, &err) == 42);
	CHECK_U64(c.n, 3);

	/* ESTALE on page 2: the rest went to the next set. */
	fake_reset(10);
	fk.fail_drain_at = 2;
	fk.fail_errno = ESTALE;
	c.n = 0;
	c.stop_at = 0;
	CHECK(ferry_drain(&fctl, &fdev, 4, collect_cb, &c, &info, &err) == -1);
	CHECK_U64(err.errnum, ESTALE);
	CHECK_HAS(err.msg, "drain /dev/vdb (254:16)");
	CHECK_HAS(err.msg, "drain again");
	CHECK_U64(c.n, 4);
	CHECK_U64(info.extents, 4);

	/* EINTR is retried. */
	fake_reset(3);
	fk.eintr_once = 1;
	c.n = 0;
	CHECK(ferry_drain(&fctl, &fdev, 4, collect_cb, &c, &info, &err) == 0);
	CHECK_U64(c.n, 3);

	/* A module that switches sets in mid-paging. */
	fake_reset(10);
	fk.bad_sequence_on_page2 = true;
	CHECK(ferry_drain(&fctl, &fdev, 4, NULL, NULL, &info, &err) == -1);
	CHECK_U64(err.errnum, EPROTO);
	CHECK_HAS(err.msg, "switched sets");

	/* More extents than the buffer holds. */
	fake_reset(10);
	fk.too_many_on_page1 = true;
	CHECK(ferry_drain(&fctl, &fdev, 4, NULL, NULL, &info, &err) == -1);
	CHECK_U64(err.errnum, EPROTO);

	/* MORE with nothing in the page would loop forever. */
	fake_reset(10);
	fk.more_but_empty = true;
	CHECK(ferry_drain(&fctl, &fdev, 4, NULL, NULL, &info, &err) == -1);
	CHECK_U64(err.errnum, EPROTO);
	CHECK_U64(info.pages, 1);

	/* Not tracked. */
	fake_reset(1);
	fk.next_errno = ENOENT;
	CHECK(ferry_drain(&fctl, &fdev, 4, NULL, NULL, &info, &err) == -1);
	CHECK_U64(err.errnum, ENOENT);
	CHECK_HAS(err.msg, "not tracked");
	free(fk.set);
	fk.set = NULL;
}

/* ---- other ioctls ----------------------------------------------------- */

static void test_attach_detach_stats(void)
{
	struct ferry_stats st;
	struct ferry_err err;
	uint64_t gen = 0;

	fake_reset(0);
	CHECK(ferry_attach(&fctl, &fdev, 65536, &gen, &err) == 0);
	CHECK_U64(gen, 78);
	CHECK_U64(fk.attached_gran, 65536);
	CHECK_U64(fk.attached_major, 254);
	CHECK_U64(fk.attached_minor, 16);
	CHECK(ferry_attach(&fctl, &fdev, 0, NULL, &err) == -1);
	CHECK_U64(err.errnum, EEXIST);
	CHECK_HAS(err.msg, "attach /dev/vdb (254:16): already tracked");
	CHECK(ferry_stats_get(&fctl, &fdev, &st, &err) == 0);
	CHECK_U64(st.granularity, 65536);
	CHECK_U64(st.major, 254);
	CHECK(ferry_detach(&fctl, &fdev, &err) == 0);
	CHECK(ferry_detach(&fctl, &fdev, &err) == -1);
	CHECK_HAS(err.msg, "detach /dev/vdb (254:16): not tracked");
	CHECK(ferry_stats_get(&fctl, &fdev, &st, &err) == -1);
	CHECK_U64(err.errnum, ENOENT);

	fk.next_errno = EPERM;
	CHECK(ferry_attach(&fctl, &fdev, 0, NULL, &err) == -1);
	CHECK_HAS(err.msg, "needs root (CAP_SYS_ADMIN)");
	fk.next_errno = EINVAL;
	CHECK(ferry_attach(&fctl, &fdev, 1000, NULL, &err) == -1);
	CHECK_HAS(err.msg, "power of two");
	fk.next_errno = ENODEV;
	CHECK(ferry_attach(&fctl, &fdev, 0, NULL, &err) == -1);
	CHECK_HAS(err.msg, "no block device with that number");
	free(fk.set);
	fk.set = NULL;
}

static void test_version_list(void)
{
	struct ferry_version v;
	struct ferry_dev *devs = NULL;
	struct ferry_err err;
	size_t nr = 0;

	fake_reset(0);
	CHECK(ferry_version_get(&fctl, &v, &err) == 0);
	CHECK_U64(v.abi, FERRY_ABI_VERSION);
	CHECK_U64(strlen(v.version), sizeof(v.version) - 1);

	/* 100 devices: more than the first buffer (64), then 10 more. */
	fk.list_nr = 100;
	CHECK(ferry_list(&fctl, &devs, &nr, &err) == 0);
	CHECK_U64(nr, 110);
	CHECK(fk.list_calls == 2);
	CHECK(devs && devs[109].minor == 109);
	free(devs);

	fake_reset(0);
	fk.next_errno = ENOTTY;
	CHECK(ferry_list(&fctl, &devs, &nr, &err) == -1);
	CHECK_HAS(err.msg, "different ABIs");
	free(fk.set);
	fk.set = NULL;
}

/* ---- local helpers ---------------------------------------------------- */

static void test_open_and_resolve(void)
{
	struct ferry_blkdev dev;
	struct ferry_err err;
	struct ferry_ctl ctl;
	struct stat st;

	CHECK(ferry_ctl_open(&ctl, "/nonexistent/ferry-ctl", &err) == -1);
	CHECK_U64(err.errnum, ENOENT);
	CHECK_HAS(err.msg, "cannot open /nonexistent/ferry-ctl");
	CHECK_HAS(err.msg, "is ferry.ko loaded? modprobe ferry");

	CHECK(ferry_blkdev_resolve("/dev/null", &dev, &err) == -1);
	CHECK_U64(err.errnum, ENOTBLK);
	CHECK_HAS(err.msg, "a character device, not a block device");
	CHECK(ferry_blkdev_resolve("/", &dev, &err) == -1);
	CHECK_HAS(err.msg, "a directory");
	CHECK(ferry_blkdev_resolve("/nonexistent/vdb", &dev, &err) == -1);
	CHECK_U64(err.errnum, ENOENT);
	CHECK_HAS(err.msg, "cannot use /nonexistent/vdb");

	/* MAJ:MIN, for a device whose node is gone. */
	CHECK(ferry_blkdev_resolve("254:32", &dev, &err) == 0);
	CHECK_U64(dev.major, 254);
	CHECK_U64(dev.minor, 32);
	CHECK_STR(dev.name, "254:32");
	CHECK(ferry_blkdev_resolve("254:", &dev, &err) == -1);
	CHECK(ferry_blkdev_resolve("254:3x", &dev, &err) == -1);
	CHECK(ferry_blkdev_resolve(":3", &dev, &err) == -1);

	/* A real block device, when this machine has one. */
	if (stat("/dev/loop0", &st) == 0 && S_ISBLK(st.st_mode)) {
		CHECK(ferry_blkdev_resolve("/dev/loop0", &dev, &err) == 0);
		CHECK_U64(dev.major, major(st.st_rdev));
		CHECK_U64(dev.minor, minor(st.st_rdev));
	}
}

static void test_parse_bytes(void)
{
	uint64_t v = 0;

	CHECK(ferry_parse_bytes("4096", &v) == 0);
	CHECK_U64(v, 4096);
	CHECK(ferry_parse_bytes("64K", &v) == 0);
	CHECK_U64(v, 65536);
	CHECK(ferry_parse_bytes("64KiB", &v) == 0);
	CHECK_U64(v, 65536);
	CHECK(ferry_parse_bytes("1M", &v) == 0);
	CHECK_U64(v, 1 << 20);
	CHECK(ferry_parse_bytes("2g", &v) == 0);
	CHECK_U64(v, 2ull << 30);
	CHECK(ferry_parse_bytes("1T", &v) == 0);
	CHECK_U64(v, 1ull << 40);
	CHECK(ferry_parse_bytes("0", &v) == 0);
	CHECK_U64(v, 0);
	CHECK(ferry_parse_bytes("18446744073709551615", &v) == 0);
	CHECK_U64(v, UINT64_MAX);
	CHECK(ferry_parse_bytes("18446744073709551616", &v) == -1);
	CHECK(ferry_parse_bytes("17179869184G", &v) == -1);
	CHECK(ferry_parse_bytes("", &v) == -1);
	CHECK(ferry_parse_bytes("abc", &v) == -1);
	CHECK(ferry_parse_bytes("-1", &v) == -1);
	CHECK(ferry_parse_bytes(" 1", &v) == -1);
	CHECK(ferry_parse_bytes("12X", &v) == -1);
	CHECK(ferry_parse_bytes("12KB", &v) == -1);
	CHECK(ferry_parse_bytes("1 K", &v) == -1);
	CHECK(ferry_parse_bytes(NULL, &v) == -1);
}

static void test_granularity(void)
{
	CHECK(ferry_granularity_valid(0));
	CHECK(ferry_granularity_valid(4096));
	CHECK(ferry_granularity_valid(8192));
	CHECK(ferry_granularity_valid(1u << 30));
	CHECK(!ferry_granularity_valid(1000));
	CHECK(!ferry_granularity_valid(2048));
	CHECK(!ferry_granularity_valid(4097));
	CHECK(!ferry_granularity_valid(6144));
	CHECK(!ferry_granularity_valid(1ull << 31));
	CHECK(!ferry_granularity_valid(UINT64_MAX));
}

static void test_status_str(void)
{
	char buf[64], tiny[6];

	CHECK_STR(ferry_status_str(0, buf, sizeof(buf)), "ok");
	CHECK_STR(ferry_status_str(FERRY_STATUS_OVERFLOW, buf, sizeof(buf)),
		  "overflow");
	CHECK_STR(ferry_status_str(FERRY_STATUS_OVERFLOW | FERRY_STATUS_GONE |
				   FERRY_STATUS_RESIZED | FERRY_STATUS_MORE,
				   buf, sizeof(buf)),
		  "overflow,gone,resized,more");
	CHECK_STR(ferry_status_str(0x100, buf, sizeof(buf)), "0x100");
	CHECK_STR(ferry_status_str(FERRY_STATUS_GONE | 0x100, buf,
				   sizeof(buf)), "gone,0x100");
	/* Truncated, never overflowing. */
	CHECK_STR(ferry_status_str(FERRY_STATUS_OVERFLOW | FERRY_STATUS_GONE,
				   tiny, sizeof(tiny)), "overf");
}

static void test_strerror(void)
{
	CHECK_HAS(ferry_strerror(FERRY_OP_ATTACH, EEXIST), "already tracked");
	CHECK_HAS(ferry_strerror(FERRY_OP_DETACH, ENOENT), "not tracked");
	CHECK_HAS(ferry_strerror(FERRY_OP_OPEN, ENOENT), "modprobe ferry");
	CHECK_HAS(ferry_strerror(FERRY_OP_ATTACH, EINVAL), "4096");
	CHECK_HAS(ferry_strerror(FERRY_OP_DRAIN, EINVAL), "reserved");
	CHECK_HAS(ferry_strerror(FERRY_OP_STATS, EPERM),
		  "needs root (CAP_SYS_ADMIN)");
	CHECK_HAS(ferry_strerror(FERRY_OP_DRAIN, ENOBUFS), "one extent");
	CHECK_HAS(ferry_strerror(FERRY_OP_DRAIN, ESTALE), "drain again");
	CHECK_HAS(ferry_strerror(FERRY_OP_ATTACH, ENODEV), "no block device");
	CHECK_HAS(ferry_strerror(FERRY_OP_ATTACH, EOPNOTSUPP), "dmesg");
	CHECK_HAS(ferry_strerror(FERRY_OP_VERSION, ENOTTY), "ABI");
	CHECK_HAS(ferry_strerror(FERRY_OP_DRAIN, EFAULT), "address");
	CHECK_STR(ferry_strerror(FERRY_OP_DRAIN, EIO), strerror(EIO));
}

/* The header promises no padding holes: sizes add up field by field. */
static void test_abi_layout(void)
{
	CHECK_U64(sizeof(struct ferry_version), 48);
	CHECK_U64(sizeof(struct ferry_attach), 56);
	CHECK_U64(sizeof(struct ferry_detach), 32);
	CHECK_U64(sizeof(struct ferry_extent), 16);
	CHECK_U64(sizeof(struct ferry_drain), 96);
	CHECK_U64(offsetof(struct ferry_drain, nr_extents), 48);
	CHECK_U64(offsetof(struct ferry_drain, set_bytes), 56);
	CHECK_U64(sizeof(struct ferry_stats), 152);
	CHECK_U64(sizeof(struct ferry_dev), 8);
	CHECK_U64(sizeof(struct ferry_list), 32);
	CHECK_U64(_IOC_TYPE(FERRY_IOC_DRAIN), 0xF3);
	CHECK_U64(_IOC_SIZE(FERRY_IOC_DRAIN), sizeof(struct ferry_drain));
	CHECK_U64(_IOC_DIR(FERRY_IOC_VERSION), _IOC_READ);
	CHECK_U64(_IOC_DIR(FERRY_IOC_DETACH), _IOC_WRITE);
}

int main(void)
{
	RUN(test_drain_pages);
	RUN(test_drain_stop_and_errors);
	RUN(test_attach_detach_stats);
	RUN(test_version_list);
	RUN(test_open_and_resolve);
	RUN(test_parse_bytes);
	RUN(test_granularity);
	RUN(test_status_str);
	RUN(test_strerror);
	RUN(test_abi_layout);
	return check_exit();
}
