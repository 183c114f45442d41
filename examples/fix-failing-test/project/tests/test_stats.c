#include <math.h>
#include <stdio.h>

#include "stats.h"

static int failures;

static void expect(const char *what, double got, double want)
{
  if (fabs(got - want) > 1e-9) {
    printf("FAIL %s: got %g, want %g\n", what, got, want);
    failures++;
  } else {
    printf("ok   %s\n", what);
  }
}

int main(void)
{
  double a[] = { 2, 4, 6, 8 };
  double b[] = { -1, 7, 3 };

  expect("mean of 2 4 6 8", stats_mean(a, 4), 5);
  expect("mean of -1 7 3", stats_mean(b, 3), 3);
  expect("mean of nothing", stats_mean(a, 0), 0);
  expect("max of 2 4 6 8", stats_max(a, 4), 8);
  expect("max of -1 7 3", stats_max(b, 3), 7);
  printf("%d failure(s)\n", failures);
  return failures ? 1 : 0;
}
