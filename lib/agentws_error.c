/* Names and descriptions of every error code; libuv's for the rest. */
#include <string.h>
#include <uv.h>

#include "agentws.h"

typedef struct err_entry {
  int code;
  const char *name;
  const char *text;
} err_entry;

static const err_entry entries[] = {
    {0, "OK", "success"},
    {AGENTWS_ERR_INVALID_ARGUMENT, "AGENTWS_ERR_INVALID_ARGUMENT",
     "invalid argument"},
    {AGENTWS_ERR_OUT_OF_RANGE, "AGENTWS_ERR_OUT_OF_RANGE",
     "value out of range"},
    {AGENTWS_ERR_INVALID_STATE, "AGENTWS_ERR_INVALID_STATE",
     "operation not allowed in the current state"},
    {AGENTWS_ERR_NOT_FOUND, "AGENTWS_ERR_NOT_FOUND", "no such connection"},
    {AGENTWS_ERR_WRONG_THREAD, "AGENTWS_ERR_WRONG_THREAD",
     "called from the wrong thread"},
    {AGENTWS_ERR_CLOSING, "AGENTWS_ERR_CLOSING", "connection is closing"},
    {AGENTWS_ERR_QUEUE_FULL, "AGENTWS_ERR_QUEUE_FULL",
     "send queue full: slow consumer disconnected"},
    {AGENTWS_ERR_TOO_BIG, "AGENTWS_ERR_TOO_BIG", "message too big"},
    {AGENTWS_ERR_INVALID_UTF8, "AGENTWS_ERR_INVALID_UTF8",
     "text is not valid UTF-8"},
    {AGENTWS_ERR_CALLBACK_FAILURE, "AGENTWS_ERR_CALLBACK_FAILURE",
     "a callback reported failure"},
    {AGENTWS_ERR_INVALID_CLOSE_CODE, "AGENTWS_ERR_INVALID_CLOSE_CODE",
     "close code may not be sent"},
    {AGENTWS_ERR_LIMIT, "AGENTWS_ERR_LIMIT", "configured limit reached"},
    {AGENTWS_ERR_INVALID_JSON, "AGENTWS_ERR_INVALID_JSON",
     "not valid JSON, or not the JSON type required"},
    {AGENTWS_ERR_VALIDATION, "AGENTWS_ERR_VALIDATION",
     "event refused: it breaks its run's lifecycle"},
    {AGENTWS_ERR_NOMEM, "AGENTWS_ERR_NOMEM", "out of memory"},
    {AGENTWS_ERR_INTERNAL, "AGENTWS_ERR_INTERNAL", "internal error"},
};

static const err_entry *find(int err) {
  size_t i;
  for (i = 0; i < sizeof(entries) / sizeof(entries[0]); i++)
    if (entries[i].code == err)
      return &entries[i];
  return NULL;
}

/* libuv's uv_strerror() allocates (and leaks) a string for codes it does
 * not know, so only known libuv codes are handed to it. */
static int uv_knows(int err) {
  char buf[64];
  if (err >= 0 || (err <= -1000 && err >= -1999))
    return 0;
  uv_err_name_r(err, buf, sizeof(buf));
  return strncmp(buf, "Unknown", 7) != 0;
}

const char *agentws_strerror(int err) {
  const err_entry *e = find(err);
  if (e != NULL)
    return e->text;
  if (!uv_knows(err))
    return "unknown error";
  return uv_strerror(err);
}

const char *agentws_err_name(int err) {
  const err_entry *e = find(err);
  if (e != NULL)
    return e->name;
  if (!uv_knows(err))
    return "AGENTWS_ERR_UNKNOWN";
  return uv_err_name(err);
}

int agentws_strerror_r(int err, char *buf, size_t len) {
  const char *s;
  size_t n;
  if (buf == NULL || len == 0)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  s = agentws_strerror(err);
  n = strlen(s);
  if (n >= len)
    n = len - 1;
  memcpy(buf, s, n);
  buf[n] = '\0';
  return 0;
}

int agentws_err_is_fatal(int err) { return err <= -1900 && err >= -1999; }
