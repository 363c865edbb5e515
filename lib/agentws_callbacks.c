#include "agentws_callbacks.h"

#include "agentws_mem.h"

int agentws_callbacks_new(agentws_callbacks **out) {
  agentws_callbacks *cbs;
  if (out == NULL)
    return AGENTWS_ERR_INVALID_ARGUMENT;
  cbs = agentws__mem_calloc(agentws__mem_default(), 1, sizeof(*cbs));
  if (cbs == NULL)
    return AGENTWS_ERR_NOMEM;
  *out = cbs;
  return 0;
}

void agentws_callbacks_free(agentws_callbacks *cbs) {
  if (cbs != NULL)
    agentws__mem_free(agentws__mem_default(), cbs);
}

void agentws_callbacks_set_on_open(agentws_callbacks *cbs,
                                   agentws_on_open_cb cb) {
  if (cbs != NULL)
    cbs->on_open = cb;
}

void agentws_callbacks_set_on_message(agentws_callbacks *cbs,
                                      agentws_on_message_cb cb) {
  if (cbs != NULL)
    cbs->on_message = cb;
}

void agentws_callbacks_set_on_close(agentws_callbacks *cbs,
                                    agentws_on_close_cb cb) {
  if (cbs != NULL)
    cbs->on_close = cb;
}

void agentws_callbacks_set_on_authenticate(agentws_callbacks *cbs,
    agentws_on_authenticate_cb cb) {
  if (cbs != NULL)
    cbs->on_authenticate = cb;
}

void agentws_callbacks_set_on_join(agentws_callbacks *cbs,
    agentws_on_join_cb cb) {
  if (cbs != NULL)
    cbs->on_join = cb;
}

void agentws_callbacks_set_on_client_message(agentws_callbacks *cbs,
    agentws_on_client_message_cb cb) {
  if (cbs != NULL)
    cbs->on_client_message = cb;
}

void agentws_callbacks_set_on_gap(agentws_callbacks *cbs,
    agentws_on_gap_cb cb) {
  if (cbs != NULL)
    cbs->on_gap = cb;
}

void agentws_callbacks_set_on_violation(agentws_callbacks *cbs,
    agentws_on_violation_cb cb) {
  if (cbs != NULL)
    cbs->on_violation = cb;
}

void agentws_callbacks_set_on_alert(agentws_callbacks *cbs,
                                    agentws_on_alert_cb cb) {
  if (cbs != NULL)
    cbs->on_alert = cb;
}

void agentws_callbacks_set_on_http(agentws_callbacks *cbs,
                                   agentws_on_http_cb cb) {
  if (cbs != NULL)
    cbs->on_http = cb;
}

void agentws_callbacks_set_on_log(agentws_callbacks *cbs,
                                  agentws_on_log_cb cb) {
  if (cbs != NULL)
    cbs->on_log = cb;
}
