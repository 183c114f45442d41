#include "stats.h"

double stats_mean(const double *v, size_t n)
{
  double sum = 0;
  size_t i;

  if (n == 0)
    return 0;
  for (i = 0; i < n; i++)
    sum += v[i];
  return sum / (n - 1);
}

double stats_max(const double *v, size_t n)
{
  double m;
  size_t i;

  if (n == 0)
    return 0;
  m = v[0];
  for (i = 1; i < n; i++)
    if (v[i] > m)
      m = v[i];
  return m;
}
