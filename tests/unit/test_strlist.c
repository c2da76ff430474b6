/*
 * test_strlist.c — unit tests of src/util/strlist.c: adding (with and
 * without duplicates), lookup, removal, byte-order sorting, clearing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tern/strlist.h>

#include "check.h"

static void test_add_has_remove(void)
{
    tern_strlist_t l = {0};
    char buf[32];
    for (int i = 0; i < 100; i++) { /* grows past the first allocation */
        snprintf(buf, sizeof buf, "u%d@example.org", i);
        CHECK(tern_strlist_add(&l, buf) == 0);
    }
    CHECK(l.n == 100);
    CHECK(tern_strlist_has(&l, "u42@example.org"));
    CHECK(!tern_strlist_has(&l, "u100@example.org"));
    CHECK(tern_strlist_add_unique(&l, "u42@example.org") == 0);
    CHECK(l.n == 100);
    CHECK(tern_strlist_add_unique(&l, "u100@example.org") == 0);
    CHECK(l.n == 101);
    CHECK(tern_strlist_add(&l, "u0@example.org") == 0); /* plain add keeps duplicates */
    CHECK(l.n == 102);
    tern_strlist_remove(&l, 0);
    CHECK(l.n == 101);
    CHECK_STR(l.v[0], "u0@example.org"); /* the last one took its place */
    tern_strlist_remove(&l, 500);        /* out of range: nothing */
    CHECK(l.n == 101);
    tern_strlist_clear(&l);
    CHECK(l.n == 0 && l.cap == 0 && l.v == NULL);
    CHECK(!tern_strlist_has(&l, "u1@example.org"));
    tern_strlist_clear(&l); /* twice is fine */
}

/* XEP-0115 §5.1 sorts by "i;octet": bytes, upper case first. */
static void test_sort(void)
{
    tern_strlist_t l = {0};
    const char *in[] = {"http://jabber.org/protocol/muc", "b", "B", "", "\xc3\xa9", "a"};
    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++)
        CHECK(tern_strlist_add(&l, in[i]) == 0);
    tern_strlist_sort(&l);
    const char *want[] = {"", "B", "a", "b", "http://jabber.org/protocol/muc", "\xc3\xa9"};
    CHECK(l.n == 6);
    for (size_t i = 0; i < l.n && i < 6; i++)
        CHECK_STR(l.v[i], want[i]);
    tern_strlist_clear(&l);
    tern_strlist_sort(&l); /* empty: nothing */
}

int main(void)
{
    test_add_has_remove();
    test_sort();
    return check_summary();
}
