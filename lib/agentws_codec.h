/*
 * Codec: the agentws.v1 wire encoding (DESIGN.md §6). Builds each event's
 * JSON envelope once, on the emitting thread, with a small escaping writer
 * (no JSON library on the hot path); payload JSON given by the host is
 * checked with jansson. A second wire format (AG-UI) is a second codec.
 */
#ifndef AGENTWS_CODEC_H
#define AGENTWS_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "agentws_buf.h"
#include "agentws_evpool.h"
#include "agentws_mem.h"

/* Schema limits of an event (the validator's "schema" rule). */
#define AGENTWS__MAX_NAME 256      /* run/tool call/tool/agent ids, codes */
#define AGENTWS__MAX_MESSAGE 4096  /* agent_error message */
#define AGENTWS__MAX_DEPTH 32      /* nesting of data, args, result */
/* Room before an event's json for its WebSocket frame header (an unmasked
 * server frame's header is at most 10 bytes). */
#define AGENTWS__FRAME_ROOM 10

/* Event types. */
enum {
  AGENTWS__EV_AGENT_STARTED = 1,
  AGENTWS__EV_AGENT_THINKING,
  AGENTWS__EV_TOOL_EXECUTING,
  AGENTWS__EV_TOOL_COMPLETED,
  AGENTWS__EV_AGENT_COMPLETED,
  AGENTWS__EV_AGENT_ERROR,
  AGENTWS__EV_CUSTOM
};

/* What an emit call passes; all pointers borrowed for the call. */
typedef struct agentws__emit_args {
  int type;              /* AGENTWS__EV_* */
  int target;            /* AGENTWS_TARGET_USER or AGENTWS_TARGET_ROOM */
  const char *target_id; /* user or room id (required) */
  const char *custom_type; /* AGENTWS__EV_CUSTOM: the type name */
  const char *run_id;    /* required except for custom events */
  const char *agent;     /* agent_started */
  const char *text;      /* agent_thinking: text_len bytes of UTF-8 */
  size_t text_len;
  const char *tool;      /* tool_* */
  const char *tool_call_id; /* tool_* */
  int ok;                /* tool_completed: 0/1 */
  int64_t duration_ms;   /* tool_completed, agent_completed (>= 0) */
  const char *code;      /* agent_error */
  const char *message;   /* agent_error */
  const char *severity;  /* agent_error */
  int retryable;         /* agent_error: 0/1 */
  const char *args_json;   /* tool_executing "args": any JSON, or NULL */
  const char *result_json; /* tool_completed / agent_completed "result" */
  const char *data_json;   /* extra members of "data": a JSON object */
  int64_t ts_ms;         /* wall clock, set by the caller */
} agentws__emit_args;

/*
 * An event: its envelope JSON, immutable once published, shared by the
 * backlog and every recipient through the reference count.
 * Layout of json: {"type":"T"[,"run_id":"R"],"ts":N,"data":{...}
 * [,"stream":"room:ID"],"seq":  followed by room for the seq digits and the
 * closing brace, written by agentws__event_finalize().
 */
typedef struct agentws__event {
  uint32_t refcnt;       /* loop thread only, once published */
  uint8_t type;          /* AGENTWS__EV_* */
  uint8_t target;        /* AGENTWS_TARGET_* */
  uint64_t seq;          /* 0 until finalized */
  int64_t ts_ms;         /* wall clock at emit */
  uint64_t emit_ns;      /* uv_hrtime() at emit, for latency */
  struct agentws__event *next; /* emit queue link */
  const char *target_id; /* NUL-terminated, inside mem block */
  const char *run_id;    /* NUL-terminated, or NULL */
  size_t text_off, text_len;   /* thinking: the escaped text in json */
  size_t extra_off, extra_len; /* thinking: ",member..." after the text */
  size_t json_len;       /* bytes of json before finalize (no seq yet) */
  size_t len;            /* bytes of json after finalize */
  char *json;            /* the envelope, inside this allocation, with
                            AGENTWS__FRAME_ROOM bytes before it */
  uint8_t frame_len;     /* loop thread: bytes of the frame header written
                            just before json (0: not framed yet), so a
                            broadcast frames once and copies one block */
  agentws__evpool *pool; /* the block's pool, or NULL: the allocator's */
  size_t block;          /* bytes asked of the pool */
} agentws__event;

