// SPDX-License-Identifier: GPL-2.0
/*
 * conn.c - one agent connection (conn.h).
 *
 * Frames are applied strictly in sequence.  Writes go to the page cache
 * at once; an ACK for seq N is sent only after every volume written since
 * the last ACK is flushed and the metadata of SYNC_MARK and CP frames up
 * to N is stored durably.  Flushing happens when no further input is
 * waiting (the agent's pipeline has drained into us) or after
 * REP_COMMIT_BYTES / REP_COMMIT_MS / REP_COMMIT_FRAMES, so that one flush
 * covers many frames.  A group commit runs on the connection's flusher
 * thread while this one goes on reading and writing the frames that
 * follow (the ACK waits for the flush; the flush does not stop the
 * input); closing, errors and BYE flush on this thread, after the flush
 * in flight.  Every error on a client frame is fatal in version
 * 1: the ACK is cumulative, so the connection cannot go on past a frame
 * it did not apply.  Before the ERROR, what was applied before the bad
 * frame is flushed and acknowledged, so the agent knows exactly where to
 * resume.
 */
#include "conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>

#include "control_client.h"
#include "log.h"
#include "peer_id.h"
#include "tls.h"
#include "snapshot.h"
#include "volume.h"
#include "wire.h"

#define RBUF_CAP (FERRY_WIRE_HDR_LEN + FERRY_WIRE_MAX_PAYLOAD + (256u << 10))
#define REP_TLS_READ_BUF (256u << 10)
#define WBUF_CAP (FERRY_WIRE_HDR_LEN + 64 + \
		  FERRY_WIRE_MAX_HASHES * FERRY_WIRE_HASH_LEN)

/* ---- who holds which disk ------------------------------------------- */

struct claim {
	struct claim *next;
	const void *owner;
	char source[FERRY_ID_MAX + 1];
	char file[VOLUME_FILE_MAX];
};

static pthread_mutex_t claims_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t claims_dropped = PTHREAD_COND_INITIALIZER;
static struct claim *claims;

/*
 * How long a HELLO waits for a disk held by another connection.  An agent
 * that reconnects right after an error or a cut often finds its previous
 * connection still tearing down; waiting a moment spares it a BUSY and a
 * retry.  A disk really in use stays refused.
 */
#define CLAIM_WAIT_SECS 2

static struct claim *claim_find(const char *source, const char *file)
{
	struct claim *c;

	for (c = claims; c; c = c->next)
		if (!strcmp(c->source, source) && !strcmp(c->file, file))
			return c;
	return NULL;
}

/* Take the staging file FILE of SOURCE for OWNER; -1 if someone has it. */
static int claim_take(const char *source, const char *file, const void *owner)
{
	struct timespec until;
	struct claim *c;
	int rc = 0;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += CLAIM_WAIT_SECS;
	pthread_mutex_lock(&claims_lock);
	while (claim_find(source, file) &&
	       pthread_cond_timedwait(&claims_dropped, &claims_lock,
				      &until) == 0)
		;
	if (claim_find(source, file)) {
		rc = -1;
	} else {
		c = calloc(1, sizeof(*c));
		if (!c) {
			rc = -1;
		} else {
			c->owner = owner;
			snprintf(c->source, sizeof(c->source), "%s", source);
			snprintf(c->file, sizeof(c->file), "%s", file);
			c->next = claims;
			claims = c;
		}
	}
	pthread_mutex_unlock(&claims_lock);
	return rc;
}

static void claim_drop_all(const void *owner)
{
	struct claim **p;

	pthread_mutex_lock(&claims_lock);
	for (p = &claims; *p;) {
		if ((*p)->owner == owner) {
			struct claim *c = *p;

			*p = c->next;
			free(c);
		} else {
			p = &(*p)->next;
		}
	}
	pthread_cond_broadcast(&claims_dropped);
	pthread_mutex_unlock(&claims_lock);
}

/* ---- the connection --------------------------------------------------- */

/*
 * One group commit: what was written up to frame SEQ, made durable.  The
 * volumes are copies taken when the commit began (fd, dirty flags and
 * the metadata as of SEQ), so the connection's thread can go on writing
 * into its own.
 */
struct flush_job {
	uint64_t seq;
	uint64_t unacked;	/* payload bytes of frames it covers */
	unsigned int n;
	struct volume vols[FERRY_WIRE_MAX_DISKS];
	bool meta[FERRY_WIRE_MAX_DISKS];
	bool data;		/* it covers DATA frames */
	int rc;
	int failed;		/* the volume that failed, -1: none */
	char err[512];
};

/* The connection's flusher thread; started at the first group commit. */
struct flusher {
	pthread_t thread;
	bool started;
	bool busy;		/* a job handed over and not yet collected */
	int efd;		/* eventfd: readable when the job is done */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool run, done, quit;	/* under lock */
	struct flush_job job;
};

struct conn {
	struct rep_server *srv;
	int fd;
	SSL *ssl;
	char peer[64];			/* "addr:port" */
	char id[FERRY_ID_MAX + 1];	/* from the certificate */
	char agent[FERRY_WIRE_MAX_NAME + 1];

	uint8_t *rbuf, *dec, *wbuf, *hashes;
	size_t rpos, rlen;

	unsigned int n_vols;
	struct volume vols[FERRY_WIRE_MAX_DISKS];
	bool by_allow;		/* a disk was admitted by an allow line */
	bool refreshed;		/* asked for fresh assignments */
	uint64_t limit[FERRY_WIRE_MAX_DISKS];	/* HELLO's disk sizes */
	bool meta_dirty[FERRY_WIRE_MAX_DISKS];
	bool welcomed;

	uint64_t expect_seq;	/* the next client frame's seq */
	uint64_t applied;	/* last frame applied */
	uint64_t acked;		/* last ACK sent (WELCOME acks HELLO) */
	uint64_t unacked_bytes;	/* payload bytes of frames after acked */
	uint64_t unsynced_bytes;
	bool data_unsynced;	/* DATA applied since the last job_prepare */
	struct timespec first_unsynced;
	bool have_cp;
	uint64_t last_cp;
	struct flusher fl;

