/*
 * Replays a fuzz corpus as an ordinary test: every file in the directories
 * given goes through the target once. Builds without libFuzzer still run
 * every input that ever mattered (sqlite's fuzzcheck, git's oss-fuzz).
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "durin/util.h"
#include "fuzz.h"

int main(int argc, char **argv)
{
  int i, n = 0;

  for (i = 1; i < argc; i++) {
    DIR *d = opendir(argv[i]);
    struct dirent *de;

    if (!d) {
      fprintf(stderr, "replay: cannot open '%s'\n", argv[i]);
      return 1;
    }
    while ((de = readdir(d))) {
      char path[4200], *data = NULL;
      size_t len = 0;

      if (de->d_name[0] == '.')
        continue;
      snprintf(path, sizeof(path), "%s/%s", argv[i], de->d_name);
      if (durin_file_read(path, 1 << 24, &data, &len, NULL))
        continue;
      LLVMFuzzerTestOneInput((const uint8_t *)data, len);
      free(data);
      n++;
    }
    closedir(d);
  }
  printf("replayed %d inputs\n", n);
  return n > 0 ? 0 : 1;
}
