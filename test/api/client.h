/*
 * A tiny WebSocket client for the API tests: TCP on loopback, a fixed
 * Sec-WebSocket-Key, masked frames out, unmasked server frames in. Frames
 * are built and parsed by hand here, sharing nothing with the library.
 *
 * Every wait has a deadline. While waiting, the client calls |pump| (if
 * set) so a server on the same thread's uv loop keeps running; without a
 * pump (threaded server) it simply blocks in poll() up to the deadline.
 */
#ifndef TEST_API_CLIENT_H
#define TEST_API_CLIENT_H

#include <stddef.h>
#include <stdint.h>

/* RFC 6455 §1.3's sample key and its accept value. */
#define TC_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define TC_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

/* Default deadline of a single wait. */
#define TC_TIMEOUT_MS 5000

/* Results of the waiting calls (besides 0). */
#define TC_TIMEOUT (-1) /* deadline passed */
#define TC_EOF (-2)     /* peer closed (or reset) before enough arrived */
#define TC_PROTO (-3)   /* what arrived is not what was expected */
#define TC_SYS (-4)     /* a system call failed */

/* Opcodes. */
#define TC_OP_CONT 0x0
#define TC_OP_TEXT 0x1
#define TC_OP_BINARY 0x2
#define TC_OP_CLOSE 0x8
#define TC_OP_PING 0x9
#define TC_OP_PONG 0xa

typedef void (*tc_pump_fn)(void *arg);

typedef struct tc_client {
  int fd;              /* the socket, -1 when closed */
  tc_pump_fn pump;     /* runs the server while waiting; may be NULL */
  void *pump_arg;
  uint8_t *in;         /* bytes received and not consumed yet */
  size_t in_len, in_cap;
  int eof;             /* recv() returned 0 or failed */
  char protocol[128];  /* Sec-WebSocket-Protocol of the 101, "" if none */
  char head[2048];     /* the last response head read */
} tc_client;

typedef struct tc_frame {
  int fin;
  int opcode;
  uint8_t *data; /* malloc'd, NUL-terminated for convenience */
  size_t len;
} tc_frame;

/* Milliseconds of a monotonic clock. */
uint64_t tc_now_ms(void);
void tc_sleep_ms(int ms);

/* Connects to |host| ("127.0.0.1", "::1") and |port|. Returns 0 or TC_SYS. */
int tc_connect(tc_client *c, const char *host, int port, tc_pump_fn pump,
               void *pump_arg);
/* Wraps a connected socket |fd| (owned from now on). */
void tc_attach(tc_client *c, int fd, tc_pump_fn pump, void *pump_arg);
void tc_close(tc_client *c);

/* Writes an upgrade request for |path| into |buf|; |protocols| (may be
 * NULL) goes into Sec-WebSocket-Protocol. Returns its length. */
size_t tc_format_request(char *buf, size_t cap, const char *path,
                         const char *protocols);

/* Sends all |len| bytes, pumping while the socket is full. */
int tc_send_all(tc_client *c, const void *data, size_t len);

/* Reads one response head (through "\r\n\r\n") into c->head. */
int tc_read_head(tc_client *c, int timeout_ms);

/* Sends the request and checks the 101 and its accept value. */
int tc_upgrade(tc_client *c, const char *path, const char *protocols);

/* Builds a masked client frame; returns its length (0 if |cap| is short). */
size_t tc_build_frame(uint8_t *out, size_t cap, int fin, int opcode,
                      const void *payload, size_t len);

/* Sends one masked, final frame. */
int tc_send_frame(tc_client *c, int opcode, const void *payload, size_t len);

/* Sends a close frame with |code| (0: empty payload) and |reason|. */
int tc_send_close(tc_client *c, int code, const char *reason);

/* Reads the next server frame (unmasked). Free it with tc_frame_free(). */
int tc_read_frame(tc_client *c, tc_frame *f, int timeout_ms);
void tc_frame_free(tc_frame *f);

/* Reads the next text message, skipping pings/pongs: 0 and *out (NUL-
 * terminated; free() it), TC_PROTO if another frame came, or
 * tc_read_frame()'s error. */
int tc_read_text(tc_client *c, char **out, int timeout_ms);

/* Reads frames until a close frame, skipping pings/pongs; data frames are
 * TC_PROTO. Stores its code (1005 if empty) and reason (NUL-terminated). */
int tc_read_close(tc_client *c, int *code, char *reason, size_t cap,
                  int timeout_ms);

/* Waits until the server ends the TCP connection; bytes are discarded. */
int tc_wait_eof(tc_client *c, int timeout_ms);

/* Reads until the server ends the connection, keeping the bytes in
 * c->in (c->in_len of them). */
int tc_read_to_eof(tc_client *c, int timeout_ms);

/* Sends |data| as one message of |opcode| and reads back one message of the
 * same opcode and bytes. Returns 0 or a TC_* code. */
int tc_echo(tc_client *c, int opcode, const void *data, size_t len);

#endif /* TEST_API_CLIENT_H */
