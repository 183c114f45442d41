/* The store backends compiled into this build (internal). */
#ifndef DURIN_STORE_BACKENDS_H
#define DURIN_STORE_BACKENDS_H

#include "durin/store.h"

extern const struct durin_store_ops durin__store_sqlite_ops;
extern const struct durin_store_ops durin__store_pg_ops;

#endif
