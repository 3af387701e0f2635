/* A program built against an INSTALLED libcellcount (tests/install/install_test.cmake builds it twice: with
   find_package(cellcount) and with pkg-config). It prints the version the header and the library give, the
   library file the loader picked, and the methods the library lists; exit 1 if the header and the library
   disagree or a call fails. */
#include <cellcount/cellcount.h>

#include <stdio.h>
#include <string.h>

/* The path of the libcellcount the loader mapped (Linux: /proc/self/maps), into buf; "?" if not found. */
static void loaded_library(char * buf, size_t size) {
  char line[4096];
  FILE * maps = fopen("/proc/self/maps", "r");
  snprintf(buf, size, "?");
  while (maps && fgets(line, sizeof line, maps)) {
    const char * path = strchr(line, '/');
    if (path && strstr(path, "/libcellcount.so")) {
      snprintf(buf, size, "%.*s", (int)strcspn(path, "\n"), path);
      break;
    }
  }
  if (maps) fclose(maps);
}

int main(void) {
  char file[4096];
  loaded_library(file, sizeof file);
  printf("header  %s (number %d, ABI %d)\n", CELLCOUNT_VERSION_STRING, CELLCOUNT_VERSION_NUMBER, CELLCOUNT_ABI_VERSION);
  printf("library %s (number %u, ABI %u) from %s\n", cellcount_version_string(), cellcount_version_number(),
         cellcount_abi_version(), file);
  if (strcmp(cellcount_version_string(), CELLCOUNT_VERSION_STRING) != 0 ||
      cellcount_version_number() != CELLCOUNT_VERSION_NUMBER || cellcount_abi_version() != CELLCOUNT_ABI_VERSION) {
    fprintf(stderr, "the installed header and library disagree\n");
    return 1;
  }
  char * info = NULL;
  cellcount_status s = cellcount_library_info(&info);
  if (s != CELLCOUNT_OK) {
    fprintf(stderr, "cellcount_library_info: %s: %s\n", cellcount_status_name(s), cellcount_last_error());
    return 1;
  }
  /* the method ids: every "id":"..." of the info JSON */
  printf("methods");
  for (const char * p = strstr(info, "\"id\":\""); p; p = strstr(p, "\"id\":\"")) {
    p += 6;
    const char * end = strchr(p, '"');
    if (!end) break;
    printf(" %.*s", (int)(end - p), p);
  }
  printf("\n");
  cellcount_string_free(info);
  return 0;
}