	bool closing;		/* stop reading: error sent or BYE */
	bool broken;		/* the TLS session failed: send nothing */
	bool leaving;		/* the agent said BYE: it may not listen */
	char close_why[256];
	/* The staging volume a NOSPC about to be sent is about, for
	 * ferry-control's report (NULL: the source's directory). */
	const char *nospc_path;

	/* Counters for the closing log line. */
	uint64_t bytes_in, frames, bytes_written, bytes_zeroed, hash_reqs;
	uint64_t commits;
	unsigned int pings;	/* PINGs sent since the last byte received */
	struct timespec started, last_rx;
};

static uint64_t ms_since(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (uint64_t)(now.tv_sec - t->tv_sec) * 1000 +
	       (uint64_t)((now.tv_nsec - t->tv_nsec) / 1000000);
}

static void set_why(struct conn *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void set_why(struct conn *c, const char *fmt, ...)
{
	va_list ap;

	if (c->close_why[0])
		return;
	va_start(ap, fmt);
	vsnprintf(c->close_why, sizeof(c->close_why), fmt, ap);
	va_end(ap);
}

static int send_all(struct conn *c, const void *buf, size_t len)
{
	char why[512];
	int n;

	if (c->broken)
		return -1;
	ERR_clear_error();
	n = SSL_write(c->ssl, buf, (int)len);
	if (n <= 0 || (size_t)n != len) {
		ferry_tls_describe_error(c->ssl, n, why, sizeof(why));
		if (!c->leaving) {
			rlog_error("%s id=%s: send failed: %s", c->peer,
				   c->id, why);
			set_why(c, "send failed: %s", why);
		}
		c->broken = true;
		c->closing = true;
		return -1;
	}
	return 0;
}

/* Send ERROR for frame SEQ; FATAL ones also end the connection. */
static void send_error(struct conn *c, uint64_t seq, bool fatal, int code,
		       const char *msg)
{
	uint8_t buf[FERRY_WIRE_HDR_LEN + 16 + FERRY_WIRE_MAX_STRING];
	char trimmed[FERRY_WIRE_MAX_STRING + 1];
	const char *path = c->nospc_path;
	size_t n;

	c->nospc_path = NULL;
	/* A full data directory is also ferry-control's to show (the
	 * replicator's report), until a later write is durable. */
	if (code == FERRY_E_NOSPC && c->id[0])
		ctl_staging_full(c->id, path, msg);
	rlog_error("%s id=%s: %s%s at seq %" PRIu64 ": %s", c->peer,
		   c->id[0] ? c->id : "?", ferry_wire_error_name(code),
		   fatal ? " (fatal)" : "", seq, msg);
	snprintf(trimmed, sizeof(trimmed), "%s", msg);
	n = ferry_wire_encode_error(buf, sizeof(buf), seq,
				    fatal ? FERRY_ERR_FATAL : 0, (uint32_t)code,
				    trimmed);
	if (n)
		send_all(c, buf, n);
	if (fatal) {
		set_why(c, "%s: %s", ferry_wire_error_name(code), msg);
		c->closing = true;
	}
}

/* Hand what was written up to the last applied frame to job J. */
static void job_prepare(struct conn *c, struct flush_job *j)
{
	j->seq = c->applied;
	j->unacked = c->unacked_bytes;
	j->data = c->data_unsynced;
	j->n = c->n_vols;
	for (unsigned int i = 0; i < c->n_vols; i++) {
		j->vols[i] = c->vols[i];
		j->meta[i] = c->meta_dirty[i];
		c->vols[i].dirty = false;
		c->vols[i].punched = false;
		c->meta_dirty[i] = false;
	}
	c->unsynced_bytes = 0;
	c->data_unsynced = false;
}

/* Flush the data, then store the metadata (either thread). */
static void job_run(struct flush_job *j)
{
	j->rc = 0;
	j->failed = -1;
	for (unsigned int i = 0; i < j->n; i++) {
		j->rc = volume_sync(&j->vols[i], j->err, sizeof(j->err));
		if (j->rc) {
			j->failed = (int)i;
			return;
		}
	}
	for (unsigned int i = 0; i < j->n; i++) {
		if (!j->meta[i])
			continue;
		j->rc = volume_store_meta(&j->vols[i], j->err,
					  sizeof(j->err));
		if (j->rc) {
			j->failed = (int)i;
			return;
		}
	}
}

/*
 * Job J is done: acknowledge its frames, now durable.  On a storage
 * failure, sends a fatal ERROR for the first frame not durable and
 * returns -1 (nothing more is acknowledged).
 */
static int job_finish(struct conn *c, struct flush_job *j)
{
	uint8_t ack[FERRY_WIRE_HDR_LEN];
	size_t n;

	if (j->rc) {
		/* Nothing after the last ACK may count as received. */
		c->applied = c->acked;
		c->nospc_path = j->failed >= 0 ? j->vols[j->failed].img_path
					       : NULL;
		send_error(c, c->acked + 1, true, j->rc, j->err);
		return -1;
	}
	/* Data is durable again: a staging error reported for this
	 * server is over (before the ACK: the agent may go on at once). */
	if (j->data)
		ctl_staging_ok(c->id);
	if (c->broken)
		return -1;
	n = ferry_wire_encode_ack(ack, sizeof(ack), j->seq);
	if (!n || send_all(c, ack, n))
		return -1;
	c->acked = j->seq;
	c->unacked_bytes -= j->unacked;
	c->commits++;
	return 0;
}

static void *flusher_main(void *arg)
{
	struct flusher *f = arg;
	uint64_t one = 1;

	pthread_mutex_lock(&f->lock);
	for (;;) {
		while (!f->run && !f->quit)
			pthread_cond_wait(&f->cond, &f->lock);
		if (f->quit)
			break;
		f->run = false;
		pthread_mutex_unlock(&f->lock);
		job_run(&f->job);
		pthread_mutex_lock(&f->lock);
		f->done = true;
		pthread_cond_broadcast(&f->cond);
		if (write(f->efd, &one, sizeof(one)) < 0) {
			/* Cannot fail on a counter far from its limit; the
			 * connection's thread also polls DONE. */
		}
	}
	pthread_mutex_unlock(&f->lock);
	return NULL;
}

static int flusher_start(struct conn *c)
{
	struct flusher *f = &c->fl;
	pthread_attr_t attr;
	int rc;

	f->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (f->efd < 0) {
		rlog_error("%s id=%s: no eventfd for the flusher thread (%s); "
			   "flushing on the connection's thread", c->peer,
			   c->id, strerror(errno));
		return -1;
	}
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->cond, NULL);
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 128u << 10);
	rc = pthread_create(&f->thread, &attr, flusher_main, f);
	pthread_attr_destroy(&attr);
	if (rc) {
		rlog_error("%s id=%s: cannot start a flusher thread (%s); "
			   "flushing on the connection's thread", c->peer,
			   c->id, strerror(rc));
		pthread_mutex_destroy(&f->lock);
		pthread_cond_destroy(&f->cond);
		close(f->efd);
		f->efd = -1;
		return -1;
	}
	f->started = true;
	return 0;
}

