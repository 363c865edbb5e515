/* The demo server's token options (--jwt-*, --jwks-file, --token-*) and
 * key reload on SIGHUP (key rotation without dropping connections). */
#ifndef DEMO_AUTH_H
#define DEMO_AUTH_H

#include <agentws.h>
#include <uv.h>

typedef struct demo_auth {
  const char *secret_file; /* --jwt-hs256-secret-file */
  const char *jwks_file;   /* --jwks-file */
  const char *pem_file;    /* --jwt-pem-file */
  int enabled;             /* a key source was given */
  agentws_manager *mgr;    /* for reloads */
  uv_signal_t sighup;      /* reload the key files */
  int sighup_ready;
} demo_auth;

/* getopt_long entries for the options above (the caller's table copies
 * them); |base| is the first option value they use. */
#define DEMO_AUTH_NOPTS 12
void demo_auth_options(struct option *out, int base);
void demo_auth_usage(FILE *f);
/* Applies option |idx| (0 .. DEMO_AUTH_NOPTS-1): 0, or prints why not. */
int demo_auth_apply(demo_auth *a, agentws_config *cfg, int idx,
                    const char *arg);
/* Loads the key files into |cfg| (if any were given): 0 or prints why. */
int demo_auth_configure(demo_auth *a, agentws_config *cfg);
/* Reloads the key files on SIGHUP; close with demo_auth_close(). */
void demo_auth_start(demo_auth *a, uv_loop_t *loop, agentws_manager *m);
void demo_auth_close(demo_auth *a);

#endif /* DEMO_AUTH_H */
