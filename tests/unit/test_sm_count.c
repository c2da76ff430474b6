/*
 * test_sm_count.c — stream management counters (modules/sm_count.h):
 * parsing of 'h' and acknowledgements across the 2^32 wrap (XEP-0198 §4).
 */
#include "../../modules/sm_count.h"

#include "check.h"

int main(void)
{
    uint32_t h = 7;
    CHECK(sm_parse_h("0", &h) == 0 && h == 0);
    CHECK(sm_parse_h("4294967295", &h) == 0 && h == UINT32_MAX);
    CHECK(sm_parse_h("4294967296", &h) < 0);
    CHECK(sm_parse_h("99999999999", &h) < 0);
    CHECK(sm_parse_h("-1", &h) < 0);
    CHECK(sm_parse_h("", &h) < 0);
    CHECK(sm_parse_h(NULL, &h) < 0);
    CHECK(sm_parse_h("12a", &h) < 0);
    CHECK(sm_parse_h(" 1", &h) < 0);

    /* Plain: 3 unacked after 10, h=12 acknowledges 2; h=14 is too high. */
    CHECK(sm_newly_acked(10, 3, 12) == 2);
    CHECK(sm_newly_acked(10, 3, 13) == 3);
    CHECK(sm_newly_acked(10, 3, 10) == 0);
    CHECK(sm_newly_acked(10, 3, 14) == -1);
    /* An h behind the last one is not "more acknowledged" either. */
    CHECK(sm_newly_acked(10, 3, 9) == -1);
    /* Across the wrap: acked at 2^32-2, 5 sent since (..., 0, 1, 2). */
    CHECK(sm_newly_acked(UINT32_MAX - 1, 5, UINT32_MAX) == 1);
    CHECK(sm_newly_acked(UINT32_MAX - 1, 5, 0) == 2);
    CHECK(sm_newly_acked(UINT32_MAX - 1, 5, 2) == 4);
    CHECK(sm_newly_acked(UINT32_MAX - 1, 5, 3) == 5);
    CHECK(sm_newly_acked(UINT32_MAX - 1, 5, 4) == -1);
    /* The counter itself wraps: 2^32-1 + 1 == 0. */
    uint32_t c = UINT32_MAX;
    c++;
    CHECK(c == 0);
    CHECK(sm_newly_acked(0, 0, 0) == 0);
    CHECK(sm_newly_acked(0, 0, 1) == -1);
    return check_summary();
}
