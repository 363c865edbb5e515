/* Token options of the demo server: which keys verify JWTs, and reloading
 * them on SIGHUP so key rotation can be seen with clients connected. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "demo_auth.h"
#include "demo_opts.h"

static const char *const names[DEMO_AUTH_NOPTS] = {
    "jwt-hs256-secret-file", "jwks-file",     "jwt-pem-file",
    "jwt-issuer",            "jwt-audience",  "jwt-algorithms",
    "jwt-scope",             "jwt-leeway-s",  "jwt-cache-size",
    "token-sources",         "token-expiring-s", "jwt-user-claim"};

void demo_auth_options(struct option *out, int base) {
  demo_opts_fill(out, names, DEMO_AUTH_NOPTS, base, -1);
}

void demo_auth_usage(FILE *f) {
  fprintf(f,
          "  [--jwt-hs256-secret-file F] [--jwks-file F] [--jwt-pem-file F]\n"
          "  [--jwt-issuer I] [--jwt-audience A] [--jwt-algorithms LIST]\n"
          "  [--jwt-scope S] [--jwt-leeway-s N] [--jwt-cache-size N]\n"
          "  [--jwt-user-claim C] [--token-sources LIST] "
          "[--token-expiring-s N]\n"
          "  (SIGHUP reloads the key files)\n");
}

int demo_auth_apply(demo_auth *a, agentws_config *cfg, int idx,
                    const char *arg) {
  int64_t v = 0;
  int rv = 0;
  switch (idx) {
  case 0: a->secret_file = arg; a->enabled = 1; return 0;
  case 1: a->jwks_file = arg; a->enabled = 1; return 0;
  case 2: a->pem_file = arg; a->enabled = 1; return 0;
  case 3: rv = agentws_config_set_jwt_issuer(cfg, arg); break;
  case 4: rv = agentws_config_set_jwt_audience(cfg, arg); break;
  case 5: rv = agentws_config_set_jwt_algorithms(cfg, arg); break;
  case 6: rv = agentws_config_set_jwt_required_scope(cfg, arg); break;
  case 9: rv = agentws_config_set_token_sources(cfg, arg); break;
  case 11: rv = agentws_config_set_jwt_user_claim(cfg, arg); break;
  default:
    if (demo_parse_i64(arg, &v) != 0) {
      fprintf(stderr, "agentws-demo: --%s needs a number\n", names[idx]);
      return -1;
    }
    rv = idx == 7   ? agentws_config_set_jwt_leeway_s(cfg, v)
         : idx == 8 ? agentws_config_set_jwt_cache_size(cfg, v)
                    : agentws_config_set_token_expiring_s(cfg, v);
  }
  if (rv != 0)
    fprintf(stderr, "agentws-demo: --%s %s: %s\n", names[idx], arg,
            agentws_strerror(rv));
  return rv;
}

/* The file's bytes (a trailing newline dropped), or NULL. */
static char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  char *buf = NULL;
  size_t n = 0, cap = 0;
  if (f == NULL)
    return NULL;
  for (;;) {
    if (n == cap) {
      char *nb = cap < (1u << 20) ? realloc(buf, cap = cap * 2 + 4096) : NULL;
      if (nb == NULL) {
        free(buf);
        fclose(f);
        return NULL;
      }
      buf = nb;
    }
    size_t got = fread(buf + n, 1, cap - n, f);
    n += got;
    if (got == 0)
      break;
  }
  fclose(f);
  while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
    n--;
  *len = n;
  return buf;
}

static int load(const demo_auth *a, agentws_keyset **out) {
  agentws_keyset *ks;
  char *data;
  size_t len = 0;
  int rv = agentws_keyset_new(&ks);
  if (rv != 0)
    return rv;
  if (a->secret_file != NULL) {
    data = slurp(a->secret_file, &len);
    rv = data == NULL ? AGENTWS_ERR_NOT_FOUND
                      : agentws_keyset_add_secret(ks, NULL,
                                                  (const uint8_t *)data, len);
    free(data);
    if (rv != 0)
      fprintf(stderr, "agentws-demo: %s: %s (a secret needs >= 32 bytes)\n",
              a->secret_file, agentws_strerror(rv));
  }
  if (rv == 0 && a->jwks_file != NULL) {
    rv = agentws_keyset_add_jwks_file(ks, a->jwks_file);
    if (rv != 0)
      fprintf(stderr, "agentws-demo: %s: %s\n", a->jwks_file,
              agentws_strerror(rv));
  }
  if (rv == 0 && a->pem_file != NULL) {
    data = slurp(a->pem_file, &len);
    rv = data == NULL ? AGENTWS_ERR_NOT_FOUND
                      : agentws_keyset_add_pem(ks, NULL, data, len);
    free(data);
    if (rv != 0)
      fprintf(stderr, "agentws-demo: %s: %s\n", a->pem_file,
              agentws_strerror(rv));
  }
  if (rv != 0) {
    agentws_keyset_free(ks);
    return rv;
  }
  *out = ks;
  return 0;
}

int demo_auth_configure(demo_auth *a, agentws_config *cfg) {
  agentws_keyset *ks;
  int rv;
  if (!a->enabled)
    return 0;
  rv = load(a, &ks);
  if (rv != 0)
    return rv;
  rv = agentws_config_set_jwt_keys(cfg, ks);
  fprintf(stderr, "agentws-demo: JWT auth with %d key(s)\n",
          agentws_keyset_count(ks));
  agentws_keyset_free(ks);
  return rv;
}

static void on_sighup(uv_signal_t *h, int signum) {
  demo_auth *a = h->data;
  agentws_keyset *ks;
  (void)signum;
  if (load(a, &ks) != 0) {
    fprintf(stderr, "agentws-demo: key reload failed; old keys kept\n");
    return;
  }
  if (agentws_manager_set_jwt_keys(a->mgr, ks) == 0)
    fprintf(stderr, "agentws-demo: keys reloaded: %d key(s)\n",
            agentws_keyset_count(ks));
  agentws_keyset_free(ks);
}

void demo_auth_start(demo_auth *a, uv_loop_t *loop, agentws_manager *m) {
  if (!a->enabled)
    return;
  a->mgr = m;
  uv_signal_init(loop, &a->sighup);
  a->sighup.data = a;
  uv_signal_start(&a->sighup, on_sighup, SIGHUP);
  a->sighup_ready = 1;
}

void demo_auth_close(demo_auth *a) {
  if (a->sighup_ready)
    uv_close((uv_handle_t *)&a->sighup, NULL);
  a->sighup_ready = 0;
}
