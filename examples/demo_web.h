/* The demo server's web pages (examples/web: the chat and the dashboard),
 * served on the library's port through its on_http hook. */
#ifndef DEMO_WEB_H
#define DEMO_WEB_H

#include <getopt.h>
#include <stddef.h>
#include <stdio.h>

#include <agentws.h>

/* One file of the static directory, held in memory. */
typedef struct demo_web_file {
  char *name;               /* file name, e.g. "chat.html", owned */
  const char *content_type; /* static string, by the name's extension */
  unsigned char *body;      /* the file's bytes, owned */
  size_t len;
} demo_web_file;

typedef struct demo_web {
  const char *dir;      /* --static-dir, or DEMO_WEB_DIR */
  int dir_given;        /* --static-dir was given: a bad one is fatal */
  demo_web_file *files; /* nfiles entries */
  size_t nfiles;
} demo_web;

/* getopt_long entries (--static-dir D); |base| is the first option value. */
#define DEMO_WEB_NOPTS 1
void demo_web_options(struct option *out, int base);
void demo_web_usage(FILE *f);
/* Applies option |idx| (0 .. DEMO_WEB_NOPTS-1): 0, or prints why not. */
int demo_web_apply(demo_web *w, int idx, const char *arg);

/* Reads the directory's files into memory, so requests never touch the
 * disk on the loop thread. 0, or prints why not and returns -1 (only when
 * the directory was given explicitly; the default one may be missing). */
int demo_web_load(demo_web *w);
void demo_web_free(demo_web *w);

/* The on_http hook's body: answers a page request and returns 0, or
 * returns 1 (the library then answers 404). */
int demo_web_serve(const demo_web *w, agentws_manager *m, uint64_t conn_id,
                   const agentws_request *req);

#endif /* DEMO_WEB_H */
