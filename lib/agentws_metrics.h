/* Bodies of /metrics (Prometheus text 0.0.4), /healthz and /readyz. */
#ifndef AGENTWS_METRICS_H
#define AGENTWS_METRICS_H

#include "agentws_buf.h"

struct agentws_manager;

/* Each appends to |out| and returns 0 or AGENTWS_ERR_NOMEM; the health
 * ones store the HTTP status in |*status|. Loop thread. */
int agentws__metrics_write(struct agentws_manager *m, agentws__buf *out);
int agentws__healthz_write(struct agentws_manager *m, agentws__buf *out,
                           int *status);
int agentws__readyz_write(struct agentws_manager *m, agentws__buf *out,
                          int *status);

#endif /* AGENTWS_METRICS_H */
