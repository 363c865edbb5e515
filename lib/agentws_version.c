#include "agentws.h"

unsigned agentws_version(void) { return AGENTWS_VERSION_NUM; }

const char *agentws_version_string(void) { return AGENTWS_VERSION_STRING; }
