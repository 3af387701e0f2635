/* The public header compiles as C99 with -Wall -Wextra -Werror -pedantic and needs nothing else. */
#include "cellcount/cellcount.h"

#include <stdio.h>
#include <string.h>

/* Compile-time checks of the ABI's basic promises. */
typedef char check_box_is_4_floats[sizeof(cellcount_box) == 4 * sizeof(float) ? 1 : -1];
typedef char check_status_ok_is_zero[CELLCOUNT_OK == 0 ? 1 : -1];
typedef char check_version_number[CELLCOUNT_VERSION_NUMBER ==
                                          CELLCOUNT_VERSION_MAJOR * 10000 + CELLCOUNT_VERSION_MINOR * 100 +
                                              CELLCOUNT_VERSION_PATCH
                                      ? 1
                                      : -1];

int main(void) {
  check_box_is_4_floats a;
  check_status_ok_is_zero b;
  check_version_number c;
  (void)a;
  (void)b;
  (void)c;
  if (cellcount_abi_version() != CELLCOUNT_ABI_VERSION) {
    fprintf(stderr, "ABI version mismatch: header %d, library %u\n", CELLCOUNT_ABI_VERSION, cellcount_abi_version());
    return 1;
  }
  /* the header's version macros and the library's version calls agree */
  if (cellcount_version_number() != CELLCOUNT_VERSION_NUMBER ||
      strcmp(cellcount_version_string(), CELLCOUNT_VERSION_STRING) != 0) {
    fprintf(stderr, "version mismatch: header %s (%d), library %s (%u)\n", CELLCOUNT_VERSION_STRING,
            CELLCOUNT_VERSION_NUMBER, cellcount_version_string(), cellcount_version_number());
    return 1;
  }
  {
    char expected[32];
    snprintf(expected, sizeof expected, "%d.%d.%d", CELLCOUNT_VERSION_MAJOR, CELLCOUNT_VERSION_MINOR,
             CELLCOUNT_VERSION_PATCH);
    if (strcmp(expected, CELLCOUNT_VERSION_STRING) != 0) {
      fprintf(stderr, "CELLCOUNT_VERSION_STRING %s is not major.minor.patch %s\n", CELLCOUNT_VERSION_STRING, expected);
      return 1;
    }
  }
  printf("2 passed, 0 failed\n");
  return 0;
}
