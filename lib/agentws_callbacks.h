/* The host's hooks, kept in an opaque object so new hooks never break ABI. */
#ifndef AGENTWS_CALLBACKS_H
#define AGENTWS_CALLBACKS_H

#include "agentws.h"

struct agentws_callbacks {
  agentws_on_open_cb on_open;       /* handshake done */
  agentws_on_message_cb on_message; /* complete text/binary message */
  agentws_on_close_cb on_close;     /* opened connection gone */
  agentws_on_authenticate_cb on_authenticate; /* who is this? */
  agentws_on_join_cb on_join;       /* may this connection join a room? */
  agentws_on_client_message_cb on_client_message; /* protocol: other types */
  agentws_on_gap_cb on_gap;         /* a resume missed events */
  agentws_on_violation_cb on_violation; /* the validator found something */
  agentws_on_alert_cb on_alert;     /* the monitor saw a failure start/end */
  agentws_on_http_cb on_http;       /* GET of a path the library lacks */
  agentws_on_log_cb on_log;         /* log lines */
};

#endif /* AGENTWS_CALLBACKS_H */