static void flusher_stop(struct conn *c)
{
	struct flusher *f = &c->fl;

	if (!f->started)
		return;
	/* A job in flight finishes first: its descriptors are ours. */
	pthread_mutex_lock(&f->lock);
	f->quit = true;
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->lock);
	pthread_join(f->thread, NULL);
	pthread_mutex_destroy(&f->lock);
	pthread_cond_destroy(&f->cond);
	close(f->efd);
	f->started = false;
}

/* Acknowledge the job in flight if it is done (WAIT: wait for it). */
static int flusher_collect(struct conn *c, bool wait)
{
	struct flusher *f = &c->fl;
	uint64_t v;
	bool done;

	if (!f->busy)
		return 0;
	pthread_mutex_lock(&f->lock);
	while (wait && !f->done)
		pthread_cond_wait(&f->cond, &f->lock);
	done = f->done;
	f->done = false;
	pthread_mutex_unlock(&f->lock);
	if (!done)
		return 0;
	if (read(f->efd, &v, sizeof(v)) < 0) {
		/* EAGAIN: already drained by an earlier collect. */
	}
	f->busy = false;
	return job_finish(c, &f->job);
}

/*
 * Make every frame applied so far durable, then acknowledge it, on this
 * thread (after the flush in flight, if any).  -1 on failure (see
 * job_finish()).
 */
static int commit(struct conn *c)
{
	struct flush_job *j = &c->fl.job;

	if (flusher_collect(c, true))
		return -1;
	if (c->applied == c->acked || c->broken)
		return 0;
	job_prepare(c, j);
	job_run(j);
	return job_finish(c, j);
}

/*
 * Group commit without stopping the input: acknowledge the flush in
 * flight if it is done, and hand what was applied since to the flusher
 * thread when it is idle.  -1 when the connection is to close.
 */
static int commit_start(struct conn *c)
{
	struct flusher *f = &c->fl;

	if (flusher_collect(c, false))
		return -1;
	if (f->busy || c->applied == c->acked || c->broken)
		return 0;
	if (!f->started && flusher_start(c))
		return commit(c);
	job_prepare(c, &f->job);
	f->busy = true;
	pthread_mutex_lock(&f->lock);
	f->run = true;
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->lock);
	return 0;
}

