/*
 * mod_time — XEP-0202 Entity Time of the server.
 *
 * Owns the answer to urn:xmpp:time addressed to the host: the offset of
 * the server's local time zone and the current UTC time with milliseconds,
 * both in the XEP-0082 formats.  Clients answer for themselves.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <tern/module.h>

#define NS_TIME "urn:xmpp:time"

/* Append <name>text</name> to `parent`; 0, or -1 when out of memory. */
static int add_text_child(tern_xml_t *parent, const char *name, const char *text)
{
    tern_xml_t *child = tern_xml_add_child(parent, name, NULL);
    if (child == NULL)
        return -1;
    tern_xml_add_text(child, text, strlen(text));
    return 0;
}

/* Format now as XEP-0082 TZD ("+01:00") and dateTime in UTC
 * ("2026-11-23T09:00:00.123Z"); 0, or -1 when the clock fails. */
static int format_now(char *tzo, size_t tzo_size, char *utc, size_t utc_size)
{
    struct timespec ts;
    struct tm gm, local;
    char stamp[32];
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0 || gmtime_r(&ts.tv_sec, &gm) == NULL ||
        localtime_r(&ts.tv_sec, &local) == NULL ||
        strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &gm) == 0)
        return -1;
    long off = local.tm_gmtoff;
    char sign = off < 0 ? '-' : '+';
    if (off < 0)
        off = -off;
    snprintf(tzo, tzo_size, "%c%02d:%02d", sign, (int)(off / 3600 % 100), (int)(off % 3600 / 60));
    snprintf(utc, utc_size, "%s.%03dZ", stamp, (int)(ts.tv_nsec / 1000000));
    return 0;
}

/* XEP-0202 §2: <time><tzo/><utc/></time>, both required. */
static int on_time(tern_module_ctx_t *m, tern_event_t *ev)
{
    char tzo[32], utc[64];
    if (format_now(tzo, sizeof tzo, utc, sizeof utc) != 0) {
        tern_reply_error(m, ev, "wait", "internal-server-error", NULL);
        return TERN_HANDLED;
    }
    tern_xml_t *reply = tern_iq_result(ev);
    tern_xml_t *time = reply != NULL ? tern_xml_add_child(reply, "time", NS_TIME) : NULL;
    return tern_iq_answer(m, ev, reply,
                          time != NULL && add_text_child(time, "tzo", tzo) == 0 &&
                              add_text_child(time, "utc", utc) == 0);
}

static int load(tern_module_ctx_t *m)
{
    tzset(); /* localtime_r need not read TZ itself (POSIX) */
    tern_add_feature(m, NS_TIME);
    return tern_hook(m, "iq-get/host/" NS_TIME ":time", on_time, 0) != 0 ? -1 : 0;
}

TERN_MODULE = {
    .abi = TERN_ABI,
    .name = "time",
    .description = "Local time of the server (XEP-0202)",
    .load = load,
};
