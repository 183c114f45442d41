/*
 * A seam for tests/unit/t-git.c, not an API: a hook lib/git/git.c calls
 * between reading a branch's tip and moving it, so a test can move the
 * branch in that window and watch the compare-and-swap refuse. NULL (the
 * default) outside tests.
 */
#ifndef DURIN_GIT_TEST_H
#define DURIN_GIT_TEST_H

extern void (*durin__git_before_ref_update)(const char *ref);

#endif