/* A fatal error in frame SEQ: acknowledge what came before, then say. */
static void frame_error(struct conn *c, uint64_t seq, int code,
			const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void frame_error(struct conn *c, uint64_t seq, int code,
			const char *fmt, ...)
{
	char msg[FERRY_WIRE_MAX_STRING];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (c->welcomed && commit(c))
		return;
	send_error(c, seq, true, code, msg);
}

/*
 * A write failed with RC: if the staging filesystem is full, let the
 * server's oldest snapshot go (snap_yield_oldest()).  True if one went
 * and the write is worth trying again.
 */
static bool space_made(struct conn *c, int rc)
{
	char err[512];
	int r;

	if (rc != FERRY_E_NOSPC)
		return false;
	r = snap_yield_oldest(c->srv->cfg->data_dir, c->id, err, sizeof(err));
	if (r < 0 || r > 1)
		rlog_error("%s id=%s: the staging filesystem is full and "
			   "deleting the oldest snapshot failed: %s", c->peer,
			   c->id, err);
	return r == 1;
}

static void note_unsynced(struct conn *c, uint64_t bytes)
{
	if (!c->unsynced_bytes)
		clock_gettime(CLOCK_MONOTONIC, &c->first_unsynced);
	c->unsynced_bytes += bytes ? bytes : 1;
}

/* ---- HELLO -------------------------------------------------------------- */

static void str_copy(char *dst, size_t cap, const struct ferry_str *s)
{
	size_t n = s->len < cap - 1 ? s->len : cap - 1;

	memcpy(dst, s->s, n);
	dst[n] = '\0';
}

static int open_disk(struct conn *c, unsigned int i,
		     const struct ferry_hello_disk *d, char *err,
		     size_t errlen)
{
	const struct rep_config *cfg = c->srv->cfg;
	const struct rep_allow *a;
	char name[FERRY_WIRE_MAX_NAME + 1], file[VOLUME_FILE_MAX];
	struct rep_allow ctl_a;
	int known, ctl_known;

	str_copy(name, sizeof(name), &d->name);
	if (memchr(d->name.s, '\0', d->name.len)) {
		snprintf(err, errlen, "disk name %u holds a NUL byte", i);
		return FERRY_E_PROTOCOL;
	}
	a = rep_config_find(cfg, c->id, name, &known);
	c->by_allow |= a != NULL;
	/* ferry-control's assignments: a second source after the allow
	 * lines (control_client.h).  Not there: ferry-control may have
	 * assigned it since the last poll (the agent learns it at once);
	 * fetch them again, once per connection. */
	if (!a && ctl_assignment_find(c->id, name, &ctl_a.size, &ctl_known))
		a = &ctl_a;
	else if (!a && !c->refreshed && cfg->control_url) {
		c->refreshed = true;
		if (ctl_assignment_refresh(c->id) == 0 &&
		    ctl_assignment_find(c->id, name, &ctl_a.size, &ctl_known))
			a = &ctl_a;
	}
	if (!a)
		known |= ctl_known;
	if (!a) {
		if (!known) {
			snprintf(err, errlen, "source server %s is not "
				 "assigned to this replicator", c->id);
			return FERRY_E_DENIED;
		}
		snprintf(err, errlen, "disk %s of source server %s is not "
			 "assigned to this replicator", name, c->id);
		return FERRY_E_UNKNOWN_DISK;
	}
	if (a->size && d->size > a->size) {
		snprintf(err, errlen, "disk %s of %s is %" PRIu64 " bytes, "
			 "more than the %" PRIu64 " assigned to it", name,
			 c->id, d->size, a->size);
		return FERRY_E_RANGE;
	}
	if (volume_file_name(name, file, sizeof(file) - 16)) {
		snprintf(err, errlen, "disk name %s cannot name a staging "
			 "file", name);
		return FERRY_E_UNKNOWN_DISK;
	}
	if (claim_take(c->id, file, c)) {
		snprintf(err, errlen, "disk %s of %s is being written by "
			 "another connection; retry later", name, c->id);
		return FERRY_E_BUSY;
	}
	c->limit[i] = d->size;
	/* Also copies on write into the newest snapshot from here on. */
	return volume_open(&c->vols[i], cfg->data_dir, c->id, name, d->size,
			   err, errlen);
}

static int on_hello(struct conn *c, const struct ferry_hdr *h,
		    const struct ferry_hello *m)
{
	struct ferry_welcome w;
	char err[FERRY_WIRE_MAX_STRING], sid[FERRY_WIRE_MAX_NAME + 1],
	     summary[1024];
	size_t n, off = 0;
	uint8_t *buf = c->wbuf;
	int rc;

	str_copy(c->agent, sizeof(c->agent), &m->agent_version);
	if (m->max_version < FERRY_WIRE_MIN_VERSION ||
	    m->min_version > FERRY_WIRE_VERSION) {
		frame_error(c, h->seq, FERRY_E_VERSION,
			    "agent speaks versions %u-%u, this replicator "
			    "%u-%u", m->min_version, m->max_version,
			    FERRY_WIRE_MIN_VERSION, FERRY_WIRE_VERSION);
		return -1;
	}
	str_copy(sid, sizeof(sid), &m->source_server_id);
	if (m->source_server_id.len != strlen(c->id) ||
	    memcmp(m->source_server_id.s, c->id, strlen(c->id))) {
		frame_error(c, h->seq, FERRY_E_DENIED,
			    "HELLO source_server_id %s is not %s, the ID in "
			    "the client certificate", sid, c->id);
		return -1;
	}
	c->n_vols = m->n_disks;
	for (unsigned int i = 0; i < m->n_disks; i++) {
		c->vols[i].fd = -1;
		c->vols[i].dir_fd = -1;
	}
	for (unsigned int i = 0; i < m->n_disks; i++) {
		rc = open_disk(c, i, &m->disks[i], err, sizeof(err));
		if (rc) {
			frame_error(c, h->seq, rc, "%s", err);
			return -1;
		}
	}

	memset(&w, 0, sizeof(w));
	w.version = m->max_version < FERRY_WIRE_VERSION ? m->max_version
							: FERRY_WIRE_VERSION;
	w.n_disks = m->n_disks;
	w.window = REP_WINDOW_FRAMES;
	w.window_bytes = REP_WINDOW_BYTES;
	for (unsigned int i = 0; i < m->n_disks; i++) {
		const struct volume *v = &c->vols[i];
		int k;

		memcpy(w.disks[i].volume_id, v->id, 16);
		w.disks[i].size = v->size;
		w.disks[i].sync_mark = v->sync_mark;
		w.disks[i].last_cp = v->last_cp;
		k = snprintf(summary + off, sizeof(summary) - off,
			     "%s%s %" PRIu64 " bytes%s sync_mark %" PRIu64
			     " last_cp %" PRIu64, i ? ", " : "", v->disk,
			     c->limit[i], v->created ? " (new volume)" : "",
			     v->sync_mark, v->last_cp);
		if (k > 0 && (size_t)k < sizeof(summary) - off)
			off += (size_t)k;
	}
	n = ferry_wire_encode_welcome(buf, WBUF_CAP, h->seq, &w);
	if (!n) {
		frame_error(c, h->seq, FERRY_E_INTERNAL,
			    "cannot encode WELCOME");
		return -1;
	}
	if (send_all(c, buf, n))
		return -1;
	c->welcomed = true;
	c->applied = c->acked = h->seq;
	c->unacked_bytes = 0;
	rlog_info("%s id=%s: hello from agent %s, version %u: %s", c->peer,
		  c->id, c->agent[0] ? c->agent : "?", w.version, summary);
	return 0;
}

/* ---- the data path ------------------------------------------------ */

static bool bad_disk(struct conn *c, const struct ferry_hdr *h, uint32_t disk)
{
	if (disk < c->n_vols)
		return false;
	frame_error(c, h->seq, FERRY_E_UNKNOWN_DISK,
		    "%s names disk %u; HELLO announced %u",
		    ferry_wire_type_name(h->type), disk, c->n_vols);
	return true;
}

static bool bad_range(struct conn *c, const struct ferry_hdr *h,
		      uint32_t disk, uint64_t off, uint64_t len)
{
	uint64_t lim = c->limit[disk];

	if (off <= lim && len <= lim - off)
		return false;
	frame_error(c, h->seq, FERRY_E_RANGE,
		    "%s range %" PRIu64 "+%" PRIu64 " is beyond disk %s of %"
		    PRIu64 " bytes", ferry_wire_type_name(h->type), off, len,
		    c->vols[disk].disk, lim);
	return true;
}

static int on_data(struct conn *c, const struct ferry_hdr *h,
		   const struct ferry_data *d)
{
	char err[512];
	const uint8_t *bytes;
	int rc;

	if (bad_disk(c, h, d->disk) ||
	    bad_range(c, h, d->disk, d->offset, d->raw_len))
		return -1;
	if (d->codec == FERRY_CODEC_RAW) {
		/* Checked in place: the payload is our own read buffer. */
		bytes = d->payload;
		rc = ferry_codec_decode(d->codec, d->payload, d->payload_len,
					(void *)d->payload, d->raw_len,
					d->xxh3, err, sizeof(err));
	} else {
		bytes = c->dec;
		rc = ferry_codec_decode(d->codec, d->payload, d->payload_len,
					c->dec, d->raw_len, d->xxh3, err,
					sizeof(err));
	}
	if (rc) {
		frame_error(c, h->seq, FERRY_E_CORRUPT, "disk %s offset %"
			    PRIu64 ": %s", c->vols[d->disk].disk, d->offset,
			    err);
		return -1;
	}
	do
		rc = volume_write(&c->vols[d->disk], d->offset, bytes,
				  d->raw_len, err, sizeof(err));
	while (space_made(c, rc));
	if (rc) {
		/* Part may be written: it is not acknowledged, and the
		 * agent sends it again after reconnecting. */
		c->applied = h->seq - 1;
		c->nospc_path = c->vols[d->disk].img_path;
		frame_error(c, h->seq, rc, "%s", err);
		return -1;
	}
	c->bytes_written += d->raw_len;
	c->data_unsynced = true;
	note_unsynced(c, d->raw_len);
	return 0;
}

static int on_zero(struct conn *c, const struct ferry_hdr *h,
		   const struct ferry_zero *z)
{
	char err[512];
	int rc;

	if (bad_disk(c, h, z->disk) ||
	    bad_range(c, h, z->disk, z->offset, z->length))
		return -1;
	do
		rc = volume_zero(&c->vols[z->disk], z->offset, z->length, err,
				 sizeof(err));
	while (space_made(c, rc));
	if (rc) {
		c->nospc_path = c->vols[z->disk].img_path;
		frame_error(c, h->seq, rc, "%s", err);
		return -1;
	}
	c->bytes_zeroed += z->length;
	note_unsynced(c, 0);
	return 0;
}

static int on_hash_req(struct conn *c, const struct ferry_hdr *h,
		       const struct ferry_hash_req *q)
{
	struct ferry_hash_resp r;
	char err[512];
	uint32_t count;
	size_t n;
	int rc;

	if (bad_disk(c, h, q->disk) ||
	    bad_range(c, h, q->disk, q->offset, q->length))
		return -1;
	/* Only the last chunk can be short: it is hashed as it is. */
	rc = volume_hash(&c->vols[q->disk], q->offset, q->length, q->chunk,
			 c->dec, c->hashes, &count, err, sizeof(err));
	if (rc) {
		frame_error(c, h->seq, rc, "%s", err);
		return -1;
	}
	memset(&r, 0, sizeof(r));
	r.disk = q->disk;
	r.chunk = q->chunk;
	r.offset = q->offset;
	r.count = count;
	r.hashes = c->hashes;
	n = ferry_wire_encode_hash_resp(c->wbuf, WBUF_CAP, h->seq, &r);
	if (!n) {
		frame_error(c, h->seq, FERRY_E_INTERNAL,
			    "cannot encode HASH_RESP of %u hashes", count);
		return -1;
	}
	c->hash_reqs++;
	return send_all(c, c->wbuf, n);
}

static int on_sync_mark(struct conn *c, const struct ferry_hdr *h,
			const struct ferry_sync_mark *s)
{
	if (bad_disk(c, h, s->disk) || bad_range(c, h, s->disk, s->offset, 0))
		return -1;
	c->vols[s->disk].sync_mark = s->offset;
	c->meta_dirty[s->disk] = true;
	note_unsynced(c, 0);
	return 0;
}

/*
 * Snapshots (snapshot.c): when the policy wants one at this CP, commit
 * (the CP is durable and acknowledged) and take it before any later frame
 * is applied.  A failure closes the connection: the volume must not be
 * written past a snapshot whose copy-on-write state is unknown.
 */
static int cp_snapshot(struct conn *c, const struct ferry_hdr *h,
		       const struct ferry_cp *p)
{
	const struct rep_config *cfg = c->srv->cfg;
	const struct snap_policy *pol = &cfg->pit;
	struct snap_policy own;
	char err[512];
	int rc;

	/* The server's own policy from ferry-control, looked up at each CP
	 * so that a change applies without a reconnection; an allow line
	 * is this replicator's assignment, under its own policy. */
	if (!c->by_allow && ctl_assignment_pit(c->id, &own))
		pol = &own;
	if (!snap_due(c->vols, c->n_vols, cfg->data_dir, c->id, pol,
		      p->cp_id))
		return 0;
	c->applied = h->seq;
	if (commit(c))
		return -1;
	do
		rc = snap_at_cp(c->vols, c->n_vols, cfg->data_dir, c->id, pol,
				p->cp_id, p->time_ms, err, sizeof(err));
	while (space_made(c, rc));
	if (rc < 0 || rc > 1) {
		send_error(c, c->acked + 1, true, rc, err);
		return -1;
	}
	if (rc == 1) {
		rlog_info("%s id=%s: snapshot %s@%" PRIu64 " of %u disk(s)",
			  c->peer, c->id, c->id, p->cp_id, c->n_vols);
		/* The next report to ferry-control carries it. */
		ctl_note_snapshot(c->id, (int64_t)p->time_ms);
	}
	return 0;
}

static int on_cp(struct conn *c, const struct ferry_hdr *h,
		 const struct ferry_cp *p)
{
	if (c->have_cp && p->cp_id <= c->last_cp) {
		frame_error(c, h->seq, FERRY_E_PROTOCOL,
			    "CP %" PRIu64 " after CP %" PRIu64
			    ": ids must increase", p->cp_id, c->last_cp);
		return -1;
	}
	c->have_cp = true;
	c->last_cp = p->cp_id;
	for (unsigned int i = 0; i < c->n_vols; i++) {
		c->vols[i].last_cp = p->cp_id;
		c->vols[i].last_cp_time_ms = p->time_ms;
		c->meta_dirty[i] = true;
	}
	note_unsynced(c, 0);
	return cp_snapshot(c, h, p);
}

/* Apply one whole frame; -1 when the connection is to close. */
static int on_frame(struct conn *c, const struct ferry_hdr *h,
		    const uint8_t *payload)
{
	struct ferry_msg m;
	char err[512];
	int rc = 0;

	if (h->seq != c->expect_seq) {
		frame_error(c, h->seq, FERRY_E_PROTOCOL,
			    "%s has seq %" PRIu64 ", expected %" PRIu64,
			    ferry_wire_type_name(h->type), h->seq,
			    c->expect_seq);
		return -1;
	}
	if (!c->welcomed && h->type != FERRY_F_HELLO) {
		frame_error(c, h->seq, FERRY_E_PROTOCOL,
			    "first frame is %s, not HELLO",
			    ferry_wire_type_name(h->type));
		return -1;
	}
	/* Flow control: the agent may not run further ahead than WELCOME
	 * allowed.  Our last ACK is never older than the one it has seen,
	 * so counting from it can only be generous.  Keepalives, a goodbye
	 * or an error are always allowed through (docs/protocol.md 6): an
	 * agent waiting on a slow group commit still pings. */
	if (c->welcomed && h->type != FERRY_F_BYE &&
	    h->type != FERRY_F_ERROR && h->type != FERRY_F_PING &&
	    h->type != FERRY_F_PONG) {
		if (h->seq - c->acked > REP_WINDOW_FRAMES) {
			frame_error(c, h->seq, FERRY_E_PROTOCOL,
				    "window of %u frames exceeded: seq %" PRIu64
				    " sent with %" PRIu64 " acknowledged",
				    REP_WINDOW_FRAMES, h->seq, c->acked);
			return -1;
		}
		if (c->unacked_bytes + h->len > REP_WINDOW_BYTES) {
			frame_error(c, h->seq, FERRY_E_PROTOCOL,
				    "window of %llu bytes exceeded at seq %"
				    PRIu64 " (%" PRIu64
				    " bytes unacknowledged)",
				    REP_WINDOW_BYTES, h->seq,
				    c->unacked_bytes + h->len);
			return -1;
		}
	}
	if (ferry_wire_decode(h, payload, &m, err, sizeof(err))) {
		frame_error(c, h->seq, FERRY_E_PROTOCOL, "%s", err);
		return -1;
	}
	c->expect_seq++;
	c->frames++;
	c->unacked_bytes += h->len;
	switch (h->type) {
	case FERRY_F_HELLO:
		if (c->welcomed) {
			frame_error(c, h->seq, FERRY_E_PROTOCOL,
				    "a second HELLO");
			return -1;
		}
		return on_hello(c, h, &m.u.hello);
	case FERRY_F_DATA:
		rc = on_data(c, h, &m.u.data);
		break;
	case FERRY_F_ZERO:
		rc = on_zero(c, h, &m.u.zero);
		break;
	case FERRY_F_HASH_REQ:
		rc = on_hash_req(c, h, &m.u.hash_req);
		break;
	case FERRY_F_SYNC_MARK:
		rc = on_sync_mark(c, h, &m.u.sync_mark);
		break;
	case FERRY_F_CP:
		rc = on_cp(c, h, &m.u.cp);
		break;
	case FERRY_F_PING: {
		uint8_t pong[FERRY_WIRE_HDR_LEN + 8];
		size_t n = ferry_wire_encode_ping(pong, sizeof(pong),
						  FERRY_F_PONG, h->seq,
						  m.u.nonce);

		rc = n ? send_all(c, pong, n) : -1;
		break;
	}
	case FERRY_F_PONG:
		break;
	case FERRY_F_ERROR: {
		char msg[FERRY_WIRE_MAX_STRING + 1];

		str_copy(msg, sizeof(msg), &m.u.error.message);
		rlog_error("%s id=%s: agent reports %s%s: %s", c->peer, c->id,
			   ferry_wire_error_name(m.u.error.code),
			   h->flags & FERRY_ERR_FATAL ? " (fatal)" : "", msg);
		if (h->flags & FERRY_ERR_FATAL) {
			set_why(c, "agent reported %s",
				ferry_wire_error_name(m.u.error.code));
			c->applied = h->seq;
			c->leaving = true;
			commit(c);
			c->closing = true;
			return -1;
		}
		break;
	}
	case FERRY_F_BYE: {
		uint8_t bye[FERRY_WIRE_HDR_LEN];
		size_t n;

		c->applied = h->seq;
		c->leaving = true;
		set_why(c, "agent said BYE");
		if (commit(c))
			return -1;
		n = ferry_wire_encode_bye(bye, sizeof(bye), h->seq);
		if (n)
			send_all(c, bye, n);
		c->closing = true;
		return -1;
	}
	default:
		frame_error(c, h->seq, FERRY_E_PROTOCOL,
			    "%s is a server's frame",
			    ferry_wire_type_name(h->type));
		return -1;
	}
	if (rc)
		return -1;
	c->applied = h->seq;
	/* Group commit thresholds, for an agent that never pauses. */
	if (c->unsynced_bytes >= REP_COMMIT_BYTES ||
	    c->applied - c->acked >= REP_COMMIT_FRAMES ||
	    (c->unsynced_bytes && ms_since(&c->first_unsynced) >=
	     REP_COMMIT_MS))
		return commit_start(c);
	return 0;
}

/* Handle every whole frame in the read buffer; -1 to close. */
static int drain_buffer(struct conn *c)
{
	while (!c->closing && c->rlen - c->rpos >= FERRY_WIRE_HDR_LEN) {
		const uint8_t *p = c->rbuf + c->rpos;
		struct ferry_hdr h;
		char err[512];

		if (ferry_wire_decode_hdr(p, &h, err, sizeof(err))) {
			uint64_t seq = 0;

			for (int i = 8; i < 16; i++)
				seq = seq << 8 | p[i];
			frame_error(c, seq, FERRY_E_PROTOCOL, "%s", err);
			return -1;
		}
		if (c->rlen - c->rpos < FERRY_WIRE_HDR_LEN + (size_t)h.len)
			break;
		if (on_frame(c, &h, p + FERRY_WIRE_HDR_LEN))
			return -1;
		c->rpos += FERRY_WIRE_HDR_LEN + h.len;
	}
	if (c->rpos == c->rlen) {
		c->rpos = c->rlen = 0;
	} else if (RBUF_CAP - c->rlen < (64u << 10) ||
		   RBUF_CAP - c->rpos < FERRY_WIRE_HDR_LEN +
					FERRY_WIRE_MAX_PAYLOAD) {
		/* Room for at least one whole frame from rpos. */
		memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
		c->rlen -= c->rpos;
		c->rpos = 0;
	}
	return c->closing ? -1 : 0;
}

/*
 * How much to read: up to the end of the frame in the buffer (or of its
 * header), not beyond.  The buffer then ends on a frame boundary and
 * starts over at 0, so drain_buffer() never moves a partial frame (up to
 * a MiB per frame); read-ahead keeps the system calls large.
 */
static size_t read_want(const struct conn *c)
{
	size_t have = c->rlen - c->rpos, room = RBUF_CAP - c->rlen, want;
	struct ferry_hdr h;
	char err[8];

	if (have < FERRY_WIRE_HDR_LEN)
		want = FERRY_WIRE_HDR_LEN - have;
	else if (!ferry_wire_decode_hdr(c->rbuf + c->rpos, &h, err,
					sizeof(err)) &&
		 FERRY_WIRE_HDR_LEN + (size_t)h.len > have)
		want = FERRY_WIRE_HDR_LEN + (size_t)h.len - have;
	else
		want = room;
	return want < room ? want : room;
}

static bool socket_readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, 0) > 0;
}

