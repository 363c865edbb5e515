/* Command-line helpers shared by the demo server's option groups. */
#include "demo_opts.h"

#include <errno.h>
#include <stdlib.h>

void demo_opts_fill(struct option *out, const char *const *names, int n,
                    int base, int no_arg) {
  int i;
  for (i = 0; i < n; i++) {
    out[i].name = names[i];
    out[i].has_arg = i == no_arg ? no_argument : required_argument;
    out[i].flag = NULL;
    out[i].val = base + i;
  }
}

int demo_parse_i64(const char *s, int64_t *out) {
  char *end;
  long long v;
  errno = 0;
  v = strtoll(s, &end, 10);
  if (errno != 0 || *end != '\0' || end == s)
    return -1;
  *out = v;
  return 0;
}
