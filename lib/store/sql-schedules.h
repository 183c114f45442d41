/*
 * The schedules' tables (lib/store/sql-schedules.c), one migration on
 * both databases. A schedule's tick is claimed by moving next_fire_ms
 * conditionally (durin_store_schedule_fire); the due index is what every
 * serve's scheduler reads once a second. A tick is recorded once: its
 * primary key is the schedule and the tick's instant.
 */
#ifndef DURIN_STORE_SQL_SCHEDULES_H
#define DURIN_STORE_SQL_SCHEDULES_H

#define SCHEDULES_TABLES(I64)                             \
 "CREATE TABLE schedules("                                \
 "  tenant TEXT NOT NULL,"                                \
 "  name TEXT NOT NULL,"                                  \
 "  cron TEXT NOT NULL,"                                  \
 "  tz TEXT NOT NULL,"                                    \
 "  spec TEXT NOT NULL,"                                  \
 "  overlap TEXT NOT NULL,"                               \
 "  catchup " I64 " NOT NULL,"                            \
 "  paused " I64 " NOT NULL DEFAULT 0,"                   \
 "  next_fire_ms " I64 " NOT NULL,"                       \
 "  last_fire_ms " I64 " NOT NULL DEFAULT 0,"             \
 "  last_run_id TEXT,"                                    \
 "  created_ms " I64 " NOT NULL,"                         \
 "  created_by TEXT,"                                     \
 "  PRIMARY KEY(tenant, name));"                          \
 "CREATE INDEX schedules_due ON schedules(next_fire_ms) " \
 "  WHERE paused = 0;"                                    \
 "CREATE TABLE schedule_ticks("                           \
 "  tenant TEXT NOT NULL,"                                \
 "  name TEXT NOT NULL,"                                  \
 "  tick_ms " I64 " NOT NULL,"                            \
 "  outcome TEXT NOT NULL,"                               \
 "  missed " I64 " NOT NULL DEFAULT 0,"                   \
 "  run_id TEXT,"                                         \
 "  detail TEXT,"                                         \
 "  at_ms " I64 " NOT NULL,"                              \
 "  PRIMARY KEY(tenant, name, tick_ms));"

#endif