/*
 * Wait for input; 1 when there is some, 2 when the flush in flight is
 * done, 0 on shutdown, -1 when the peer has been silent for the idle
 * timeout.  After each quarter of it without
 * a byte (15 s by default), PING the agent: any frame back proves it is
 * there.
 */
static int wait_input(struct conn *c)
{
	uint64_t idle_ms = (uint64_t)c->srv->cfg->idle_timeout * 1000;
	uint64_t ping_ms = idle_ms / 4;

	for (;;) {
		struct pollfd p[3] = {
			{ .fd = c->fd, .events = POLLIN },
			{ .fd = c->srv->stop_fd, .events = POLLIN },
			{ .fd = c->fl.busy ? c->fl.efd : -1, .events = POLLIN },
		};
		uint64_t quiet = ms_since(&c->last_rx);
		uint64_t next_ping = ping_ms * (c->pings + 1), until;
		int n;

		if (quiet >= idle_ms)
			return -1;
		if (c->welcomed && quiet >= next_ping) {
			uint8_t ping[FERRY_WIRE_HDR_LEN + 8];
			size_t len = ferry_wire_encode_ping(ping, sizeof(ping),
						FERRY_F_PING,
						c->expect_seq - 1, ++c->pings);

			if (!len || send_all(c, ping, len))
				return -1;
			continue;
		}
		until = c->welcomed && next_ping < idle_ms ? next_ping
							    : idle_ms;
		n = poll(p, 3, (int)(until - quiet));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (p[1].revents)
			return 0;
		if (p[2].revents)
			return 2;
		if (p[0].revents)
			return 1;
	}
}

