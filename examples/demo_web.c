/* Static pages of the demo server. The directory is read once at startup:
 * the loop thread then answers from memory and never blocks on the disk.
 * Only the directory's own regular files with plain names are served, and
 * a request path is looked up by exact name in that table, so no path
 * ("/../x", "/%2e%2e/x", "/a/b") can reach anything else. */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "demo_web.h"

#ifndef DEMO_WEB_DIR
#define DEMO_WEB_DIR "examples/web"
#endif

#define MAX_FILES 256            /* a demo's pages, not a file server */
#define MAX_FILE_BYTES (4u << 20) /* larger files are skipped */
#define MAX_NAME 128

void demo_web_options(struct option *out, int base) {
  out[0].name = "static-dir";
  out[0].has_arg = required_argument;
  out[0].flag = NULL;
  out[0].val = base;
}

void demo_web_usage(FILE *f) {
  fprintf(f,
          "  [--static-dir D] (agent mode: pages /chat (also /), "
          "/dashboard;\n    default %s)\n",
          DEMO_WEB_DIR);
}

int demo_web_apply(demo_web *w, int idx, const char *arg) {
  if (idx != 0)
    return -1;
  w->dir = arg;
  w->dir_given = 1;
  return 0;
}

/* Names served: letters, digits, '_', '-', '.', not starting with '.'
 * (no hidden files, editor backups such as ".x.swp", nor ".."). */
static int plain_name(const char *s) {
  size_t i;
  if (s[0] == '\0' || s[0] == '.')
    return 0;
  for (i = 0; s[i] != '\0'; i++) {
    char c = s[i];
    if (i >= MAX_NAME || !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                           (c >= '0' && c <= '9') || c == '_' || c == '-' ||
                           c == '.'))
      return 0;
  }
  return 1;
}

static const char *content_type(const char *name) {
  static const char *const map[][2] = {
      {".html", "text/html; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".mjs", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".json", "application/json"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
      {".ico", "image/x-icon"},
      {".txt", "text/plain; charset=utf-8"}};
  const char *dot = strrchr(name, '.');
  size_t i;
  for (i = 0; dot != NULL && i < sizeof map / sizeof map[0]; i++)
    if (strcmp(dot, map[i][0]) == 0)
      return map[i][1];
  return "application/octet-stream";
}

/* Reads |path| (a regular file of |size| bytes) whole; 0 or -1. */
static int read_file(const char *path, size_t size, unsigned char **out) {
  FILE *f = fopen(path, "rb");
  unsigned char *buf = malloc(size > 0 ? size : 1);
  int ok = f != NULL && buf != NULL && fread(buf, 1, size, f) == size;
  if (f != NULL)
    fclose(f);
  if (!ok) {
    free(buf);
    return -1;
  }
  *out = buf;
  return 0;
}

/* Adds one directory entry if it is a plain regular file; 0, or -1 on
 * out of memory. Entries that do not qualify are skipped (and said so). */
static int add(demo_web *w, const char *name) {
  char path[4096];
  struct stat st;
  demo_web_file *f;
  if (!plain_name(name))
    return 0;
  if ((size_t)snprintf(path, sizeof path, "%s/%s", w->dir, name) >=
          sizeof path ||
      stat(path, &st) != 0 || !S_ISREG(st.st_mode))
    return 0;
  if ((unsigned long long)st.st_size > MAX_FILE_BYTES ||
      w->nfiles >= MAX_FILES) {
    fprintf(stderr, "agentws-demo: %s: not served (over %u files or %u "
                    "bytes)\n",
            path, MAX_FILES, MAX_FILE_BYTES);
    return 0;
  }
  f = &w->files[w->nfiles];
  f->name = strdup(name);
  if (f->name == NULL)
    return -1;
  if (read_file(path, (size_t)st.st_size, &f->body) != 0) {
    fprintf(stderr, "agentws-demo: %s: %s (not served)\n", path,
            strerror(errno));
    free(f->name);
    return 0;
  }
  f->len = (size_t)st.st_size;
  f->content_type = content_type(name);
  w->nfiles++;
  return 0;
}

int demo_web_load(demo_web *w) {
  DIR *dir;
  struct dirent *e;
  int rv = 0;
  if (w->dir == NULL)
    w->dir = DEMO_WEB_DIR;
  dir = opendir(w->dir);
  if (dir == NULL) {
    fprintf(stderr, "agentws-demo: static dir %s: %s%s\n", w->dir,
            strerror(errno), w->dir_given ? "" : " (no web pages served)");
    return w->dir_given ? -1 : 0;
  }
  w->files = calloc(MAX_FILES, sizeof *w->files);
  if (w->files == NULL)
    rv = -1;
  while (rv == 0 && (e = readdir(dir)) != NULL)
    rv = add(w, e->d_name);
  closedir(dir);
  if (rv != 0) {
    fprintf(stderr, "agentws-demo: out of memory loading %s\n", w->dir);
    return -1;
  }
  fprintf(stderr, "agentws-demo: serving %zu file(s) from %s\n", w->nfiles,
          w->dir);
  return 0;
}

void demo_web_free(demo_web *w) {
  size_t i;
  for (i = 0; i < w->nfiles; i++) {
    free(w->files[i].name);
    free(w->files[i].body);
  }
  free(w->files);
  w->files = NULL;
  w->nfiles = 0;
}

/* The file named by the first |len| bytes of |name| (not NUL-terminated),
 * plus |suffix|; NULL if none. */
static const demo_web_file *find(const demo_web *w, const char *name,
                                 size_t len, const char *suffix) {
  size_t i, slen = strlen(suffix);
  for (i = 0; i < w->nfiles; i++) {
    const demo_web_file *f = &w->files[i];
    if (strlen(f->name) == len + slen && memcmp(f->name, name, len) == 0 &&
        memcmp(f->name + len, suffix, slen) == 0)
      return f;
  }
  return NULL;
}

int demo_web_serve(const demo_web *w, agentws_manager *m, uint64_t conn_id,
                   const agentws_request *req) {
  const char *target = agentws_request_get_target(req);
  const demo_web_file *f = NULL;
  size_t len;
  /* A WebSocket upgrade to a page path is a client mistake, not a page
   * request: leave it to the library's 404. */
  if (target == NULL || target[0] != '/' ||
      agentws_request_get_header(req, "Upgrade") != NULL)
    return 1;
  target++;
  len = strcspn(target, "?#");
  if (len == 0)
    f = find(w, "chat", 4, ".html");
  else if (memchr(target, '/', len) == NULL) {
    f = find(w, target, len, "");
    /* "/chat" and "/dashboard": the page without its extension. */
    if (f == NULL && memchr(target, '.', len) == NULL)
      f = find(w, target, len, ".html");
  }
  if (f == NULL)
    return 1;
  if (agentws_http_respond(m, conn_id, 200, f->content_type, f->body,
                           f->len) != 0)
    return 1;
  return 0;
}
