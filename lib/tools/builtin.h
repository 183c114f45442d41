/* The built-in tools with side effects or I/O (internal). */
#ifndef DURIN_TOOLS_BUILTIN_H
#define DURIN_TOOLS_BUILTIN_H

#include "durin/tools.h"

extern const struct durin_tool_def durin__tool_bash;
extern const struct durin_tool_def durin__tool_read_file;
extern const struct durin_tool_def durin__tool_write_file;
extern const struct durin_tool_def durin__tool_edit_file;
extern const struct durin_tool_def durin__tool_list_files;

/* Sets res to a failed result with a printf-style message for the model. */
void durin__tool_fail(struct durin_tool_result *res, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
