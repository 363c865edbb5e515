/* Command-line helpers shared by the demo server's option groups. */
#ifndef DEMO_OPTS_H
#define DEMO_OPTS_H

#include <getopt.h>
#include <stdint.h>

/* Fills |n| getopt_long entries from |names| with values base, base+1, ...
 * taking an argument, except entry |no_arg| (-1: none). */
void demo_opts_fill(struct option *out, const char *const *names, int n,
                    int base, int no_arg);

/* A whole decimal int64 in |s|: 0 and |*out|, or -1. */
int demo_parse_i64(const char *s, int64_t *out);

#endif /* DEMO_OPTS_H */