/* SO_RCVTIMEO of the connection's socket: MS, or the idle timeout. */
static void read_timeout(struct conn *c, unsigned int ms)
{
	struct timeval tv = { .tv_sec = ms / 1000,
			      .tv_usec = (ms % 1000) * 1000 };

	if (!ms)
		tv.tv_sec = c->srv->cfg->idle_timeout;
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

static void serve_frames(struct conn *c)
{
	char why[512];

	while (!c->closing) {
		bool drained, owed;
		int n, w;

		if (drain_buffer(c))
			return;
		/* A flush finished: acknowledge it.  The next starts at a
		 * group commit threshold or when the input drains: flushing
		 * as soon as one ends makes many small, costly flushes. */
		if (c->fl.busy && flusher_collect(c, false))
			return;
		/* Nothing more waiting anywhere: flush and acknowledge.
		 * (SSL_has_pending: read-ahead may hold whole records.) */
		drained = !socket_readable(c->fd);
		if (drained && !SSL_has_pending(c->ssl)) {
			if (c->applied != c->acked && commit_start(c))
				return;
			w = wait_input(c);
			if (w < 0) {
				/* The peer is presumably gone: no ERROR,
				 * but what was applied is still made
				 * durable. */
				set_why(c, "nothing received for %" PRIu64
					" s", ms_since(&c->last_rx) / 1000);
				commit(c);
				return;
			}
			if (w == 0) {
				uint8_t bye[FERRY_WIRE_HDR_LEN];
				size_t len;

				set_why(c, "replicator shutting down");
				if (!c->welcomed || commit(c))
					return;
				len = ferry_wire_encode_bye(bye, sizeof(bye),
							    c->expect_seq - 1);
				if (len)
					send_all(c, bye, len);
				return;
			}
			if (w == 2)
				continue;
		}
		/*
		 * Only read-ahead bytes are left: whole records, or part of
		 * one whose rest is late (a stalled link).  Frames applied and
		 * not acknowledged must not wait for that rest: read for
		 * REP_COMMIT_MS, then flush and acknowledge them.
		 */
		owed = drained && c->applied != c->acked;
		if (owed)
			read_timeout(c, REP_COMMIT_MS);
		ERR_clear_error();
		n = SSL_read(c->ssl, c->rbuf + c->rlen, (int)read_want(c));
		if (owed) {
			int e = SSL_get_error(c->ssl, n);

			read_timeout(c, 0);
			if (n <= 0 && e == SSL_ERROR_WANT_READ) {
				ERR_clear_error();
				if (commit_start(c))
					return;
				continue;
			}
		}
		if (n <= 0) {
			ferry_tls_describe_error(c->ssl, n, why, sizeof(why));
			c->broken = true;
			if (c->rlen > c->rpos)
				set_why(c, "connection lost inside a frame: %s",
					why);
			else
				set_why(c, "connection lost: %s", why);
			return;
		}
		c->rlen += (size_t)n;
		c->bytes_in += (uint64_t)n;
		c->pings = 0;
		clock_gettime(CLOCK_MONOTONIC, &c->last_rx);
	}
}

/* ---- accept, handshake, teardown ---------------------------------- */

static void peer_name(const struct sockaddr_storage *a, char *out,
		      size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";

	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *s = (const void *)a;

		inet_ntop(AF_INET, &s->sin_addr, host, sizeof(host));
		snprintf(out, len, "%s:%u", host, ntohs(s->sin_port));
	} else if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const void *)a;

		inet_ntop(AF_INET6, &s->sin6_addr, host, sizeof(host));
		snprintf(out, len, "[%s]:%u", host, ntohs(s->sin6_port));
	} else {
		snprintf(out, len, "unknown");
	}
}

