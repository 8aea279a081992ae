// CHECK: abort with file:line on a broken internal invariant (never for user input: see errors.h).
#pragma once
#include <cstdio>
#include <cstdlib>

#define DENSEKV_CHECK_FAIL(cond_str, msg)                                                     \
  do {                                                                                        \
    std::fprintf(stderr, "%s:%d: CHECK failed: %s %s\n", __FILE__, __LINE__, cond_str, msg); \
    std::abort();                                                                             \
  } while (0)

#define CHECK(cond) \
  do {              \
    if (!(cond)) DENSEKV_CHECK_FAIL(#cond, "");                                               \
  } while (0)

#define CHECK_MSG(cond, msg)                    \
  do {                                          \
    if (!(cond)) DENSEKV_CHECK_FAIL(#cond, msg); \
  } while (0)