/*
 * Validates |a| and builds the event in one allocation. Returns 0, or
 * AGENTWS_ERR_INVALID_ARGUMENT (missing/empty required string, bad custom
 * type name, bad target), AGENTWS_ERR_INVALID_UTF8, AGENTWS_ERR_INVALID_JSON
 * (data_json not an object, or args/result not JSON, or data_json repeats
 * a member the type defines), AGENTWS_ERR_TOO_BIG (envelope over
 * |max_bytes|), AGENTWS_ERR_NOMEM. Thread-safe (any thread).
 */
int agentws__event_build(const agentws__mem *mem,
                         const agentws__emit_args *a, size_t max_bytes,
                         agentws__event **out);
/* As agentws__event_build, in a block of |pool| (its allocator beyond the
 * pooled sizes). Thread-safe. */
int agentws__event_build_pooled(agentws__evpool *pool,
                                const agentws__emit_args *a,
                                size_t max_bytes, agentws__event **out);

/* Writes the seq and the closing brace: the envelope is then complete. */
void agentws__event_finalize(agentws__event *ev, uint64_t seq);

/* Loop thread (or with no loop running): frees |ev|, a pooled one into
 * its pool. */
void agentws__event_free(const agentws__mem *mem, agentws__event *ev);
/* Any thread: as agentws__event_free. */
void agentws__event_free_mt(const agentws__mem *mem, agentws__event *ev);

/*
 * Appends to |out| one agent_thinking envelope that merges |n| finalized
 * thinking events of one run and stream, in order: text concatenated, the
 * last event's ts, extra data members and seq, plus "coalesced":n in data.
 * Returns 0 or AGENTWS_ERR_NOMEM.
 */
int agentws__event_write_merged(agentws__buf *out, const agentws__mem *mem,
                                agentws__event *const *evs, size_t n);

/* Control messages (server -> client), appended to |out| as JSON. Strings
 * are escaped. Each returns 0 or AGENTWS_ERR_NOMEM. */
int agentws__ctl_welcome(agentws__buf *out, const agentws__mem *mem,
                         const char *session, const char *user,
                         const char *epoch, uint64_t seq, int recovered,
                         uint64_t missed);
/* {"type":"resumed","stream"?:S,"epoch":E,"seq":N,"recovered":b,"missed":m}
 * answers a resume message or a join with last_seq; |stream| NULL for the
 * user's own stream. */
int agentws__ctl_resumed(agentws__buf *out, const agentws__mem *mem,
                         const char *stream, const char *epoch, uint64_t seq,
                         int recovered, uint64_t missed);
/* {"type":"gap"[,"stream":S],"from":F,"to":T} */
int agentws__ctl_gap(agentws__buf *out, const agentws__mem *mem,
                     const char *stream, uint64_t from, uint64_t to);
/* {"type":"error","code":C,"message":M} */
int agentws__ctl_error(agentws__buf *out, const agentws__mem *mem,
                       const char *code, const char *message);
/* {"type":"pong"} */
int agentws__ctl_pong(agentws__buf *out, const agentws__mem *mem);
/* {"type":"joined"|"left","room":R,"stream":"room:R","epoch":E,"seq":N} */
int agentws__ctl_room(agentws__buf *out, const agentws__mem *mem,
                      const char *type, const char *room, const char *epoch,
                      uint64_t seq);

/* Appends |s| (|len| bytes, valid UTF-8) JSON-escaped, without quotes. */
int agentws__json_escape(agentws__buf *out, const agentws__mem *mem,
                         const char *s, size_t len);

#endif /* AGENTWS_CODEC_H */