SSL_CTX *rep_server_ctx(struct rep_server *srv)
{
	SSL_CTX *ctx;

	pthread_mutex_lock(&srv->lock);
	ctx = srv->ctx;
	if (ctx && !SSL_CTX_up_ref(ctx))
		ctx = NULL;
	pthread_mutex_unlock(&srv->lock);
	return ctx;
}

void rep_server_set_ctx(struct rep_server *srv, SSL_CTX *ctx)
{
	SSL_CTX *old;

	pthread_mutex_lock(&srv->lock);
	old = srv->ctx;
	srv->ctx = ctx;
	pthread_mutex_unlock(&srv->lock);
	SSL_CTX_free(old);
}

static int handshake(struct conn *c)
{
	SSL_CTX *ctx = rep_server_ctx(c->srv);
	char why[768];
	X509 *cert;
	int n;

	/* SSL_new() takes a reference of its own. */
	c->ssl = ctx ? SSL_new(ctx) : NULL;
	SSL_CTX_free(ctx);
	if (c->ssl) {
		/* Data comes in 16 KiB records: read many per system call
		 * (a 1 MiB frame would otherwise take 64 reads and polls). */
		SSL_set_default_read_buffer_len(c->ssl, REP_TLS_READ_BUF);
		SSL_set_read_ahead(c->ssl, 1);
	}
	if (!c->ssl || !SSL_set_fd(c->ssl, c->fd)) {
		ferry_tls_errstr(why, sizeof(why));
		rlog_error("%s: cannot set up TLS: %s", c->peer, why);
		return -1;
	}
	ERR_clear_error();
	n = SSL_accept(c->ssl);
	if (n != 1) {
		ferry_tls_describe_error(c->ssl, n, why, sizeof(why));
		rlog_error("%s: refused TLS handshake: %s", c->peer, why);
		c->broken = true;
		return -1;
	}
	cert = SSL_get0_peer_certificate(c->ssl);
	if (!cert || ferry_peer_source_server(cert, c->id, sizeof(c->id))) {
		char subj[256] = "(none)";

		if (cert)
			X509_NAME_oneline(X509_get_subject_name(cert), subj,
					  sizeof(subj));
		c->id[0] = '\0';
		snprintf(why, sizeof(why), "client certificate %s names no "
			 "source server (want a URI SAN "
			 FERRY_URN_SOURCE_SERVER "ID)", subj);
		send_error(c, 0, true, FERRY_E_DENIED, why);
		return -1;
	}
	rlog_info("%s id=%s: connected (%s)", c->peer, c->id,
		  SSL_get_version(c->ssl));
	return 0;
}

