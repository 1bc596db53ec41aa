/* SPDX-License-Identifier: GPL-2.0 */
/*
 * certs_cli.h - `ferry-control certs ...`: issue data-plane certificates
 * from the CA in the data directory, without the daemon running.
 */
#ifndef FERRY_CONTROL_CERTS_CLI_H
#define FERRY_CONTROL_CERTS_CLI_H

/*
 * Run `certs SUBCOMMAND [OPTIONS]`; ARGV[0] is "certs".  Returns the
 * process exit status: 0 done, 1 failed, 2 bad usage.
 */
int certs_cli(int argc, char **argv);

#endif
