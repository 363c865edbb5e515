/*
 * UTF-8 validation (RFC 3629: no overlongs, no surrogates, <= U+10FFFF).
 * Incremental, so a code point split across fragments or reads validates.
 * wslay validates inbound text itself; this guards what the host sends and
 * close reasons.
 */
#ifndef AGENTWS_UTF8_H
#define AGENTWS_UTF8_H

#include <stddef.h>
#include <stdint.h>

#define AGENTWS__UTF8_ACCEPT 0u /* state at a code point boundary */
#define AGENTWS__UTF8_REJECT 1u /* sticky: input was invalid */

/*
 * Feeds |len| bytes to the validator whose state is |*state| (start with
 * AGENTWS__UTF8_ACCEPT). Returns the new state: AGENTWS__UTF8_REJECT once
 * invalid (sticky), AGENTWS__UTF8_ACCEPT at a boundary, anything else
 * mid-sequence. A complete text is valid iff the final state is ACCEPT.
 */
uint32_t agentws__utf8_feed(uint32_t state, const uint8_t *s, size_t len);

/* Returns 1 if |s| of |len| bytes is complete, valid UTF-8, else 0. */
int agentws__utf8_valid(const uint8_t *s, size_t len);

#endif /* AGENTWS_UTF8_H */