static void conn_free(struct conn *c)
{
	flusher_stop(c);
	for (unsigned int i = 0; i < c->n_vols; i++)
		volume_close(&c->vols[i]);
	claim_drop_all(c);
	if (c->ssl) {
		/* A clean TLS close when the session is still sound. */
		if (!c->broken)
			SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
	}
	close(c->fd);
	free(c->rbuf);
	free(c->dec);
	free(c->wbuf);
	free(c->hashes);
	free(c);
}

void conn_serve(struct rep_server *srv, int fd,
		const struct sockaddr_storage *addr)
{
	struct conn *c = calloc(1, sizeof(*c));

	if (!c || !(c->rbuf = malloc(RBUF_CAP)) ||
	    !(c->dec = malloc(FERRY_WIRE_MAX_DATA)) ||
	    !(c->wbuf = malloc(WBUF_CAP)) ||
	    !(c->hashes = malloc(FERRY_WIRE_MAX_HASHES *
				 FERRY_WIRE_HASH_LEN))) {
		char name[64];

		peer_name(addr, name, sizeof(name));
		rlog_error("%s: out of memory for a connection", name);
		close(fd);
		if (c) {
			free(c->rbuf);
			free(c->dec);
			free(c->wbuf);
		}
		free(c);
		goto done;
	}
	c->srv = srv;
	c->fd = fd;
	c->expect_seq = 1;
	peer_name(addr, c->peer, sizeof(c->peer));
	clock_gettime(CLOCK_MONOTONIC, &c->started);
	c->last_rx = c->started;
	if (handshake(c) == 0) {
		serve_frames(c);
		rlog_info("%s id=%s: closed: %s; %" PRIu64 " frames, %" PRIu64
			  " bytes in, %" PRIu64 " written, %" PRIu64
			  " zeroed, %" PRIu64 " hash requests, acked to seq %"
			  PRIu64 ", %" PRIu64 " flushes, %.1f s", c->peer,
			  c->id, c->close_why[0] ? c->close_why : "closed",
			  c->frames, c->bytes_in, c->bytes_written,
			  c->bytes_zeroed, c->hash_reqs, c->acked, c->commits,
			  (double)ms_since(&c->started) / 1000.0);
	}
	conn_free(c);
done:
	pthread_mutex_lock(&srv->lock);
	srv->active--;
	pthread_cond_broadcast(&srv->idle);
	pthread_mutex_unlock(&srv->lock);
}
