/* The checks the C ABI tests share: EXPECT(cond, what) and EXPECT_STATUS(call, want) count passes and failures
 * and print each failure with the library's last error; abi_check_summary() prints "N passed, M failed" and
 * gives the exit status (0 only when nothing failed). One copy per test program (static). */
#ifndef CELLCOUNT_TESTS_ABI_CHECK_H
#define CELLCOUNT_TESTS_ABI_CHECK_H

#include "cellcount/cellcount.h"

#include <stdio.h>

static int g_passed = 0, g_failed = 0;

#define EXPECT(cond, what)                                                                      \
  do {                                                                                          \
    if (cond) {                                                                                 \
      ++g_passed;                                                                               \
    } else {                                                                                    \
      ++g_failed;                                                                               \
      fprintf(stderr, "FAILED %s:%d: %s [last error: %s]\n", __FILE__, __LINE__, what,        \
              cellcount_last_error());                                                          \
    }                                                                                           \
  } while (0)

#define EXPECT_STATUS(call, want)                                                                \
  do {                                                                                           \
    cellcount_status s_ = (call);                                                                \
    if (s_ == (want)) {                                                                          \
      ++g_passed;                                                                                \
    } else {                                                                                     \
      ++g_failed;                                                                                \
      fprintf(stderr, "FAILED %s:%d: %s gave %s, expected %s [%s]\n", __FILE__, __LINE__, #call, \
              cellcount_status_name(s_), cellcount_status_name(want), cellcount_last_error());   \
    }                                                                                            \
  } while (0)

static int abi_check_summary(void) {
  printf("%d passed, %d failed\n", g_passed, g_failed);
  return g_failed ? 1 : 0;
}

#endif
