/*
 * forms.c — the few XEP-0004 data form helpers mod_muc needs (the room
 * configuration form, muc#roominfo, voice requests), and the text-child
 * builder the other files share.  Pure tree work.
 */
#include <string.h>

#include "muc.h"

void muc_add_text_child(tern_xml_t *parent, const char *name, const char *ns, const char *text)
{
    tern_xml_t *e = tern_xml_add_child(parent, name, ns);
    if (e && text)
        tern_xml_add_text(e, text, strlen(text));
}

/* Add <field var type label><value/></field> to x; value NULL: no value. */
tern_xml_t *form_add_field(tern_xml_t *x, const char *var, const char *type, const char *label,
                           const char *value)
{
    tern_xml_t *f = tern_xml_add_child(x, "field", NS_DATA);
    if (!f)
        return NULL;
    tern_xml_set_attr(f, "var", var);
    if (type)
        tern_xml_set_attr(f, "type", type);
    if (label)
        tern_xml_set_attr(f, "label", label);
    if (value) {
        tern_xml_t *v = tern_xml_add_child(f, "value", NS_DATA);
        if (v)
            tern_xml_add_text(v, value, strlen(value));
    }
    return f;
}

static tern_xml_t *form_field(tern_xml_t *x, const char *var)
{
    for (tern_xml_t *f = tern_xml_first_element(x); f; f = tern_xml_next_element(f)) {
        const char *v = tern_xml_attr(f, "var");
        if (tern_xml_is(f, "field", NS_DATA) && v && strcmp(v, var) == 0)
            return f;
    }
    return NULL;
}

const char *form_value(tern_xml_t *x, const char *var)
{
    tern_xml_t *f = form_field(x, var);
    tern_xml_t *v = f ? tern_xml_child(f, "value", NS_DATA) : NULL;
    return v ? tern_xml_text(v) : NULL;
}

int form_bool(tern_xml_t *x, const char *var, int def)
{
    const char *v = form_value(x, var);
    if (!v)
        return def;
    return strcmp(v, "1") == 0 || strcmp(v, "true") == 0;
}

const char *form_type(tern_xml_t *x)
{
    return form_value(x, "FORM_TYPE");
}
