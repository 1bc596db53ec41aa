/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers shared by the guest test programs (ferry-writer, ferry-verify,
 * ferry-race, ferry-badargs): error exits, a seeded random generator,
 * argument parsing and block device queries.
 */
#ifndef FERRY_KT_COMMON_H
#define FERRY_KT_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdnoreturn.h>
#include <sys/types.h>

/* Program name for messages; each main() sets it. */
extern const char *kt_prog;

/* "PROG: MESSAGE" on stderr, then exit(1) (failure) or exit(2) (usage). */
noreturn void kt_die(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
noreturn void kt_usage(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

/*
 * splitmix64: small, fast, and the same sequence on every machine for a
 * given seed, so a failing run can be replayed with its --seed.
 */
struct kt_rng {
	uint64_t state;
};

void kt_rng_seed(struct kt_rng *r, uint64_t seed);
uint64_t kt_rng_next(struct kt_rng *r);
/* Uniform in [0, n); n must be non-zero. */
uint64_t kt_rng_below(struct kt_rng *r, uint64_t n);
void kt_rng_fill(struct kt_rng *r, void *buf, size_t len);

/* Parse a byte count (suffixes K, M, G) or die with a usage error. */
uint64_t kt_parse_bytes(const char *opt, const char *s);
/* Parse "OFFSET:LENGTH" (each with suffixes) or die with a usage error. */
void kt_parse_range(const char *opt, const char *s, uint64_t *off,
		    uint64_t *len);

/* Size in bytes and logical block size of an open block device. */
int kt_blkdev_size(int fd, uint64_t *size);
int kt_blkdev_lbs(int fd, unsigned int *lbs);

/* posix_memalign() or die: O_DIRECT buffers must be aligned. */
void *kt_aligned_alloc(size_t align, size_t len);

/* pread/pwrite the whole length (short transfers retried); -1 + errno. */
int kt_pread_full(int fd, void *buf, size_t len, uint64_t off);
int kt_pwrite_full(int fd, const void *buf, size_t len, uint64_t off);

/* Symbolic name of an errno value ("ENOENT"), for test output. */
const char *kt_errno_name(int e);

#endif /* FERRY_KT_COMMON_H */
